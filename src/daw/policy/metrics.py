"""The metrics a criterion may test, and how each is computed from measurements.

A *direct* metric is one measurement's value. A *count* metric is the number of
unwaived findings in a category, optionally of given severities. A *max* metric
is the largest ``value`` among unwaived findings in a category (0 with none).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SEVERITIES = ("critical", "high", "medium", "low", "unknown")


@dataclass(frozen=True)
class MetricSpec:
    """The computation of one metric.

    ``source`` is the measurement metric whose status decides whether the value
    could be taken: the metric itself for direct metrics, the finding category
    otherwise. ``evidence`` names a finding category that explains a direct
    metric's value, such as the files with uncovered new lines.
    """

    kind: Literal["direct", "count", "max"]
    source: str
    severities: tuple[str, ...] = ()
    evidence: str | None = None


def _severity_counts(prefix: str, category: str) -> dict[str, MetricSpec]:
    specs = {
        f"{prefix}_{sev}": MetricSpec("count", category, (sev,)) for sev in SEVERITIES
    }
    specs[f"{prefix}_total"] = MetricSpec("count", category)
    return specs


METRICS: dict[str, MetricSpec] = {
    "coverage_new_code": MetricSpec("direct", "coverage_new_code", evidence="coverage"),
    "coverage_total": MetricSpec("direct", "coverage_total"),
    "lint_errors": MetricSpec("count", "lint"),
    "type_errors": MetricSpec("count", "type"),
    "tsconfig_not_strict": MetricSpec("count", "tsconfig"),
    "test_failures": MetricSpec("count", "test"),
    "secrets": MetricSpec("count", "secret"),
    **_severity_counts("sast", "sast"),
    **_severity_counts("sca", "sca"),
    # An advisory with no severity anywhere, or a dependency whose version cannot be
    # resolved, may hide a critical one, so it counts as critical (fail closed).
    "sca_critical": MetricSpec("count", "sca", ("critical", "unknown")),
    "dependency_age_days": MetricSpec("max", "dependency_age"),
    "api_p95_ms": MetricSpec("direct", "api_p95_ms"),
    "bundle_size_increase_pct": MetricSpec("direct", "bundle_size_increase_pct"),
    "memory_mb": MetricSpec("direct", "memory_mb"),
    "p0_journeys_pass_pct": MetricSpec("direct", "p0_journeys_pass_pct"),
    "p1_journeys_pass_pct": MetricSpec("direct", "p1_journeys_pass_pct"),
    "visual_diff_pct": MetricSpec("direct", "visual_diff_pct"),
    "migration_destructive": MetricSpec("count", "migration_destructive"),
    "migration_lock_risk": MetricSpec("count", "migration_lock_risk"),
}
