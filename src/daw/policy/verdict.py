"""The verdict: what evaluation returns for each criterion, finding and waiver."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from daw.models import Finding
from daw.stages import Action


class Status(StrEnum):
    """The outcome of one criterion."""

    PASS = "pass"
    WARN = "warn"
    BLOCK = "block"
    NOT_APPLICABLE = "n/a"
    ERROR = "error"


class OverallStatus(StrEnum):
    """The outcome of a whole run: only ``block`` stops the change."""

    PASS = "pass"
    WARN = "warn"
    BLOCK = "block"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class WaiverState(StrEnum):
    APPLIED = "applied"
    EXPIRED = "expired"
    UNUSED = "unused"


class WaiverResult(_Frozen):
    """A waiver from the policy and whether it took effect in this evaluation."""

    target: str
    kind: str
    owner: str
    reason: str
    expires: str
    state: WaiverState


class CriterionResult(_Frozen):
    """One criterion's status with the measured value and why.

    ``blocking`` is true when this criterion alone stops the change at the stage.
    ``findings`` lists the fingerprints of the unwaived findings counted in the value.
    """

    id: str
    gate: str
    metric: str
    status: Status
    blocking: bool
    value: float | None
    threshold: float
    operator: str
    unit: str
    action: Action
    reason: str
    tools: list[str]
    findings: list[str]
    waived_by: str | None = None


class EvaluatedFinding(_Frozen):
    """A finding with its severity under the policy and whether a waiver covers it."""

    finding: Finding
    severity: str
    waived: bool
    waiver_reason: str | None = None


class Verdict(_Frozen):
    """The whole outcome of evaluating one set of measurements."""

    status: OverallStatus
    stage: str
    environment: str
    policy_digest: str
    evaluated_at: str
    criteria: list[CriterionResult]
    findings: list[EvaluatedFinding]
    waivers: list[WaiverResult]

    def criterion(self, criterion_id: str) -> CriterionResult:
        """Return the result for ``gate.criterion``; raises KeyError when absent."""
        for result in self.criteria:
            if result.id == criterion_id:
                return result
        raise KeyError(criterion_id)
