"""The record of one check: inputs, measurements and verdict, stored for replay."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from daw.models import Finding, Measurement
from daw.policy.verdict import Verdict


class ProbeSummary(BaseModel):
    """Timing of one probe: seconds taken and whether the result came from the cache."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    probe: str
    duration_s: float
    cached: bool


class RunRecord(BaseModel):
    """Everything needed to show, explain and replay one run.

    ``created_at`` is the wall-clock time the run started (UTC, ISO 8601) and is the
    only field that is not an input of the verdict. ``policy`` is the canonical
    effective policy, so that replay needs no policy file.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    run_id: str
    created_at: str
    repo: str
    commit: str | None
    base: str | None = None
    base_commit: str | None = None
    stage: str
    environment: str
    all_files: bool = False
    dirty: bool = False
    tool_versions: dict[str, str] = Field(default_factory=dict)
    policy: dict[str, Any]
    policy_sources: list[str] = Field(default_factory=list)
    measurements: list[Measurement]
    findings: list[Finding]
    probes: list[ProbeSummary] = Field(default_factory=list)
    verdict: Verdict
