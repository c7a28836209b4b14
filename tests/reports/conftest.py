"""Fixtures of run records whose verdicts come from the real policy and evaluate()."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import pytest
from report_records import (
    STANDARD_FINDINGS,
    standard_measurements,
    waiver_policy,
)
from report_records import (
    build_record as build,
)

from daw.run import RunRecord

BuildRecord = Callable[..., RunRecord]


@pytest.fixture
def build_record(tmp_path: Path) -> BuildRecord:
    """Return report_records.build_record with its policy folder set to tmp_path."""
    return functools.partial(build, tmp_path)


@pytest.fixture
def standard_record(build_record: BuildRecord) -> RunRecord:
    """A merge check that blocks on lint, new-code coverage, SAST and a test error."""
    return build_record(
        standard_measurements(), STANDARD_FINDINGS, policy_text=waiver_policy()
    )
