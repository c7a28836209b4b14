"""Type-check probe: mypy and pyright, each run only when the project configures it."""

from __future__ import annotations

import configparser
import hashlib
import io
import json
import logging
import os
import re
import tempfile
import time
import tokenize
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

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
    not_applicable,
)
from daw.probes.lint import PYTHON_SUFFIXES, relative_path
from daw.process import Completed, ToolError, run_tool
from daw.redact import redact

log = logging.getLogger(__name__)

MYPY_CONFIG_FILES = ("mypy.ini", ".mypy.ini", "pyproject.toml", "setup.cfg")
PYRIGHT_CONFIG_FILES = ("pyrightconfig.json", "pyproject.toml")
# The first mypy release with `--output json`.
MYPY_JSON_SINCE = Version("1.11")

_SKIPPED_FOLDERS = frozenset(
    {"node_modules", ".venv", "venv", ".git", ".daw", ".tox", "__pycache__"}
)
_MYPY_CONFIG_ERROR = re.compile(
    r"^(?:pyproject\.toml|mypy\.ini|\.mypy\.ini|setup\.cfg): "
)
_MYPY_TEXT_LINE = re.compile(
    r"^(?P<file>[^:\n]+):(?P<line>\d+)(?::\d+)*: (?P<severity>error|note|warning): "
    r"(?P<message>.*?)(?:  \[(?P<code>[a-z0-9-]+)\])?$"
)
_MYPY_TEXT_FLAGS = (
    "--show-error-codes",
    "--no-color-output",
    "--no-error-summary",
    "--no-pretty",
    "--hide-error-context",
    "--hide-column-numbers",
    "--hide-error-end",
    "--hide-absolute-path",
)
_MYPY_JSON_FLAGS = ("--output", "json", "--no-color-output", "--no-error-summary")


class ConfigProblem(Exception):
    """A configuration file that decides which checker runs cannot be read."""


@dataclass(frozen=True)
class CheckerRun:
    """Findings and version of one type checker run."""

    tool: str
    version: str
    findings: list[Finding]


class TypeCheckProbe:
    """Run mypy and pyright where the project configures them, on in-scope Python files.

    mypy counts as configured by ``[tool.mypy]`` in pyproject.toml, mypy.ini,
    .mypy.ini or ``[mypy]`` in setup.cfg, and pyright by pyrightconfig.json or
    ``[tool.pyright]``. Every error either checker reports is a ``type`` finding.
    A configured checker that is not installed makes the measurement ``error``.
    """

    name = "typecheck"
    metrics = ("type",)

    def cache_key(self, ctx: ProbeContext) -> str | None:
        """Return a digest of every Python file, the configs and the checkers' versions.

        Every Python file under ``scan_root`` counts, because a checker follows
        imports beyond the files in scope. Returns None when nothing would run.
        """
        try:
            checkers = configured_checkers(ctx.scan_root)
        except ConfigProblem:
            return None
        if not checkers or not files_with_suffix(ctx, *PYTHON_SUFFIXES):
            return None
        try:
            versions = [_checker_version(ctx, checker) for checker in checkers]
        except ToolError:
            return None
        return _inputs_digest(ctx, checkers, versions)

    def run(self, ctx: ProbeContext) -> ProbeResult:
        """Run each configured checker and return the ``type`` count and findings."""
        started = time.monotonic()
        try:
            checkers = configured_checkers(ctx.scan_root)
        except ConfigProblem as exc:
            log.warning("type check in %s failed: %s", ctx.scan_root, exc)
            return error_result(self.name, self.metrics, "typecheck", str(exc))
        if not checkers:
            measurement = not_applicable(
                "type", "typecheck", "no type checker configured"
            )
            return ProbeResult(probe=self.name, measurements=[measurement])

        try:
            runs = [_run_checker(ctx, checker) for checker in checkers]
        except ToolError as exc:
            log.warning("type check in %s failed: %s", ctx.scan_root, exc)
            return error_result(self.name, self.metrics, "+".join(checkers), str(exc))

        files = files_with_suffix(ctx, *PYTHON_SUFFIXES)
        versions = [run.version for run in runs]
        digest = _inputs_digest(ctx, checkers, versions) if files else ""
        measurement, findings = _combine(runs, digest, len(files))
        return ProbeResult(
            probe=self.name,
            measurements=[measurement],
            findings=findings,
            duration_s=time.monotonic() - started,
        )


