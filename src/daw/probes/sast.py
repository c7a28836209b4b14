"""SAST probes: bandit on the in-scope Python files, and import of SARIF logs.

Both report ``sast`` findings. Their ``severity`` is a default normalisation,
which evaluation recomputes from ``tool_severity``, ``tool_confidence`` and
``score`` with the policy's severity mapping.
"""

from __future__ import annotations

import configparser
import json
import logging
import os
import re
import stat
import tempfile
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from daw.errors import ConfigError, GitError
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
    MAX_FILE_BYTES,
    ProbeContext,
    SourceLines,
    digest_files,
    error_result,
    files_with_suffix,
    installed_version,
    not_applicable,
)
from daw.probes.sarif import SarifError, SarifLog, read_sarif, scrub_message
from daw.process import Completed, ToolError, run_tool

log = logging.getLogger(__name__)

BANDIT_TOOL = "bandit"
SARIF_TOOL = "sarif"
BANDIT_SUFFIXES = (".py", ".pyw")

# Files above this size are not scanned, and are counted in the measurement's
# details. The cost of larger files, measured once on a 2-core Debian 12 machine
# (an estimate): bandit 1.9 took 96 s on 5 MB of valid Python and 17 s on 5 MB
# of NUL bytes. detect-secrets 1.5 took 55 s on 5 MB of Python source.

# Characters of paths per tool call: few enough that the argument list stays far
# below the kernel's limit (ARG_MAX, 2 MiB on Linux), many enough to keep the
# start-up cost of each call low.
MAX_ARGUMENT_CHARS = 100_000

# Files named in a reason before the rest are summarised as "and N more".
_REASON_NAMES = 5

_BANDIT_FLAGS = ("-f", "json", "-q")

# `python -m TOOL` run in the scan root would import a TOOL module or package
# from the repository under check before the installed one. PYTHONSAFEPATH
# (Python 3.11+) keeps the working folder off sys.path, so a change cannot
# replace the tool that checks it.
SAFE_PATH_ENV = {"PYTHONSAFEPATH": "1"}
_VERSION = re.compile(r"\d+(?:\.\d+)+\S*")


@dataclass(frozen=True)
class FileSelection:
    """In-scope files split into those a tool reads and those it skips.

    ``too_large`` are regular files over the size limit, and ``not_regular``
    are paths that are symbolic links, directories, missing or unreadable (a
    symbolic link loop among them).
    """

    scanned: list[str] = field(default_factory=list)
    too_large: list[str] = field(default_factory=list)
    not_regular: list[str] = field(default_factory=list)

    def details(self) -> dict[str, int]:
        """Return the counts for a measurement's details."""
        return {
            "files": len(self.scanned),
            "skipped_too_large": len(self.too_large),
            "skipped_not_regular": len(self.not_regular),
        }

    def skip_reasons(self, max_bytes: int) -> list[str]:
        """Return one phrase per kind of skipped path, naming the first few."""
        reasons = []
        if self.too_large:
            limit = f"{max_bytes / (1024 * 1024):g} MiB"
            reasons.append(
                f"skipped {count(self.too_large, 'file')} over {limit}: "
                + name_some(self.too_large)
            )
        if self.not_regular:
            reasons.append(
                f"skipped {count(self.not_regular, 'path')} that are not regular "
                f"files: {name_some(self.not_regular)}"
            )
        return reasons


def select_files(root: Path, paths: list[str], max_bytes: int) -> FileSelection:
    """Split ``paths`` (relative to ``root``) by whether a scanner should read them.

    Symbolic links are skipped even when they point to a file: their target may
    lie outside the repository, and git stores the link, not the target.
    """
    selection = FileSelection()
    for rel in paths:
        try:
            info = os.lstat(root / rel)
        except OSError:
            selection.not_regular.append(rel)
            continue
        if not stat.S_ISREG(info.st_mode):
            selection.not_regular.append(rel)
        elif info.st_size > max_bytes:
            selection.too_large.append(rel)
        else:
            selection.scanned.append(rel)
    return selection


def describe(exc: Exception) -> str:
    """Return an error's message followed by its hint (DawError.hint), if any."""
    hint = getattr(exc, "hint", None)
    return f"{exc} ({hint})" if hint else str(exc)


def count(items: list[str], noun: str) -> str:
    """Return "1 file" or "3 files" for ``items``."""
    return f"{len(items)} {noun}" + ("" if len(items) == 1 else "s")


def name_some(paths: list[str]) -> str:
    """Return the first few of ``paths`` joined by commas, then "and N more"."""
    shown = ", ".join(paths[:_REASON_NAMES])
    rest = len(paths) - _REASON_NAMES
    return f"{shown} and {rest} more" if rest > 0 else shown


