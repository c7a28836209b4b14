"""Shared fixtures: real git repositories in temporary folders, with a private HOME."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
):
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_AUTHOR_NAME", "DAW Test")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "test@example.invalid")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "DAW Test")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "test@example.invalid")
    monkeypatch.delenv("GIT_DIR", raising=False)
    monkeypatch.delenv("GIT_INDEX_FILE", raising=False)


class Repo:
    """A real git repository in a temporary folder, with helpers to write and commit."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def git(self, *args: str) -> str:
        proc = subprocess.run(
            ["git", *args], cwd=self.root, capture_output=True, text=True, check=True
        )
        return proc.stdout

    def write(self, rel: str, text: str | bytes) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
        return path

    def commit(self, message: str = "change", *paths: str) -> str:
        self.git("add", "--all", *paths)
        self.git("commit", "--quiet", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD").strip()


@pytest.fixture
def make_repo(tmp_path: Path) -> Callable[..., Repo]:
    """Return a factory of git repositories; files given as a mapping are committed."""
    counter = 0

    def factory(
        files: dict[str, str | bytes] | None = None, *, commit: bool = True
    ) -> Repo:
        nonlocal counter
        counter += 1
        root = tmp_path / f"repo{counter}"
        root.mkdir()
        repo = Repo(root)
        repo.git("init", "--quiet", "--initial-branch=main")
        for rel, text in (files or {}).items():
            repo.write(rel, text)
        if commit:
            repo.commit("initial")
        return repo

    return factory


@pytest.fixture
def python() -> str:
    """The interpreter running the tests, which has DAW's tools installed."""
    return sys.executable


@pytest.fixture
def tool_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Put the virtual environment's scripts (ruff, bandit, ...) first on PATH."""
    bindir = str(Path(sys.executable).parent)
    monkeypatch.setenv("PATH", bindir + os.pathsep + os.environ.get("PATH", ""))
