"""The check workflow: select the files, run the probes concurrently, evaluate, record.

This module has side effects (git, tools, the cache and the clock); the decision
itself is made by the pure ``daw.policy.evaluation.evaluate``.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from daw import git
from daw.config import probe_settings
from daw.models import Finding, Measurement, ProbeResult
from daw.policy.evaluation import evaluate
from daw.policy.loading import load_policy
from daw.policy.model import Settings
from daw.probes.base import Probe, ProbeContext, error_result
from daw.probes.cache import ResultCache
from daw.probes.registry import all_probes, launch_order
from daw.run import ProbeSummary, RunRecord
from daw.stages import Stage

log = logging.getLogger(__name__)

ProgressCallback = Callable[[str, str, ProbeResult | None], None]
"""Called with (probe name, event, result): event is ``start`` or ``done``."""


@dataclass(frozen=True)
class CheckRequest:
    """The options of one ``daw check``, with absolute paths."""

    repo: Path
    stage: Stage = Stage.MERGE
    environment: str = "development"
    base: str | None = None
    all_files: bool = False
    policy_path: Path | None = None
    cli_settings: Settings = field(default_factory=Settings)
    use_cache: bool = True
    cache_dir: Path | None = None
    jobs: int | None = None


@dataclass(frozen=True)
class Scope:
    """The files a check covers and where tools read them."""

    scan_root: Path
    files: tuple[str, ...]
    base_commit: str | None
    changed_lines: dict[str, frozenset[int]] | None


def new_run_id(now: dt.datetime) -> str:
    """Return a run id that sorts by start time, such as ``20261204T150102-3fa9c2``."""
    return f"{now.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}"


def _regular_files(root: Path, paths: Sequence[str]) -> tuple[str, ...]:
    """Keep regular files, skipping folders and symlinks (which may loop)."""
    regular = []
    for rel in paths:
        path = root / rel
        if not path.is_symlink() and path.is_file():
            regular.append(rel)
    return tuple(sorted(regular))


@contextmanager
def _scope(request: CheckRequest, root: Path) -> Iterator[Scope]:
    """Yield the scope; the commit stage exports the git index to a temp folder."""
    if request.stage is Stage.COMMIT and not request.all_files:
        with tempfile.TemporaryDirectory(prefix="daw-index-") as temporary:
            export = Path(temporary)
            git.export_index(root, export)
            files = _regular_files(export, git.staged_files(root))
            lines = git.changed_lines(root, None, staged=True)
            yield Scope(export, files, git.head_commit(root), lines)
        return
    files = _regular_files(root, git.tracked_files(root))
    if request.stage is Stage.COMMIT:
        yield Scope(root, files, git.head_commit(root), git.changed_lines(root, None))
        return
    if request.base is None:
        yield Scope(root, files, None, None)
        return
    base_commit = git.merge_base(root, request.base)
    lines = git.changed_lines(root, base_commit, head=True)
    yield Scope(root, files, base_commit, lines)


def _run_one(probe: Probe, ctx: ProbeContext, cache: ResultCache | None) -> ProbeResult:
    started = time.monotonic()
    key = None
    try:
        key = probe.cache_key(ctx) if cache is not None else None
        if key is not None and cache is not None:
            hit = cache.get(probe.name, key)
            if hit is not None:
                return hit.model_copy(update={"duration_s": time.monotonic() - started})
        result = probe.run(ctx)
    except Exception as exc:  # a probe bug must not hide the other measurements
        log.exception("probe %s failed", probe.name)
        result = error_result(
            probe.name, probe.metrics, probe.name, f"probe crashed: {exc}"
        )
    result = result.model_copy(update={"duration_s": time.monotonic() - started})
    if key is not None and cache is not None:
        cache.put(probe.name, key, result)
    return result


def run_probes(
    probes: Sequence[Probe],
    ctx: ProbeContext,
    cache: ResultCache | None,
    jobs: int,
    progress: ProgressCallback | None = None,
) -> list[ProbeResult]:
    """Run ``probes`` on at most ``jobs`` threads; return the results by probe name."""

    def task(probe: Probe) -> ProbeResult:
        if progress:
            progress(probe.name, "start", None)
        result = _run_one(probe, ctx, cache)
        if progress:
            progress(probe.name, "done", result)
        return result

    with ThreadPoolExecutor(
        max_workers=max(1, jobs), thread_name_prefix="probe"
    ) as pool:
        results = list(pool.map(task, launch_order(list(probes))))
    return sorted(results, key=lambda result: result.probe)


def _tool_versions(measurements: Sequence[Measurement]) -> dict[str, str]:
    versions: dict[str, str] = {}
    for measurement in measurements:
        if measurement.tool_version:
            versions[measurement.tool] = measurement.tool_version
    return dict(sorted(versions.items()))


def run_check(
    request: CheckRequest,
    *,
    progress: ProgressCallback | None = None,
    probes: Sequence[Probe] | None = None,
    now: dt.datetime | None = None,
) -> RunRecord:
    """Measure the repository, evaluate the policy and return the run record.

    Raises ConfigError for an invalid policy or settings and GitError when the
    repository or the base ref cannot be read. The record is not stored here.
    """
    started = now or dt.datetime.now(dt.UTC)
    root = git.find_root(request.repo)
    policy, sources = load_policy(root, request.policy_path, request.environment)
    settings = probe_settings(root, policy, request.cli_settings)
    cache_dir = request.cache_dir or root / ".daw" / "cache"
    cache = ResultCache(cache_dir) if request.use_cache else None
    jobs = request.jobs or os.cpu_count() or 1
    with _scope(request, root) as scope:
        ctx = ProbeContext(
            repo_root=root,
            scan_root=scope.scan_root,
            stage=request.stage,
            files=scope.files,
            python=sys.executable,
            settings=settings,
            base=scope.base_commit,
            changed_lines=scope.changed_lines,
            all_files=request.all_files,
        )
        results = run_probes(probes or all_probes(), ctx, cache, jobs, progress)
    measurements = sorted(
        (m for r in results for m in r.measurements), key=lambda m: (m.metric, m.tool)
    )
    findings: list[Finding] = sorted(
        (f for r in results for f in r.findings), key=Finding.sort_key
    )
    verdict = evaluate(
        policy,
        measurements,
        findings,
        stage=request.stage,
        environment=request.environment,
        at=started,
    )
    return RunRecord(
        run_id=new_run_id(started),
        created_at=started.isoformat(),
        repo=str(root),
        commit=git.head_commit(root),
        base=request.base,
        base_commit=scope.base_commit if request.stage is not Stage.COMMIT else None,
        stage=request.stage.value,
        environment=request.environment,
        all_files=request.all_files,
        dirty=git.is_dirty(root),
        tool_versions=_tool_versions(measurements),
        policy=policy.canonical(),
        policy_sources=[source.path for source in sources],
        measurements=measurements,
        findings=findings,
        probes=[
            ProbeSummary(probe=r.probe, duration_s=r.duration_s, cached=r.cached)
            for r in results
        ],
        verdict=verdict,
    )


def clear_cache(root: Path) -> None:
    """Remove the result cache of the repository at ``root``."""
    shutil.rmtree(root / ".daw" / "cache", ignore_errors=True)