def batches(paths: list[str], max_chars: int | None = None) -> Iterator[list[str]]:
    """Yield consecutive slices of ``paths`` of at most ``max_chars`` characters.

    ``max_chars`` defaults to MAX_ARGUMENT_CHARS. A slice always contains at least
    one path, however long.
    """
    limit = MAX_ARGUMENT_CHARS if max_chars is None else max_chars
    batch: list[str] = []
    size = 0
    for path in paths:
        if batch and size + len(path) + 1 > limit:
            yield batch
            batch, size = [], 0
        batch.append(path)
        size += len(path) + 1
    if batch:
        yield batch


def tool_version(ctx: ProbeContext, module: str, tool: str) -> str:
    """Return the version ``<python> -m <module> --version`` prints.

    Raises ToolError when the module cannot run or prints no version number.
    """
    known = installed_version(ctx.python, module.replace("_", "-"))
    if known is not None:
        return known
    completed = run_tool(
        [ctx.python, "-m", module, "--version"],
        cwd=ctx.scan_root,
        timeout_s=ctx.settings.tool_timeout_s,
        env=SAFE_PATH_ENV,
    )
    first_line = completed.stdout.strip().splitlines()[:1]
    match = _VERSION.search(first_line[0]) if first_line else None
    if completed.returncode != 0 or match is None:
        raise ToolError(
            f"{tool} is not installed for {ctx.python}: {completed.describe()}"
        )
    return match.group(0)


def bandit_severity(severity: str, confidence: str) -> str:
    """Return DAW's default severity for a bandit issue severity and confidence.

    HIGH with HIGH confidence is critical, HIGH otherwise or MEDIUM with HIGH
    confidence is high, other MEDIUM is medium, LOW is low, anything else
    (bandit's UNDEFINED) is unknown.
    """
    if severity == "HIGH":
        return "critical" if confidence == "HIGH" else "high"
    if severity == "MEDIUM":
        return "high" if confidence == "HIGH" else "medium"
    if severity == "LOW":
        return "low"
    return "unknown"


@dataclass(frozen=True)
class _BanditConfig:
    """Command-line options that point bandit at the project's configuration."""

    args: tuple[str, ...] = ()


@dataclass
class _BanditReport:
    results: list[dict[str, Any]] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)


class BanditProbe:
    """Run bandit with the project's configuration on the in-scope Python files.

    ``[tool.bandit]`` in pyproject.toml is passed with ``-c`` and a ``.bandit``
    file with ``--ini``, both from the scan root. Files bandit cannot parse are
    counted in ``details["files_not_parsed"]`` and named in ``reason``. Files
    over ``max_file_bytes`` and paths that are not regular files are skipped,
    counted and named the same way.
    """

    name = "bandit"
    metrics = ("sast",)

    def __init__(self, max_file_bytes: int = MAX_FILE_BYTES) -> None:
        self.max_file_bytes = max_file_bytes

    def cache_key(self, ctx: ProbeContext) -> str | None:
        """Return a digest of the Python files, bandit's configuration and version.

        Returns None when no Python file is in scope or bandit cannot run.
        """
        files = files_with_suffix(ctx, *BANDIT_SUFFIXES)
        if not files:
            return None
        try:
            version = tool_version(ctx, "bandit", BANDIT_TOOL)
        except ToolError:
            return None
        return self._digest(ctx, files, version)

    def _digest(self, ctx: ProbeContext, files: list[str], version: str) -> str:
        return digest_files(
            ctx.scan_root,
            [*files, "pyproject.toml", ".bandit"],
            BANDIT_TOOL,
            version,
            *_BANDIT_FLAGS,
            f"max_file_bytes={self.max_file_bytes}",
        )

    def run(self, ctx: ProbeContext) -> ProbeResult:
        """Run bandit and return the ``sast`` count with one finding per issue."""
        started = time.monotonic()
        files = files_with_suffix(ctx, *BANDIT_SUFFIXES)
        if not files and not _repo_has_python(ctx):
            measurement = not_applicable("sast", BANDIT_TOOL, "no Python files")
            return ProbeResult(probe=self.name, measurements=[measurement])

        try:
            version = tool_version(ctx, "bandit", BANDIT_TOOL)
            config = _bandit_config(ctx.scan_root)
        except (ToolError, ConfigError) as exc:
            log.warning("bandit probe failed: %s", exc)
            return error_result(self.name, self.metrics, BANDIT_TOOL, describe(exc))

        selection = select_files(ctx.scan_root, files, self.max_file_bytes)
        try:
            report = _run_bandit(ctx, selection.scanned, config)
        except ToolError as exc:
            log.warning("bandit probe failed: %s", exc)
            return error_result(self.name, self.metrics, BANDIT_TOOL, str(exc))

        findings = _bandit_findings(ctx.scan_root, report.results, self.max_file_bytes)
        digest = self._digest(ctx, files, version)
        measurement = self._measurement(findings, selection, report, version, digest)
        return ProbeResult(
            probe=self.name,
            measurements=[measurement],
            findings=findings,
            duration_s=time.monotonic() - started,
        )

    def _measurement(
        self,
        findings: list[Finding],
        selection: FileSelection,
        report: _BanditReport,
        version: str,
        digest: str,
    ) -> Measurement:
        reasons = selection.skip_reasons(self.max_file_bytes)
        if report.errors:
            names = name_some([f"{path} ({why})" for path, why in report.errors])
            files = count([path for path, _ in report.errors], "file")
            reasons.insert(0, f"bandit could not parse {files}: {names}")
        return Measurement(
            metric="sast",
            value=float(len(findings)),
            unit="findings",
            tool=BANDIT_TOOL,
            tool_version=version,
            inputs_digest=digest,
            reason="; ".join(reasons),
            details={**selection.details(), "files_not_parsed": len(report.errors)},
        )


