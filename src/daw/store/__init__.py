"""Storage of run records, so runs can be listed, shown and replayed later."""

from __future__ import annotations

from daw.store.sqlite import RunStore, RunSummary

__all__ = ["RunStore", "RunSummary"]
