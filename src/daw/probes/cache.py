"""A content-addressed cache of probe results on disk.

An entry is keyed by the probe name and the probe's own cache key, which covers
the tool version, its configuration and the contents of the files it read. An
unreadable entry is treated as a miss and overwritten.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from pydantic import ValidationError

from daw.models import MeasurementStatus, ProbeResult

log = logging.getLogger(__name__)


class ResultCache:
    """Probe results stored as JSON files under ``root/<probe>/<key>.json``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, probe: str, key: str) -> Path:
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in probe)
        return self.root / safe / f"{key}.json"

    def get(self, probe: str, key: str) -> ProbeResult | None:
        path = self._path(probe, key)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            return None
        try:
            result = ProbeResult.model_validate_json(text)
        except ValidationError:
            log.warning("ignoring unreadable cache entry %s", path)
            return None
        return result.model_copy(update={"cached": True})

    def put(self, probe: str, key: str, result: ProbeResult) -> None:
        """Store ``result`` unless a measurement failed, so that errors are retried."""
        if any(m.status is MeasurementStatus.ERROR for m in result.measurements):
            return
        path = self._path(probe, key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(result.model_dump_json())
            os.replace(temporary, path)
        except OSError as exc:
            log.warning("could not write cache entry %s: %s", path, exc)