def configured_checkers(root: Path) -> list[str]:
    """Return the checkers configured at ``root``: "mypy", "pyright" or both.

    Raises ConfigProblem when pyproject.toml or setup.cfg cannot be parsed.
    """
    pyproject = _read_pyproject(root)
    tools = pyproject.get("tool")
    if not isinstance(tools, dict):
        tools = {}
    checkers = []
    mypy_files = (root / "mypy.ini", root / ".mypy.ini")
    if "mypy" in tools or any(p.is_file() for p in mypy_files) or _setup_cfg_mypy(root):
        checkers.append("mypy")
    if "pyright" in tools or (root / "pyrightconfig.json").is_file():
        checkers.append("pyright")
    return checkers


def _read_pyproject(root: Path) -> dict[str, Any]:
    path = root / "pyproject.toml"
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigProblem(f"pyproject.toml is not valid TOML: {exc}") from exc


def _setup_cfg_mypy(root: Path) -> bool:
    path = root / "setup.cfg"
    if not path.is_file():
        return False
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(path.read_text(encoding="utf-8"), source="setup.cfg")
    except (OSError, UnicodeDecodeError, configparser.Error) as exc:
        raise ConfigProblem(f"setup.cfg cannot be parsed: {exc}") from exc
    return parser.has_section("mypy")


def _inputs_digest(ctx: ProbeContext, checkers: list[str], versions: list[str]) -> str:
    # NOTE: installed third-party packages and stubs also change the result but
    # are not part of the digest; only the interpreter's path is.
    inputs = [*_python_files(ctx.scan_root), *MYPY_CONFIG_FILES, *PYRIGHT_CONFIG_FILES]
    return digest_files(ctx.scan_root, inputs, ctx.python, *checkers, *versions)


def _python_files(root: Path) -> list[str]:
    """Return every .py and .pyi file under ``root`` outside vendored folders."""
    found: list[str] = []
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if d not in _SKIPPED_FOLDERS)
        base = Path(folder).relative_to(root)
        found.extend(
            (base / name).as_posix() for name in names if name.endswith(PYTHON_SUFFIXES)
        )
    return sorted(found)


def _checker_version(ctx: ProbeContext, checker: str) -> str:
    if checker == "mypy":
        return _mypy_version(ctx)
    return _pyright_version(ctx, _pyright_executable(ctx))


def _run_checker(ctx: ProbeContext, checker: str) -> CheckerRun:
    """Run one checker on the in-scope files; raises ToolError when it cannot."""
    if checker == "mypy":
        version = _mypy_version(ctx)
        files = files_with_suffix(ctx, *PYTHON_SUFFIXES)
        return CheckerRun("mypy", version, run_mypy(ctx, files, version))

    executable = _pyright_executable(ctx)
    version = _pyright_version(ctx, executable)
    files = files_with_suffix(ctx, *PYTHON_SUFFIXES)
    return CheckerRun("pyright", version, _run_pyright(ctx, executable, files))


def _combine(
    runs: list[CheckerRun], digest: str, file_count: int
) -> tuple[Measurement, list[Finding]]:
    findings = disambiguate([f for run in runs for f in run.findings])
    if len(runs) == 1:
        version = runs[0].version
    else:
        version = ", ".join(f"{run.tool} {run.version}" for run in runs)
    details: dict[str, str | int | float | bool | None] = {"files": file_count}
    for run in runs:
        details[run.tool] = len(run.findings)
    if not file_count:
        details["note"] = "no files in scope"
    measurement = Measurement(
        metric="type",
        value=float(len(findings)),
        unit="findings",
        tool="+".join(run.tool for run in runs),
        tool_version=version,
        inputs_digest=digest,
        details=details,
    )
    return measurement, findings


def _mypy_version(ctx: ProbeContext) -> str:
    """Return mypy's version; raises ToolError when mypy cannot run."""
    completed = run_tool(
        [ctx.python, "-m", "mypy", "--version"],
        cwd=ctx.scan_root,
        timeout_s=ctx.settings.tool_timeout_s,
    )
    match = re.match(r"mypy (\S+)", completed.stdout.strip())
    if completed.returncode != 0 or match is None:
        raise ToolError(
            f"mypy is configured but not installed for {ctx.python}: "
            f"{completed.describe()}"
        )
    return match.group(1)


def supports_json(version: str) -> bool:
    """Return whether mypy ``version`` has ``--output json``."""
    try:
        return Version(version) >= MYPY_JSON_SINCE
    except InvalidVersion:
        return False


