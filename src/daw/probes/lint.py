"""Lint probes: ruff for Python, and the project's own eslint for JS and TypeScript."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from daw.errors import GitError
from daw.git import tracked_files
from daw.models import (
    Finding,
    Measurement,
    ProbeResult,
    disambiguate,
    fingerprint,
    normalise_snippet,
)
from daw.probes.base import (
    ProbeContext,
    SourceLines,
    digest_files,
    error_result,
    files_with_suffix,
    installed_version,
    not_applicable,
)
from daw.process import Completed, ToolError, run_tool
from daw.redact import redact

log = logging.getLogger(__name__)

PYTHON_SUFFIXES = (".py", ".pyi")
JS_SUFFIXES = (".js", ".jsx", ".mjs", ".cjs", ".ts", ".tsx", ".mts", ".cts")
RUFF_CONFIG_NAMES = ("pyproject.toml", "ruff.toml", ".ruff.toml")
ESLINT_CONFIG_NAMES = (
    "eslint.config.js",
    "eslint.config.mjs",
    "eslint.config.cjs",
    "eslint.config.ts",
    "eslint.config.mts",
    "eslint.config.cts",
    ".eslintrc",
    ".eslintrc.js",
    ".eslintrc.cjs",
    ".eslintrc.yaml",
    ".eslintrc.yml",
    ".eslintrc.json",
)
LOCKFILE_NAMES = (
    "package-lock.json",
    "npm-shrinkwrap.json",
    "yarn.lock",
    "pnpm-lock.yaml",
)
RUFF_SYNTAX_CODES = frozenset({"E999", "invalid-syntax", "E902"})

# Enough paths per tool call to keep startup cost low, and few enough that the
# argument list stays far below the kernel's limit on command-line length.
BATCH_SIZE = 500


def relative_path(root: Path, reported: str) -> str:
    """Return ``reported`` relative to ``root`` with forward slashes.

    A path outside ``root`` is returned unchanged, with forward slashes.
    """
    path = Path(reported)
    if not path.is_absolute():
        return path.as_posix()
    for base in (root, root.resolve()):
        try:
            return path.relative_to(base).as_posix()
        except ValueError:
            continue
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except (ValueError, OSError):
        return path.as_posix()


def batches(paths: list[str], size: int = BATCH_SIZE) -> Iterator[list[str]]:
    """Yield ``paths`` in consecutive slices of at most ``size`` items."""
    for start in range(0, len(paths), size):
        yield paths[start : start + size]


def has_tracked_files(ctx: ProbeContext, suffixes: tuple[str, ...]) -> bool:
    """Return whether git tracks a file with one of ``suffixes`` in the repository.

    Returns True when git fails, so that callers report a measured
    zero over "not applicable".
    """
    try:
        tracked = tracked_files(ctx.repo_root)
    except GitError as exc:
        log.warning("could not list tracked files in %s: %s", ctx.repo_root, exc)
        return True
    whole_repo = replace(ctx, scan_root=ctx.repo_root, files=tuple(tracked))
    return bool(files_with_suffix(whole_repo, *suffixes))


def _count_measurement(
    tool: str, findings: list[Finding], version: str, digest: str, files: int
) -> Measurement:
    return Measurement(
        metric="lint",
        value=float(len(findings)),
        unit="findings",
        tool=tool,
        tool_version=version,
        inputs_digest=digest,
        details={"files": files},
    )


def _no_files_result(probe: str, tool: str, version: str) -> ProbeResult:
    measurement = Measurement(
        metric="lint",
        value=0.0,
        unit="findings",
        tool=tool,
        tool_version=version,
        details={"files": 0, "note": "no files in scope"},
    )
    return ProbeResult(probe=probe, measurements=[measurement])


class RuffProbe:
    """Run ``ruff check`` with the project's configuration on the in-scope Python files.

    Every violation is a ``lint`` finding: severity ``high`` for files ruff could
    not parse or read, ``medium`` otherwise.
    """

    name = "ruff"
    metrics = ("lint",)

    def cache_key(self, ctx: ProbeContext) -> str | None:
        """Return a digest of the Python files, the ruff configs above them and ruff.

        Returns None when no Python file is in scope or ruff's version is unknown.
        """
        files = files_with_suffix(ctx, *PYTHON_SUFFIXES)
        if not files:
            return None
        try:
            version = _ruff_version(ctx)
        except ToolError:
            return None
        configs = _config_candidates(ctx.scan_root, files, RUFF_CONFIG_NAMES)
        return digest_files(
            ctx.scan_root, [*files, *configs], "ruff", version, *_RUFF_FLAGS
        )

    def run(self, ctx: ProbeContext) -> ProbeResult:
        """Run ruff and return the ``lint`` count with one finding per violation."""
        started = time.monotonic()
        files = files_with_suffix(ctx, *PYTHON_SUFFIXES)
        try:
            version = _ruff_version(ctx)
        except ToolError as exc:
            log.warning("ruff in %s failed: %s", ctx.scan_root, exc)
            return error_result(self.name, self.metrics, "ruff", str(exc))

        if not files:
            if not has_tracked_files(ctx, PYTHON_SUFFIXES):
                measurement = not_applicable("lint", "ruff", "no Python files")
                return ProbeResult(probe=self.name, measurements=[measurement])
            return _no_files_result(self.name, "ruff", version)

        try:
            violations = _run_ruff(ctx, files)
        except ToolError as exc:
            log.warning("ruff in %s failed: %s", ctx.scan_root, exc)
            return error_result(self.name, self.metrics, "ruff", str(exc))

        findings = _ruff_findings(ctx.scan_root, violations)
        digest = self.cache_key(ctx) or ""
        measurement = _count_measurement("ruff", findings, version, digest, len(files))
        return ProbeResult(
            probe=self.name,
            measurements=[measurement],
            findings=findings,
            duration_s=time.monotonic() - started,
        )


# --no-fix because a project config with `fix = true` would make `ruff check`
# rewrite files; --force-exclude so that the project's `exclude` also applies to
# paths passed on the command line.
_RUFF_FLAGS = (
    "check",
    "--output-format",
    "json",
    "--no-cache",
    "--no-fix",
    "--force-exclude",
)


def _ruff_version(ctx: ProbeContext) -> str:
    """Return ruff's version; raises ToolError when ruff cannot run."""
    known = installed_version(ctx.python, "ruff")
    if known is not None:
        return known
    completed = run_tool(
        [ctx.python, "-m", "ruff", "--version"],
        cwd=ctx.scan_root,
        timeout_s=ctx.settings.tool_timeout_s,
    )
    text = completed.stdout.strip()
    if completed.returncode != 0 or not text.startswith("ruff "):
        raise ToolError(
            f"ruff is not installed for {ctx.python}: {completed.describe()}"
        )
    return text.removeprefix("ruff ").strip()


