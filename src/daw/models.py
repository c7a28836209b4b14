"""Data that probes return and evaluation reads: measurements and findings.

These types are pure data. Probes build them, the store saves them as JSON, and
evaluation reads them back, so every field must survive a JSON round trip.
"""

from __future__ import annotations

import hashlib
import re
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class MeasurementStatus(StrEnum):
    """Whether a probe could take a measurement."""

    OK = "ok"
    ERROR = "error"
    NOT_APPLICABLE = "n/a"


class Finding(BaseModel):
    """One problem at a file and line, reported by a tool.

    ``category`` groups findings into the metric they count towards: ``lint``,
    ``type``, ``tsconfig``, ``secret``, ``sast``, ``sca``, ``test``,
    ``dependency_age``, ``coverage``. ``severity`` is ``critical``, ``high``,
    ``medium``, ``low`` or ``unknown``; for SAST findings evaluation recomputes it
    from ``tool_severity``, ``tool_confidence`` and ``score`` with the policy's
    severity mapping.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    category: str
    tool: str
    rule_id: str
    message: str
    path: str | None = None
    line: int | None = None
    severity: str = "unknown"
    tool_severity: str | None = None
    tool_confidence: str | None = None
    score: float | None = Field(
        default=None, description="Numeric severity, such as a CVSS or SARIF score."
    )
    value: float | None = Field(
        default=None, description="A number the finding carries, such as days behind."
    )
    fingerprint: str

    def sort_key(self) -> tuple[str, str, int, str, str]:
        return (
            self.category,
            self.path or "",
            self.line or 0,
            self.rule_id,
            self.fingerprint,
        )


class Measurement(BaseModel):
    """One metric as a probe measured it, or the reason it could not.

    ``metric`` is the name criteria refer to (``coverage_total``) or, for metrics
    counted from findings, the finding category (``lint``). ``inputs_digest`` is the
    sha256 of the tool, its configuration and the files it read.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    metric: str
    status: MeasurementStatus = MeasurementStatus.OK
    value: float | None = None
    unit: str = ""
    tool: str
    tool_version: str = ""
    inputs_digest: str = ""
    reason: str = ""
    details: dict[str, str | int | float | bool | None] = Field(default_factory=dict)


class ProbeResult(BaseModel):
    """Everything one probe run produced."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    probe: str
    measurements: list[Measurement]
    findings: list[Finding] = Field(default_factory=list)
    duration_s: float = 0.0
    cached: bool = False


_WHITESPACE = re.compile(r"\s+")


def normalise_snippet(text: str) -> str:
    """Collapse whitespace so that re-indenting code keeps its fingerprint."""
    return _WHITESPACE.sub(" ", text).strip()


def fingerprint(*parts: str | None) -> str:
    """Return a stable id for a finding built from parts that exclude the line number.

    Callers pass the tool, the rule id, the path and the normalised content of the
    flagged code, so the id survives the code moving within its file.
    """
    joined = "\x1f".join(part or "" for part in parts)
    return hashlib.sha256(joined.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def disambiguate(findings: list[Finding]) -> list[Finding]:
    """Give findings that share a fingerprint distinct ones, in file order.

    Two identical lines flagged by the same rule in one file would otherwise merge.
    The second gets ``#2`` appended before hashing, the third ``#3``, and so on.
    """
    seen: dict[str, int] = {}
    result = []
    for finding in sorted(findings, key=Finding.sort_key):
        count = seen.get(finding.fingerprint, 0) + 1
        seen[finding.fingerprint] = count
        if count > 1:
            new = fingerprint(finding.fingerprint, f"#{count}")
            finding = finding.model_copy(update={"fingerprint": new})
        result.append(finding)
    return result