def run_mypy(
    ctx: ProbeContext,
    files: list[str],
    version: str,
    *,
    json_output: bool | None = None,
) -> list[Finding]:
    """Run mypy on ``files`` and return one finding per error.

    ``json_output`` picks the output format; None means JSON when ``version``
    supports it. Files that Python cannot decode are reported as findings and not
    passed to mypy, because mypy stops at the first of them. Raises ToolError
    when mypy crashes, rejects its configuration or writes unreadable output.
    """
    if not files:
        return []
    undecodable = _undecodable(ctx.scan_root, files)
    checked = [rel for rel in files if rel not in undecodable]
    findings = [
        _decode_finding(ctx.scan_root, rel, reason)
        for rel, reason in undecodable.items()
    ]
    if not checked:
        return findings

    use_json = supports_json(version) if json_output is None else json_output
    flags = _MYPY_JSON_FLAGS if use_json else _MYPY_TEXT_FLAGS
    args = [ctx.python, "-m", "mypy", *flags, "--cache-dir", _mypy_cache_dir(ctx)]
    completed = run_tool(
        [*args, "--", *checked],
        cwd=ctx.scan_root,
        timeout_s=ctx.settings.tool_timeout_s,
    )
    errors = _parse_mypy(completed, use_json)
    return findings + _mypy_findings(ctx.scan_root, errors)


def _undecodable(root: Path, files: list[str]) -> dict[str, str]:
    """Return the files Python cannot decode, honouring PEP 263 coding lines."""
    result = {}
    for rel in files:
        try:
            data = (root / rel).read_bytes()
            encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
            data.decode(encoding)
        except (SyntaxError, UnicodeDecodeError, LookupError) as exc:
            result[rel] = str(exc)
        except OSError as exc:
            result[rel] = f"cannot read file: {exc.strerror}"
    return result


def _decode_finding(root: Path, rel: str, reason: str) -> Finding:
    snippet = normalise_snippet(SourceLines(root).line(rel, 1) or "")
    return Finding(
        category="type",
        tool="mypy",
        rule_id="decode-error",
        message=f"Cannot decode file: {reason}",
        path=rel,
        severity="high",
        tool_severity="error",
        fingerprint=fingerprint("mypy", "decode-error", rel, snippet),
    )


def _mypy_cache_dir(ctx: ProbeContext) -> str:
    """Return a cache folder outside the repository, one per interpreter.

    mypy checks each cached module against its source's hash, so sharing the
    folder between runs and repositories is safe, and it saves re-analysing the
    standard library's stubs on every run.
    """
    key = ctx.python.encode("utf-8", "surrogateescape")
    name = hashlib.sha256(key).hexdigest()[:16]
    return str(Path(tempfile.gettempdir()) / "daw-mypy-cache" / name)


def _parse_mypy(completed: Completed, use_json: bool) -> list[dict[str, Any]]:
    config_errors = [
        line for line in completed.stderr.splitlines() if _MYPY_CONFIG_ERROR.match(line)
    ]
    if config_errors:
        raise ToolError("mypy rejected its configuration: " + " ".join(config_errors))
    if completed.returncode not in (0, 1, 2):
        raise ToolError(f"mypy failed: {completed.describe()}")

    parse = _parse_mypy_json if use_json else _parse_mypy_text
    entries = parse(completed.stdout)
    errors = [entry for entry in entries if entry.get("severity") == "error"]
    if completed.returncode != 0 and not errors:
        raise ToolError(
            f"mypy exited with {completed.returncode} but reported no errors: "
            f"{completed.describe()}"
        )
    return errors


def _parse_mypy_json(stdout: str) -> list[dict[str, Any]]:
    entries = []
    for line in stdout.splitlines():
        if not line.startswith("{"):
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ToolError(
                f"mypy wrote a line that is not JSON ({exc}): {line[:200]}"
            ) from exc
        if isinstance(entry, dict):
            entries.append(entry)
    return entries


def _parse_mypy_text(stdout: str) -> list[dict[str, Any]]:
    entries = []
    for line in stdout.splitlines():
        match = _MYPY_TEXT_LINE.match(line)
        if match is None:
            continue
        entries.append(
            {
                "file": match["file"],
                "line": int(match["line"]),
                "severity": match["severity"],
                "message": match["message"],
                "code": match["code"],
            }
        )
    return entries