def _run_ruff(ctx: ProbeContext, files: list[str]) -> list[dict[str, Any]]:
    """Return ruff's violations for ``files``; raises ToolError on a failed run."""
    command = [ctx.python, "-m", "ruff", *_RUFF_FLAGS]
    return _run_json_batches(ctx, command, files, "ruff", "violations")


def _run_json_batches(
    ctx: ProbeContext, command: list[str], files: list[str], tool: str, what: str
) -> list[dict[str, Any]]:
    """Run ``command -- FILES`` per batch and return the JSON objects it lists.

    Raises ToolError on an exit code other than 0 or 1, on output that is not
    JSON, on JSON that is not a list of objects, and on exit 1 with an empty list.
    """
    records: list[dict[str, Any]] = []
    for batch in batches(files):
        completed = run_tool(
            [*command, "--", *batch],
            cwd=ctx.scan_root,
            timeout_s=ctx.settings.tool_timeout_s,
        )
        records.extend(_parse_json_list(completed, tool, what))
    return records


def _parse_json_list(
    completed: Completed, tool: str, what: str
) -> list[dict[str, Any]]:
    if completed.returncode not in (0, 1):
        raise ToolError(f"{tool} failed: {completed.describe()}")
    try:
        data = json.loads(completed.stdout)
    except json.JSONDecodeError as exc:
        raise ToolError(
            f"{tool} wrote output that is not JSON ({exc}): {completed.describe()}"
        ) from exc
    if not isinstance(data, list) or not all(isinstance(v, dict) for v in data):
        raise ToolError(
            f"{tool} wrote JSON that is not a list of {what}: {completed.describe()}"
        )
    if completed.returncode == 1 and not data:
        raise ToolError(
            f"{tool} exited with 1 but reported no {what}: {completed.describe()}"
        )
    return data


def _ruff_findings(root: Path, violations: list[dict[str, Any]]) -> list[Finding]:
    sources = SourceLines(root)
    findings = []
    for violation in violations:
        code = violation.get("code") or "invalid-syntax"
        path = relative_path(root, str(violation.get("filename", "")))
        location = violation.get("location") or {}
        line = location.get("row") if isinstance(location.get("row"), int) else None
        snippet = normalise_snippet(sources.line(path, line) or "")
        findings.append(
            Finding(
                category="lint",
                tool="ruff",
                rule_id=str(code),
                message=redact(str(violation.get("message", ""))),
                path=path,
                line=line,
                severity="high" if code in RUFF_SYNTAX_CODES else "medium",
                tool_severity=violation.get("severity"),
                fingerprint=fingerprint("ruff", str(code), path, snippet),
            )
        )
    return disambiguate(findings)


def _config_candidates(
    root: Path, files: list[str], names: tuple[str, ...]
) -> list[str]:
    """Return every path named ``names`` in a folder from ``root`` down to each file."""
    folders = {""}
    for rel in files:
        parent = Path(rel).parent
        while parent != Path("."):
            folders.add(parent.as_posix())
            parent = parent.parent
    return sorted(
        f"{folder}/{name}" if folder else name for folder in folders for name in names
    )


