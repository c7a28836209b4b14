"""DAW, the Deterministic Agent Workbench: decide whether a change may ship."""

__version__ = "0.1.0"
