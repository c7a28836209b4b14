"""The policy document: gates of criteria, severity mapping, environments, waivers."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from daw.policy.metrics import METRICS, SEVERITIES
from daw.stages import Action

Operator = Literal[">=", ">", "<=", "<", "=="]
GateName = Literal["code_quality", "security", "performance", "uat", "migration"]
EnvironmentName = Literal["development", "staging", "production"]
GATES: tuple[str, ...] = GateName.__args__  # type: ignore[attr-defined]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Criterion(_Strict):
    """One metric, a comparison against a threshold, and the action on failure."""

    metric: str
    operator: Operator
    threshold: float = Field(strict=True, allow_inf_nan=False)
    unit: str = ""
    action: Action
    description: str = ""
    enabled: bool = True

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        if value not in METRICS:
            known = ", ".join(sorted(METRICS))
            raise ValueError(f"unknown metric {value!r}; known metrics: {known}")
        return value

    def passes(self, value: float) -> bool:
        comparisons = {
            ">=": value >= self.threshold,
            ">": value > self.threshold,
            "<=": value <= self.threshold,
            "<": value < self.threshold,
            "==": value == self.threshold,
        }
        return comparisons[self.operator]


class SeverityMapping(_Strict):
    """The mapping from tool severities to critical, high, medium or low."""

    scores: dict[Literal["critical", "high", "medium"], float]
    bandit: dict[str, Literal["critical", "high", "medium", "low"]]
    sarif_levels: dict[Literal["error", "warning", "note", "none"], str]

    @field_validator("bandit")
    @classmethod
    def _bandit_keys(cls, value: dict[str, str]) -> dict[str, str]:
        levels = {"HIGH", "MEDIUM", "LOW", "UNDEFINED"}
        for key in value:
            severity, _, confidence = key.partition("/")
            if severity not in levels or confidence not in levels | {"*"}:
                raise ValueError(
                    f"invalid bandit key {key!r}: write SEVERITY/CONFIDENCE with "
                    "HIGH, MEDIUM or LOW, and * for any confidence"
                )
        return value

    @field_validator("sarif_levels")
    @classmethod
    def _level_values(cls, value: dict[str, str]) -> dict[str, str]:
        for level, severity in value.items():
            if severity not in SEVERITIES:
                raise ValueError(f"invalid severity {severity!r} for level {level!r}")
        return value


class Waiver(_Strict):
    """A time-boxed exception for a criterion or for one finding."""

    criterion: str | None = None
    fingerprint: str | None = None
    reason: str = Field(min_length=1)
    owner: str = Field(min_length=1)
    expires: dt.date

    @model_validator(mode="after")
    def _one_target(self) -> Waiver:
        if (self.criterion is None) == (self.fingerprint is None):
            raise ValueError(
                "a waiver names exactly one of 'criterion' or 'fingerprint'"
            )
        return self


class Settings(_Strict):
    """Measurement options a project may set in its policy.

    Paths are relative to the repository root.
    """

    test_command: list[str] | None = None
    coverage_reports: list[str] = Field(default_factory=list)
    junit_reports: list[str] = Field(default_factory=list)
    sarif_files: list[str] = Field(default_factory=list)
    osv_db: str | None = None
    osv_api_url: str | None = None
    pypi_index_url: str | None = None
    tool_timeout_s: float | None = Field(default=None, gt=0)
    test_timeout_s: float | None = Field(default=None, gt=0)

    @field_validator("osv_api_url", "pypi_index_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"invalid URL {value!r}: use an http:// or https:// URL")
        return value


class Policy(_Strict):
    """An effective policy: the default merged with the project file and environment."""

    version: Literal[1] = 1
    gates: dict[GateName, dict[str, Criterion]]
    severity: SeverityMapping
    waivers: list[Waiver] = Field(default_factory=list)
    settings: Settings = Field(default_factory=Settings)
    environments: dict[EnvironmentName, Any] = Field(default_factory=dict)

    def criteria(self) -> list[tuple[str, Criterion]]:
        """Return ``(gate.criterion, criterion)`` pairs in a stable order."""
        pairs = [
            (f"{gate}.{name}", criterion)
            for gate, criteria in self.gates.items()
            for name, criterion in criteria.items()
        ]
        order = {gate: i for i, gate in enumerate(GATES)}
        return sorted(pairs, key=lambda pair: (order[pair[0].split(".")[0]], pair[0]))

    def canonical(self) -> dict[str, Any]:
        """Return the policy as plain JSON data, with the environments section removed.

        The environment has already been applied to an effective policy, so its
        overrides are not part of what the verdict depends on.
        """
        data = self.model_dump(mode="json", exclude={"environments"})
        return data

    def digest(self) -> str:
        """Return the sha256 of the canonical JSON form of this policy."""
        text = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()