class EslintProbe:
    """Run the project's own eslint on the in-scope JavaScript and TypeScript files.

    Only errors (eslint severity 2) are findings; warnings are not lint errors.
    Parsing errors are findings of severity ``high``.
    """

    name = "eslint"
    metrics = ("lint",)

    def cache_key(self, ctx: ProbeContext) -> str | None:
        """Return a digest of the files, eslint configs, lockfiles and eslint's version.

        Returns None when eslint does not apply or its version is unknown.
        """
        files = files_with_suffix(ctx, *JS_SUFFIXES)
        version = _eslint_version(ctx.repo_root)
        if not files or version is None or _eslint_config(ctx.scan_root) is None:
            return None
        inputs = [*files, *ESLINT_CONFIG_NAMES, "package.json", *LOCKFILE_NAMES]
        return digest_files(ctx.scan_root, inputs, "eslint", version, *_ESLINT_FLAGS)

    def run(self, ctx: ProbeContext) -> ProbeResult:
        """Run eslint and return the ``lint`` measurement with one finding per error."""
        started = time.monotonic()
        config = _eslint_config(ctx.scan_root)
        if config is None:
            measurement = not_applicable("lint", "eslint", "no eslint configuration")
            return ProbeResult(probe=self.name, measurements=[measurement])

        executable = ctx.repo_root / "node_modules" / ".bin" / "eslint"
        version = _eslint_version(ctx.repo_root)
        if not executable.exists() or version is None:
            reason = (
                "eslint configuration found but node_modules/.bin/eslint is missing; "
                f"run npm install (configuration: {config})"
            )
            return error_result(self.name, self.metrics, "eslint", reason)

        files = files_with_suffix(ctx, *JS_SUFFIXES)
        if not files:
            return _no_files_result(self.name, "eslint", version)

        try:
            with _node_modules_linked(ctx):
                reports = _run_eslint(ctx, executable, files)
        except (ToolError, OSError) as exc:
            log.warning("eslint in %s failed: %s", ctx.scan_root, exc)
            return error_result(self.name, self.metrics, "eslint", str(exc))

        findings = _eslint_findings(ctx.scan_root, reports)
        digest = self.cache_key(ctx) or ""
        measurement = _count_measurement(
            "eslint", findings, version, digest, len(files)
        )
        return ProbeResult(
            probe=self.name,
            measurements=[measurement],
            findings=findings,
            duration_s=time.monotonic() - started,
        )


_ESLINT_FLAGS = ("--format", "json")


def _eslint_config(root: Path) -> str | None:
    """Return the name of the eslint configuration at ``root``, or None without one."""
    for name in ESLINT_CONFIG_NAMES:
        if (root / name).is_file():
            return name
    try:
        package = json.loads((root / "package.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if isinstance(package, dict) and "eslintConfig" in package:
        return "package.json eslintConfig"
    return None


def _eslint_version(repo_root: Path) -> str | None:
    """Return the version of eslint in ``repo_root``'s node_modules, or None."""
    manifest = repo_root / "node_modules" / "eslint" / "package.json"
    try:
        version = json.loads(manifest.read_text(encoding="utf-8")).get("version")
    except (OSError, ValueError, AttributeError):
        return None
    return version if isinstance(version, str) else None


@contextmanager
def _node_modules_linked(ctx: ProbeContext) -> Iterator[None]:
    """Make the working tree's node_modules visible in an exported ``scan_root``.

    The eslint config and its plugins are imported from node_modules next to the
    config file, and an export of the git index has none. The link is removed on
    exit.
    """
    link = ctx.scan_root / "node_modules"
    target = ctx.repo_root / "node_modules"
    if ctx.scan_root.resolve() == ctx.repo_root.resolve() or link.exists():
        yield
        return
    # NOTE: this writes a symlink into the exported tree while eslint runs;
    # probes that walk scan_root instead of reading ctx.files would see it.
    os.symlink(target, link, target_is_directory=True)
    try:
        yield
    finally:
        link.unlink()


def _run_eslint(
    ctx: ProbeContext, executable: Path, files: list[str]
) -> list[dict[str, Any]]:
    """Return eslint's per-file reports; raises ToolError on a failed run."""
    command = [str(executable), *_ESLINT_FLAGS]
    return _run_json_batches(ctx, command, files, "eslint", "reports")


def _eslint_findings(root: Path, reports: list[dict[str, Any]]) -> list[Finding]:
    sources = SourceLines(root)
    findings = []
    for report in reports:
        path = relative_path(root, str(report.get("filePath", "")))
        for message in report.get("messages") or []:
            if not isinstance(message, dict) or message.get("severity") != 2:
                continue
            findings.append(_eslint_finding(sources, path, message))
    return disambiguate(findings)


def _eslint_finding(
    sources: SourceLines, path: str, message: dict[str, Any]
) -> Finding:
    fatal = bool(message.get("fatal"))
    rule_id = message.get("ruleId") or ("parse-error" if fatal else "eslint-error")
    line = message.get("line") if isinstance(message.get("line"), int) else None
    snippet = normalise_snippet(sources.line(path, line) or "")
    return Finding(
        category="lint",
        tool="eslint",
        rule_id=str(rule_id),
        message=redact(str(message.get("message", ""))),
        path=path,
        line=line,
        severity="high" if fatal else "medium",
        tool_severity="error",
        fingerprint=fingerprint("eslint", str(rule_id), path, snippet),
    )