def _repo_has_python(ctx: ProbeContext) -> bool:
    """Return whether git tracks a Python file, or True when git cannot be asked."""
    try:
        tracked = tracked_files(ctx.repo_root)
    except GitError as exc:
        log.warning("could not list tracked files in %s: %s", ctx.repo_root, exc)
        return True
    return any(path.endswith(BANDIT_SUFFIXES) for path in tracked)


def _bandit_config(root: Path) -> _BanditConfig:
    """Return the options for the project's bandit configuration under ``root``.

    Raises ConfigError for a pyproject.toml that is not valid TOML, or a
    ``.bandit`` file without a ``[bandit]`` section, which bandit would ignore
    with only a warning.
    """
    args: list[str] = []
    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        try:
            data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"invalid TOML: {exc}", path="pyproject.toml") from exc
        if isinstance(data.get("tool"), dict) and "bandit" in data["tool"]:
            args += ["-c", "pyproject.toml"]

    ini = root / ".bandit"
    if ini.is_file():
        parser = configparser.ConfigParser()
        try:
            parser.read_string(ini.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, configparser.Error) as exc:
            raise ConfigError(f"invalid INI file: {exc}", path=".bandit") from exc
        if not parser.has_section("bandit"):
            raise ConfigError(
                "missing the [bandit] section, so bandit would ignore the file",
                path=".bandit",
                hint="put the options under a [bandit] line",
            )
        args += ["--ini", ".bandit"]
    return _BanditConfig(args=tuple(args))


def _run_bandit(
    ctx: ProbeContext, files: list[str], config: _BanditConfig
) -> _BanditReport:
    """Run bandit over ``files`` in batches. Raises ToolError on a failed run.

    The report goes to a temporary file given with ``-o``, which takes
    precedence over an ``output`` option in ``.bandit``.
    """
    report = _BanditReport()
    with tempfile.TemporaryDirectory(prefix="daw-bandit-") as folder:
        output = Path(folder) / "bandit.json"
        for batch in batches(files):
            output.unlink(missing_ok=True)
            completed = run_tool(
                [ctx.python, "-m", "bandit", *_BANDIT_FLAGS, "-o", str(output)]
                + [*config.args, "--", *batch],
                cwd=ctx.scan_root,
                timeout_s=ctx.settings.tool_timeout_s,
                env=SAFE_PATH_ENV,
            )
            _parse_bandit(completed, _read_report(output), report)
    return report


