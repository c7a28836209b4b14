"""DAW, the Deterministic Agent Workbench: measure a change and decide whether it ships."""

__version__ = "0.1.0"
