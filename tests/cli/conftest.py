"""Fixtures for running the real ``daw`` CLI in-process on real repositories."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from daw.cli.main import main

OSV_DB = Path(__file__).resolve().parents[1] / "data" / "osv"

# Port 9 (discard) has no listener here, so dependency-age lookups fail at once
# instead of reaching the public index.
NO_INDEX = "http://127.0.0.1:9/pypi"

CLEAN_APP = '''"""A tiny module."""


def add(a: int, b: int) -> int:
    return a + b
'''

CLEAN_TEST = """from app import add


def test_add():
    assert add(1, 2) == 3
"""


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def daw(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    """Return a function that runs ``daw ARGS`` in a folder and captures its output.

    The store and the cache live in the test's temporary folder, and the dependency
    scan uses the offline sample advisories, so no test reaches the network.
    """
    monkeypatch.setenv("DAW_STORE", str(tmp_path / "runs.db"))
    monkeypatch.setenv("DAW_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("COLUMNS", "200")

    def run(*args: str, cwd: Path) -> Result:
        monkeypatch.chdir(cwd)
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture
def clean_files() -> dict[str, str]:
    return {
        "app.py": CLEAN_APP,
        "test_app.py": CLEAN_TEST,
        "pyproject.toml": (
            '[project]\nname = "demo"\nversion = "0"\ndependencies = []\n'
        ),
    }


@pytest.fixture
def offline() -> Callable[..., list[str]]:
    """Return the options that keep a check offline, followed by ``extra``."""

    def options(*extra: str) -> list[str]:
        return ["--osv-db", str(OSV_DB), "--index-url", NO_INDEX, "--quiet", *extra]

    return options