def _mypy_findings(root: Path, errors: list[dict[str, Any]]) -> list[Finding]:
    sources = SourceLines(root)
    findings = []
    for error in errors:
        code = str(error.get("code") or "misc")
        path = relative_path(root, str(error.get("file", "")))
        line = error.get("line") if isinstance(error.get("line"), int) else None
        snippet = normalise_snippet(sources.line(path, line) or "")
        findings.append(
            Finding(
                category="type",
                tool="mypy",
                rule_id=code,
                message=redact(str(error.get("message", ""))),
                path=path,
                line=line if line and line > 0 else None,
                severity="high" if code == "syntax" else "medium",
                tool_severity="error",
                fingerprint=fingerprint("mypy", code, path, snippet),
            )
        )
    return findings


def _pyright_executable(ctx: ProbeContext) -> Path:
    """Return the project's pyright: node_modules first, then next to the interpreter.

    Raises ToolError when neither exists.
    """
    candidates = (
        ctx.repo_root / "node_modules" / ".bin" / "pyright",
        Path(ctx.python).parent / "pyright",
    )
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ToolError(
        "pyright is configured but not installed: neither node_modules/.bin/pyright "
        f"nor {candidates[1]} exists; run npm install or pip install pyright"
    )


def _pyright_version(ctx: ProbeContext, executable: Path) -> str:
    completed = run_tool(
        [str(executable), "--version"],
        cwd=ctx.scan_root,
        timeout_s=ctx.settings.tool_timeout_s,
    )
    match = re.search(r"pyright (\S+)", completed.stdout)
    if completed.returncode != 0 or match is None:
        raise ToolError(f"pyright cannot run: {completed.describe()}")
    return match.group(1)


def _run_pyright(
    ctx: ProbeContext, executable: Path, files: list[str]
) -> list[Finding]:
    """Run pyright on ``files``; raises ToolError on a crash or an invalid config."""
    if not files:
        return []
    # pyright takes "--" for a file name, so a leading "./" protects names like "-x.py".
    paths = [f"./{rel}" if rel.startswith("-") else rel for rel in files]
    completed = run_tool(
        [str(executable), "--outputjson", "--pythonpath", ctx.python, *paths],
        cwd=ctx.scan_root,
        timeout_s=ctx.settings.tool_timeout_s,
    )
    diagnostics = _parse_pyright(completed)
    return _pyright_findings(ctx.scan_root, diagnostics)


def _parse_pyright(completed: Completed) -> list[dict[str, Any]]:
    # pyright 1.1 exits 0 or 1 after a check, 2 on a fatal error, 3 on an invalid
    # config file and 4 on invalid arguments. Some invalid config values only
    # print a "could not be parsed" line on stderr.
    if completed.returncode not in (0, 1) or "could not be parsed" in completed.stderr:
        raise ToolError(f"pyright failed: {completed.describe()}")
    try:
        data = json.loads(completed.stdout)
    except json.JSONDecodeError as exc:
        raise ToolError(
            f"pyright wrote output that is not JSON ({exc}): {completed.describe()}"
        ) from exc
    diagnostics = data.get("generalDiagnostics") if isinstance(data, dict) else None
    if not isinstance(diagnostics, list):
        raise ToolError(
            f"pyright wrote JSON without diagnostics: {completed.describe()}"
        )
    errors = [
        d for d in diagnostics if isinstance(d, dict) and d.get("severity") == "error"
    ]
    if completed.returncode == 1 and not errors:
        raise ToolError(
            f"pyright exited with 1 but reported no errors: {completed.describe()}"
        )
    return errors


def _pyright_findings(root: Path, diagnostics: list[dict[str, Any]]) -> list[Finding]:
    sources = SourceLines(root)
    findings = []
    for diagnostic in diagnostics:
        rule = str(diagnostic.get("rule") or "error")
        path = relative_path(root, str(diagnostic.get("file", "")))
        start = (diagnostic.get("range") or {}).get("start") or {}
        line = start["line"] + 1 if isinstance(start.get("line"), int) else None
        snippet = normalise_snippet(sources.line(path, line) or "")
        findings.append(
            Finding(
                category="type",
                tool="pyright",
                rule_id=rule,
                message=redact(normalise_snippet(str(diagnostic.get("message", "")))),
                path=path,
                line=line,
                severity="medium",
                tool_severity="error",
                fingerprint=fingerprint("pyright", rule, path, snippet),
            )
        )
    return findings
