"""CVSS 3.0 and 3.1 base scores from a vector string, per the FIRST specification."""

from __future__ import annotations

import math
from dataclasses import dataclass

_METRIC_WEIGHTS: dict[str, dict[str, float]] = {
    "AV": {"N": 0.85, "A": 0.62, "L": 0.55, "P": 0.2},
    "AC": {"L": 0.77, "H": 0.44},
    "UI": {"N": 0.85, "R": 0.62},
    "C": {"H": 0.56, "L": 0.22, "N": 0.0},
    "I": {"H": 0.56, "L": 0.22, "N": 0.0},
    "A": {"H": 0.56, "L": 0.22, "N": 0.0},
}

# Privileges Required weighs more when the scope changes (S:C).
_PRIVILEGES_UNCHANGED = {"N": 0.85, "L": 0.62, "H": 0.27}
_PRIVILEGES_CHANGED = {"N": 0.85, "L": 0.68, "H": 0.5}

_BASE_METRICS = ("AV", "AC", "PR", "UI", "S", "C", "I", "A")

# Temporal and environmental metrics may follow the base metrics in a vector. They
# do not change the base score, so only their names are checked.
_OTHER_METRICS = frozenset(
    ("E", "RL", "RC", "CR", "IR", "AR", "MAV", "MAC", "MPR", "MUI", "MS", "MC")
    + ("MI", "MA")
)


class CvssError(ValueError):
    """A CVSS vector is invalid or of a version this module does not score."""


@dataclass(frozen=True)
class CvssV3:
    """A parsed CVSS 3.x vector: version (``3.0`` or ``3.1``) and base metric values."""

    version: str
    metrics: dict[str, str]

    @property
    def base_score(self) -> float:
        """The base score from 0.0 to 10.0, rounded up to one decimal."""
        return _base_score(self)


def parse_v3(vector: str) -> CvssV3:
    """Parse ``CVSS:3.x/AV:../AC:..`` into its base metrics.

    Raises CvssError when the prefix is not ``CVSS:3.0`` or ``CVSS:3.1``, a base
    metric is missing, repeated or has an invalid value, or a metric is unknown.
    """
    prefix, _, rest = vector.strip().partition("/")
    version = prefix.removeprefix("CVSS:")
    if not prefix.startswith("CVSS:") or version not in ("3.0", "3.1"):
        raise CvssError(f"invalid CVSS 3.x vector {vector!r}: expected CVSS:3.0 or 3.1")

    metrics: dict[str, str] = {}
    for part in rest.split("/"):
        name, sep, value = part.partition(":")
        if not sep or name in metrics:
            raise CvssError(
                f"invalid CVSS vector {vector!r}: invalid or repeated {part!r}"
            )
        if name not in _BASE_METRICS and name not in _OTHER_METRICS:
            raise CvssError(f"invalid CVSS vector {vector!r}: unknown metric {name!r}")
        metrics[name] = value

    base = {name: metrics.get(name, "") for name in _BASE_METRICS}
    _check_base_values(vector, base)
    return CvssV3(version=version, metrics=base)


def base_score(vector: str) -> float:
    """Return the base score of a CVSS 3.0 or 3.1 vector, or raise CvssError."""
    return parse_v3(vector).base_score


def _check_base_values(vector: str, base: dict[str, str]) -> None:
    allowed = {
        **{name: set(weights) for name, weights in _METRIC_WEIGHTS.items()},
        "PR": set(_PRIVILEGES_UNCHANGED),
        "S": {"U", "C"},
    }
    for name in _BASE_METRICS:
        if base[name] not in allowed[name]:
            raise CvssError(
                f"invalid CVSS vector {vector!r}: {name} is {base[name] or 'missing'}"
            )


def _base_score(cvss: CvssV3) -> float:
    m = cvss.metrics
    changed = m["S"] == "C"
    confidentiality = _METRIC_WEIGHTS["C"][m["C"]]
    integrity = _METRIC_WEIGHTS["I"][m["I"]]
    availability = _METRIC_WEIGHTS["A"][m["A"]]
    iss = 1 - (1 - confidentiality) * (1 - integrity) * (1 - availability)

    impact = 6.42 * iss
    if changed:
        impact = 7.52 * (iss - 0.029) - 3.25 * (iss - 0.02) ** 15

    privileges = (_PRIVILEGES_CHANGED if changed else _PRIVILEGES_UNCHANGED)[m["PR"]]
    exploitability = (
        8.22
        * _METRIC_WEIGHTS["AV"][m["AV"]]
        * _METRIC_WEIGHTS["AC"][m["AC"]]
        * privileges
        * _METRIC_WEIGHTS["UI"][m["UI"]]
    )

    if impact <= 0:
        return 0.0
    total = impact + exploitability
    if changed:
        total *= 1.08
    return _round_up(min(total, 10.0), cvss.version)


def _round_up(value: float, version: str) -> float:
    """Round up to one decimal as the CVSS specification of ``version`` defines it.

    CVSS 3.0 takes the ceiling of value * 10. CVSS 3.1 first rounds to five
    decimals, so that floating-point noise such as 4.000000000000001 gives 4.0
    rather than 4.1.
    """
    if version == "3.0":
        return math.ceil(value * 10) / 10
    scaled = round(value * 100_000)
    if scaled % 10_000 == 0:
        return scaled / 100_000
    return (math.floor(scaled / 10_000) + 1) / 10.0
