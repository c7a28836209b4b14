"""The ``daw`` command line: parses input, calls workflows, renders output."""
