"""Tests of the CVSS 3.x base score calculator against scores published by NVD."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daw.probes.cvss import CvssError, _round_up, base_score, parse_v3

OSV_DATA = Path(__file__).parent.parent / "data" / "osv"

# Vectors with the base scores NVD and the FIRST calculator publish for them.
KNOWN_VECTORS = [
    ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8),
    ("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:H/I:H/A:H", 8.8),
    ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N", 7.5),
    ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 10.0),
    ("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 6.1),
    ("CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:C/C:L/I:L/A:N", 6.4),
    ("CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:U/C:L/I:L/A:N", 5.4),
    ("CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", 7.8),
    ("CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:N/A:N", 5.9),
    ("CVSS:3.1/AV:N/AC:L/PR:H/UI:N/S:U/C:H/I:H/A:H", 7.2),
    ("CVSS:3.1/AV:A/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N", 6.5),
    ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", 0.0),
    ("CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8),
    ("CVSS:3.0/AV:L/AC:L/PR:N/UI:R/S:U/C:H/I:H/A:H", 7.8),
]


@pytest.mark.parametrize(("vector", "expected"), KNOWN_VECTORS)
def test_base_score_known_vectors(vector: str, expected: float) -> None:
    assert base_score(vector) == expected


def test_base_score_sample_advisories() -> None:
    scores = {}
    for path in sorted(OSV_DATA.glob("*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        for item in record.get("severity", []):
            scores[record["id"]] = base_score(item["score"])

    assert scores["GHSA-8q59-q68h-6hv4"] == 9.8
    assert scores["GHSA-cx63-2mw6-8hw5"] == 8.8
    assert scores["GHSA-x84v-xcm2-53pg"] == 7.5
    assert scores["GHSA-p64x-8rxx-wf6q"] == 9.8
    assert "PYSEC-2021-142" not in scores


def test_base_score_ignores_temporal_metrics() -> None:
    vector = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N/E:U/RL:O/RC:C"
    assert base_score(vector) == 7.5


def test_parse_v3_records_version() -> None:
    parsed = parse_v3("CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N")
    assert parsed.version == "3.0"
    assert parsed.metrics["AV"] == "N"


def test_round_up_versions_differ() -> None:
    # CVSS 3.1 rounds to five decimals first, so float noise does not add 0.1.
    assert _round_up(4.000000000000001, "3.1") == 4.0
    assert _round_up(4.000000000000001, "3.0") == 4.1
    assert _round_up(4.02, "3.1") == 4.1
    assert _round_up(4.0, "3.1") == 4.0


@pytest.mark.parametrize(
    "vector",
    [
        "AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
        "CVSS:2.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
        "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N",
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H",
        "CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
        "CVSS:3.1/AV:N/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/ZZ:1",
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A",
    ],
)
def test_parse_v3_invalid_vectors(vector: str) -> None:
    with pytest.raises(CvssError):
        parse_v3(vector)
