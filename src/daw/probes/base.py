"""The contract every probe implements, the context it receives and shared helpers.

A probe runs a tool and parses its output. It never decides pass or fail: it
returns measurements and findings, and reports a tool it cannot run as a
measurement with status ``error`` instead of raising.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Protocol

from daw.models import Measurement, MeasurementStatus, ProbeResult
from daw.stages import Stage


@dataclass(frozen=True)
class ProbeSettings:
    """Options from the command line, ``[tool.daw]`` and the policy's ``settings``.

    Paths are absolute. ``test_command`` is an argument list; ``None`` means the
    default ``<python> -m pytest``.
    """

    test_command: tuple[str, ...] | None = None
    coverage_reports: tuple[Path, ...] = ()
    junit_reports: tuple[Path, ...] = ()
    sarif_files: tuple[Path, ...] = ()
    osv_db: Path | None = None
    osv_api_url: str | None = "https://api.osv.dev"
    pypi_index_url: str | None = "https://pypi.org/pypi"
    tool_timeout_s: float = 600.0
    test_timeout_s: float = 1800.0
    network_timeout_s: float = 10.0


@dataclass(frozen=True)
class ProbeContext:
    """The inputs a probe may read.

    ``repo_root`` is the git working tree. ``scan_root`` is where file-based tools
    run: the working tree, or at the commit stage a temporary export of the git
    index. ``files`` are the paths in scope, relative to ``scan_root``, sorted,
    regular files only. ``changed_lines`` maps each path added or changed since
    the base to its added or changed line numbers (1-based). It is None when no
    base was given.
    """

    repo_root: Path
    scan_root: Path
    stage: Stage
    files: tuple[str, ...]
    python: str
    settings: ProbeSettings = field(default_factory=ProbeSettings)
    base: str | None = None
    changed_lines: dict[str, frozenset[int]] | None = None
    all_files: bool = False


class Probe(Protocol):
    """An adapter around one tool family.

    ``metrics`` names every measurement the probe returns, so that an unexpected
    crash can still be reported as ``error`` for each of them.
    """

    name: str
    metrics: tuple[str, ...]

    def cache_key(self, ctx: ProbeContext) -> str | None:
        """Return a digest of all the result depends on, or None to skip the cache."""
        ...

    def run(self, ctx: ProbeContext) -> ProbeResult:
        """Run the tool and return its measurements and findings."""
        ...


def digest_files(root: Path, paths: Iterable[str], *extra: str) -> str:
    """Return a sha256 over ``extra`` and the names and contents of ``paths``.

    A missing or unreadable file contributes its name and a marker, so that a
    file appearing later changes the digest.
    """
    digest = hashlib.sha256()
    for part in extra:
        digest.update(part.encode("utf-8", "surrogateescape") + b"\0")
    for rel in sorted(set(paths)):
        digest.update(rel.encode("utf-8", "surrogateescape") + b"\0")
        try:
            digest.update(hashlib.sha256((root / rel).read_bytes()).digest())
        except OSError:
            digest.update(b"<missing>")
    return digest.hexdigest()


def error_result(
    probe: str, metrics: Iterable[str], tool: str, reason: str
) -> ProbeResult:
    """Return a result with an ``error`` measurement for each metric."""
    return ProbeResult(
        probe=probe,
        measurements=[
            Measurement(
                metric=m, status=MeasurementStatus.ERROR, tool=tool, reason=reason
            )
            for m in metrics
        ],
    )


def not_applicable(metric: str, tool: str, reason: str) -> Measurement:
    """Return a measurement recording that the metric does not apply here."""
    return Measurement(
        metric=metric, status=MeasurementStatus.NOT_APPLICABLE, tool=tool, reason=reason
    )


def files_with_suffix(ctx: ProbeContext, *suffixes: str) -> list[str]:
    """Return in-scope paths ending in one of ``suffixes``, outside vendored folders."""
    skipped = (
        "node_modules/",
        ".venv/",
        "venv/",
        ".git/",
        ".daw/",
        ".tox/",
        "__pycache__/",
    )
    return [
        rel
        for rel in ctx.files
        if rel.endswith(suffixes) and not any(f"/{s}" in f"/{rel}" for s in skipped)
    ]


def same_interpreter(python: str) -> bool:
    """Return whether ``python`` is the interpreter running DAW."""
    try:
        return Path(python).resolve() == Path(sys.executable).resolve()
    except OSError:
        return False


def installed_version(python: str, distribution: str) -> str | None:
    """Return the installed version of ``distribution`` when ``python`` runs DAW.

    Reading package metadata in-process saves starting the tool just to ask for
    its version, which dominates a warm check. Returns None for another
    interpreter or a package that is not installed, so callers ask the tool.
    """
    if not same_interpreter(python):
        return None
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


MAX_FILE_BYTES = 1024 * 1024
"""Largest file, in bytes, that probes read for fingerprints or pass to bandit."""

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


class SourceLines:
    """Lines of the files under one root, read on first use, for fingerprints.

    Bytes that are not UTF-8 are replaced. A path that is absolute, leaves the
    root, is missing, is not a regular file or is larger than ``max_bytes``
    yields None, so that callers fall back to another part of the fingerprint.
    """

    def __init__(self, root: Path, max_bytes: int = MAX_FILE_BYTES) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self._cache: dict[str, list[str] | None] = {}

    def line(self, rel: str, number: int | None) -> str | None:
        """Return line ``number`` (1-based) of ``rel``, "" past its end, or None."""
        if rel not in self._cache:
            self._cache[rel] = self._read(rel)
        lines = self._cache[rel]
        if lines is None:
            return None
        if number is None or not 1 <= number <= len(lines):
            return ""
        return lines[number - 1]

    def _read(self, rel: str) -> list[str] | None:
        relative = PurePosixPath(rel)
        if relative.is_absolute() or ".." in relative.parts:
            return None
        path = self.root / relative
        try:
            if not path.is_file() or path.stat().st_size > self.max_bytes:
                return None
            data = path.read_bytes()
        except OSError:
            return None
        return _LINE_BREAK.split(data.decode("utf-8", errors="replace"))
