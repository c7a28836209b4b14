"""Allow ``python -m daw``."""

from daw.cli.main import run

run()