def _read_report(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _parse_bandit(completed: Completed, text: str, into: _BanditReport) -> None:
    """Add the results and errors of one bandit report to ``into``.

    Exit status 1 means issues were found, 0 that none were. Raises ToolError
    for any other status or a report that is not bandit's JSON.
    """
    if completed.returncode not in (0, 1):
        raise ToolError(f"bandit failed: {completed.describe()}")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ToolError(
            f"bandit wrote output that is not JSON ({exc}): {completed.describe()}"
        ) from exc

    results = data.get("results") if isinstance(data, dict) else None
    errors = data.get("errors") if isinstance(data, dict) else None
    if not isinstance(results, list) or not isinstance(errors, list):
        raise ToolError(
            "bandit wrote JSON without a results or errors list: "
            + completed.describe()
        )
    if completed.returncode == 1 and not results:
        raise ToolError(
            f"bandit exited with 1 but reported no issue: {completed.describe()}"
        )

    required = ("test_id", "filename", "line_number")
    for result in results:
        if not isinstance(result, dict) or any(key not in result for key in required):
            raise ToolError(
                "bandit wrote a result without test_id, filename or line_number"
            )
        into.results.append(result)
    for error in errors:
        error = error if isinstance(error, dict) else {}
        path = _relative(str(error.get("filename", "?")))
        into.errors.append((path, str(error.get("reason", "unknown error"))))


def _relative(reported: str) -> str:
    """Return a path bandit reports (``./pkg/a.py``) relative to the scan root."""
    return PurePosixPath(reported).as_posix().removeprefix("./")


def _bandit_findings(
    root: Path, results: list[dict[str, Any]], max_bytes: int
) -> list[Finding]:
    """Return one finding per bandit result, fingerprinted by the flagged line.

    The line is read from the file, not from bandit's ``code`` field, which
    carries line numbers.
    """
    sources = SourceLines(root, max_bytes)
    findings = []
    for result in results:
        test_id = str(result["test_id"])
        path = _relative(str(result["filename"]))
        line = result["line_number"] if isinstance(result["line_number"], int) else None
        text = sources.line(path, line) if line else None
        severity = str(result.get("issue_severity", "UNDEFINED"))
        confidence = str(result.get("issue_confidence", "UNDEFINED"))
        findings.append(
            Finding(
                category="sast",
                tool=BANDIT_TOOL,
                rule_id=test_id,
                message=scrub_message(str(result.get("issue_text", test_id))),
                path=path,
                line=line,
                severity=bandit_severity(severity, confidence),
                tool_severity=severity,
                tool_confidence=confidence,
                fingerprint=fingerprint(
                    BANDIT_TOOL, test_id, path, normalise_snippet(text or "")
                ),
            )
        )
    return disambiguate(findings)


class SarifImportProbe:
    """Read the SARIF 2.1.0 files named in the settings as ``sast`` findings.

    With no SARIF file configured the metric is n/a. A file that is missing or
    invalid gives an ``error`` measurement naming the file and the JSON path.
    Results with a suppression in effect, or of kind "pass" or "notApplicable",
    are counted in the details and give no finding.
    """

    name = "sarif"
    metrics = ("sast",)

    def __init__(self, max_file_bytes: int = MAX_FILE_BYTES) -> None:
        self.max_file_bytes = max_file_bytes

    def cache_key(self, ctx: ProbeContext) -> str | None:
        """Return None: fingerprints read the source files each result names.

        Which files those are is known only after parsing, which costs about as
        much as the probe itself.
        """
        return None

    def run(self, ctx: ProbeContext) -> ProbeResult:
        """Parse every configured SARIF file and return the ``sast`` count."""
        started = time.monotonic()
        paths = [_absolute(ctx.repo_root, path) for path in ctx.settings.sarif_files]
        if not paths:
            measurement = not_applicable("sast", SARIF_TOOL, "no SARIF files given")
            return ProbeResult(probe=self.name, measurements=[measurement])

        sources = SourceLines(ctx.repo_root, self.max_file_bytes)
        combined = SarifLog()
        try:
            for path in paths:
                _merge(combined, read_sarif(path, ctx.repo_root, sources.line))
        except SarifError as exc:
            log.warning("SARIF import failed: %s", exc)
            return error_result(self.name, self.metrics, SARIF_TOOL, str(exc))

        findings = disambiguate(combined.findings)
        measurement = _sarif_measurement(ctx, paths, combined, findings)
        return ProbeResult(
            probe=self.name,
            measurements=[measurement],
            findings=findings,
            duration_s=time.monotonic() - started,
        )


def _absolute(root: Path, path: Path) -> Path:
    return path if path.is_absolute() else root / path


def _merge(into: SarifLog, part: SarifLog) -> None:
    into.findings.extend(part.findings)
    into.tools.extend(part.tools)
    into.suppressed += part.suppressed
    into.not_failures += part.not_failures
    into.error_notifications += part.error_notifications


def _sarif_measurement(
    ctx: ProbeContext, paths: list[Path], combined: SarifLog, findings: list[Finding]
) -> Measurement:
    """Return the ``sast`` count, with a digest of the logs and the files they name."""
    tools = sorted({f"{name} {version}".strip() for name, version in combined.tools})
    named = sorted({f.path for f in findings if f.path and not f.path.startswith("/")})
    digest = digest_files(ctx.repo_root, [*map(str, paths), *named], SARIF_TOOL)
    reason = ""
    if combined.error_notifications:
        reason = (
            f"tool notifications of level error in the SARIF logs: "
            f"{combined.error_notifications} (such as files the tool could not parse)"
        )
    return Measurement(
        metric="sast",
        value=float(len(findings)),
        unit="findings",
        tool=SARIF_TOOL,
        tool_version=", ".join(tools),
        inputs_digest=digest,
        reason=reason,
        details={
            "sarif_files": len(paths),
            "runs": len(combined.tools),
            "suppressed": combined.suppressed,
            "not_failures": combined.not_failures,
            "error_notifications": combined.error_notifications,
        },
    )
