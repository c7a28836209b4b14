"""The tests probe: run the test suite under coverage.py, or read its reports.

Mode A (no report in the settings) runs the test command in the working tree
under ``coverage run`` and reads ``coverage json`` and pytest's JUnit XML from a
temporary folder outside the repository. Mode B reads the coverage reports
(coverage.py JSON, Cobertura XML, LCOV) and JUnit reports given in the settings.

What is measured in Mode A: when the project's coverage configuration sets
``source``, ``source_pkgs`` or ``include``, coverage.py measures exactly that and
every file it reports counts. Otherwise the probe passes ``--source=.`` so that
files no test imports still count as 0 %, and then drops test files
(``test_*.py``, ``*_test.py``, ``conftest.py``, anything under ``tests/``) and
files in virtual environments and vendored folders from the totals.

The JSON export runs with ``--ignore-errors``, so that one file coverage.py
cannot parse does not lose the whole report. Such files are named in the
measurements' details and reason, and a changed one counts as not covered.

Mode B is used whenever a report is configured, and then no test runs, except
that a configured command that cannot be wrapped (``npm test``) runs as is first,
so that it writes the reports. Without a JUnit report ``test`` is an error,
unless such a command ran and passed (then it is n/a). Without a coverage report
both coverage metrics are n/a.
"""

from __future__ import annotations

import json
import logging
import platform
import re
import shlex
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from daw.errors import ConfigError
from daw.models import (
    Finding,
    Measurement,
    MeasurementStatus,
    ProbeResult,
    disambiguate,
    fingerprint,
)
from daw.probes.base import (
    ProbeContext,
    digest_files,
    error_result,
    installed_version,
    not_applicable,
)
from daw.probes.reports import (
    CoverageReport,
    FileCoverage,
    MappedCoverage,
    TestCase,
    map_to_repository,
    read_coverage_json,
    read_coverage_report,
    read_junit,
)
from daw.process import Completed, ToolError, run_tool
from daw.redact import redact

log = logging.getLogger(__name__)

# The test run imports the project's own code, so the repository stays on sys.path.
PROJECT_CODE_ENV = {"PYTHONSAFEPATH": ""}

COVERAGE_TOOL = "coverage"
UNCOVERED_RULE = "uncovered-new-code"
TEST_FAILURE_RULE = "test-failure"
INFO_TIMEOUT_S = 60.0

_PYTHON_NAME = re.compile(r"python(\d+(\.\d+)?)?(\.exe)?")
_PYTEST_NAMES = ("pytest", "py.test")
_PYTEST_USAGE_CODES = {2: "interrupted", 3: "internal error", 4: "usage error"}
_NO_COVER = r"#\s*(pragma|PRAGMA)[:\s]?\s*(no|NO)\s*(cover|COVER)"
_COMMENT_PREFIXES = ("#", "//", "/*", "*", "<!--")
_SKIPPED_DIRS = ("node_modules", ".venv", "venv", ".git", ".daw", ".tox", "__pycache__")
# The warning coverage.py 7.18 (report_core.py) writes for each file it skips with -i.
_COULDNT_PARSE = re.compile(
    r"Couldn't parse (?:Python file )?'(?P<path>.+?)'(?:: (?P<error>.*?))?"
    r" \(couldnt-parse\)"
)
_ERROR_LINE = re.compile(r"^(\w+\.)*\w*(Error|Exception|Warning): ")
_TRACEBACK_FILE = re.compile(r'^\s*File "(?P<path>[^"]+)", line \d+')
_NO_TEST_REPORT = (
    "no test report given: pass --junit-report FILE with the coverage report, "
    "or let DAW run the tests"
)
_INFO_SCRIPT = """\
import json, sys
from importlib.metadata import PackageNotFoundError, version
import coverage
cov = coverage.Coverage(data_file=None)
info = {"coverage": version("coverage"), "python": sys.version.split()[0]}
for option in ("source", "source_pkgs", "include"):
    info[option] = cov.get_option("run:" + option)
try:
    info["pytest"] = version("pytest")
except PackageNotFoundError:
    info["pytest"] = ""
print(json.dumps(info))
"""


@dataclass(frozen=True)
class _Export:
    """A ``coverage json`` report and the files coverage.py could not report.

    ``unreported`` maps each such path (repository-relative when it is inside the
    repository) to coverage.py's error message.
    """

    report: CoverageReport
    unreported: dict[str, str]


@dataclass(frozen=True)
class _WrappedCommand:
    """A test command rewritten as ``python -m coverage run -m MODULE ARGS``."""

    python: str
    module: str
    args: tuple[str, ...]

    @property
    def is_pytest(self) -> bool:
        return self.module == "pytest"


class TestCoverageProbe:
    """Line coverage of the whole project and of the changed lines, and test failures.

    ``coverage_total`` and ``coverage_new_code`` are percentages of executable
    lines that ran. ``test`` counts failed and errored test cases, each also a
    finding. A test command that cannot run under coverage.py, a crash, a
    timeout or an unreadable report gives ``error`` measurements.
    """

    __test__ = False

    name = "tests"
    metrics = ("coverage_total", "coverage_new_code", "test")

    def cache_key(self, ctx: ProbeContext) -> str | None:
        """Digest the tracked files, the command and the tool versions, or the reports.

        Returns None when the interpreter cannot report its coverage.py version, or
        when a configured command that cannot be wrapped writes the reports.
        """
        if _unwrapped_command(ctx):
            # NOTE: the command writes the reports and its tool versions are
            # unknown, so nothing read before it runs identifies the result.
            return None
        if _reads_reports(ctx):
            reports = ctx.settings.coverage_reports + ctx.settings.junit_reports
            return digest_files(
                ctx.repo_root,
                [str(path) for path in reports] + sorted(ctx.changed_lines or ()),
                "reports",
                _changed_lines_text(ctx),
                "\n".join(ctx.files),
            )
        versions = _tool_versions(ctx)
        return None if versions is None else _run_key(ctx, versions)

    def run(self, ctx: ProbeContext) -> ProbeResult:
        """Measure coverage and count test failures, with tool failures as errors."""
        started = time.monotonic()
        if _reads_reports(ctx):
            result = self._read_reports(ctx, self.cache_key(ctx) or "")
        else:
            result = self._run_tests(ctx)
        return result.model_copy(update={"duration_s": time.monotonic() - started})

    def _run_tests(self, ctx: ProbeContext) -> ProbeResult:
        command = _command(ctx)
        wrapped = _wrap(command, ctx.python)
        if wrapped is None:
            return self._error(
                f"cannot run `{shlex.join(command)}` under coverage.py: only "
                "`python -m MODULE ...` and `pytest ...` commands can be wrapped",
                self.cache_key(ctx) or "",
                hint="set coverage_reports to the report this command writes",
            )
        try:
            info = _coverage_info(ctx, wrapped.python)
        except ToolError as exc:
            return self._error(str(exc), self.cache_key(ctx) or "")

        # The settings script reports the same versions as cache_key reads, so the
        # key is built here without starting the interpreter again.
        key = _run_key(ctx, f"{info.get('python')} {info.get('coverage')}")
        with tempfile.TemporaryDirectory(prefix="daw-tests-") as folder:
            try:
                return self._measure(ctx, wrapped, info, Path(folder), key)
            except ToolError as exc:
                return self._error(str(exc), key)

    def _measure(
        self,
        ctx: ProbeContext,
        wrapped: _WrappedCommand,
        info: dict,
        tmp: Path,
        key: str,
    ) -> ProbeResult:
        configured = any(
            info.get(option) for option in ("source", "source_pkgs", "include")
        )
        args = _coverage_run_args(wrapped, tmp, measure_repository=not configured)
        completed = run_tool(
            args,
            cwd=ctx.repo_root,
            timeout_s=ctx.settings.test_timeout_s,
            env={"PYTHONDONTWRITEBYTECODE": "1", **PROJECT_CODE_ENV},
        )
        code = completed.returncode
        log.info("test command exited with %d after %.1f s", code, completed.duration_s)
        if wrapped.is_pytest and (code < 0 or code > 5 or code in _PYTEST_USAGE_CODES):
            kind = _PYTEST_USAGE_CODES.get(code, "crashed")
            return self._error(f"pytest {kind}: {completed.describe()}", key)

        coverage_ms, coverage_findings = self._coverage_from_run(
            ctx, wrapped, tmp, info, configured, key
        )
        test_m, test_findings = self._tests_from_run(
            ctx, wrapped, tmp, completed, info, key
        )
        return ProbeResult(
            probe=self.name,
            measurements=sorted([*coverage_ms, test_m], key=lambda m: m.metric),
            findings=disambiguate(coverage_findings + test_findings),
        )

    def _coverage_from_run(
        self,
        ctx: ProbeContext,
        wrapped: _WrappedCommand,
        tmp: Path,
        info: dict,
        configured: bool,
        key: str,
    ) -> tuple[list[Measurement], list[Finding]]:
        version = str(info.get("coverage", ""))
        try:
            export = _export_json(ctx, wrapped.python, tmp)
        except (ToolError, ConfigError) as exc:
            return self._coverage_errors(str(exc), key, version), []
        mapped = map_to_repository([export.report], ctx.repo_root)
        if not configured:
            mapped.files = {
                rel: lines
                for rel, lines in mapped.files.items()
                if not _is_test_file(rel) and not _is_vendored(rel)
            }
        details: dict[str, str | int] = {
            "source": "configuration" if configured else "repository"
        }
        measurements, findings = self._coverage_measurements(
            ctx, mapped, key, version, details
        )
        return _note_unreported(measurements, export.unreported), findings

    def _tests_from_run(
        self,
        ctx: ProbeContext,
        wrapped: _WrappedCommand,
        tmp: Path,
        completed: Completed,
        info: dict,
        key: str,
    ) -> tuple[Measurement, list[Finding]]:
        if not wrapped.is_pytest:
            return self._tests_without_report(completed, key), []
        version = str(info.get("pytest", ""))
        if completed.returncode == 5:
            reason = "pytest collected no tests"
            return _with_digest(not_applicable("test", "pytest", reason), key), []
        try:
            cases = read_junit(tmp / "junit.xml")
        except ConfigError as exc:
            reason = (
                f"pytest wrote no readable JUnit XML ({exc}): {completed.describe()}"
            )
            return self._test_error(reason, key), []
        return self._test_measurement(ctx, cases, "pytest", version, key)

    def _tests_without_report(self, completed: Completed, key: str) -> Measurement:
        if completed.returncode == 0:
            reason = "no test report given: only pytest writes JUnit XML here"
            return _with_digest(not_applicable("test", "tests", reason), key)
        return self._test_error(
            f"{completed.describe()}; without a JUnit report the failures cannot be "
            "counted",
            key,
        )

    def _read_reports(self, ctx: ProbeContext, key: str) -> ProbeResult:
        measurements: list[Measurement] = []
        findings: list[Finding] = []
        try:
            completed = _run_unwrapped(ctx)
        except ToolError as exc:
            return self._error(str(exc), key)

        if ctx.settings.coverage_reports:
            coverage_ms, coverage_findings = self._coverage_from_reports(ctx, key)
            measurements += coverage_ms
            findings += coverage_findings
        else:
            reason = "no coverage report given"
            measurements += [
                _with_digest(not_applicable(metric, COVERAGE_TOOL, reason), key)
                for metric in ("coverage_new_code", "coverage_total")
            ]

        test_m, test_findings = self._tests_from_reports(ctx, completed, key)
        return ProbeResult(
            probe=self.name,
            measurements=sorted([*measurements, test_m], key=lambda m: m.metric),
            findings=disambiguate(findings + test_findings),
        )

    def _coverage_from_reports(
        self, ctx: ProbeContext, key: str
    ) -> tuple[list[Measurement], list[Finding]]:
        reports: list[CoverageReport] = []
        for path in ctx.settings.coverage_reports:
            try:
                reports.append(read_coverage_report(path))
            except ConfigError as exc:
                return self._coverage_errors(str(exc), key), []
        empty = [report.path.name for report in reports if not report.files]
        if empty:
            reason = f"{', '.join(empty)} covers no files"
            return self._coverage_errors(reason, key), []

        mapped = map_to_repository(reports, ctx.repo_root)
        if not mapped.files:
            names = ", ".join(report.path.name for report in reports)
            reason = (
                f"paths in {names} match no file in the repository; "
                "check the report's source root"
            )
            return self._coverage_errors(reason, key), []
        formats = sorted({report.format for report in reports})
        details = {"format": ", ".join(formats)}
        return self._coverage_measurements(ctx, mapped, key, "", details)

    def _tests_from_reports(
        self, ctx: ProbeContext, completed: Completed | None, key: str
    ) -> tuple[Measurement, list[Finding]]:
        if not ctx.settings.junit_reports:
            if completed is None:
                return self._test_error(_NO_TEST_REPORT, key), []
            if completed.returncode != 0:
                return self._tests_without_report(completed, key), []
            reason = "no test report given: the test command passed but wrote none"
            return _with_digest(not_applicable("test", "junit", reason), key), []
        cases: list[TestCase] = []
        for path in ctx.settings.junit_reports:
            try:
                cases += read_junit(path)
            except ConfigError as exc:
                return self._test_error(str(exc), key), []
        return self._test_measurement(ctx, cases, "junit", "", key)

    def _coverage_measurements(
        self,
        ctx: ProbeContext,
        mapped: MappedCoverage,
        key: str,
        version: str,
        details: dict[str, str | int],
    ) -> tuple[list[Measurement], list[Finding]]:
        covered = sum(
            len(lines.covered & lines.executable) for lines in mapped.files.values()
        )
        executable = sum(len(lines.executable) for lines in mapped.files.values())
        total_details = {
            **details,
            "covered": covered,
            "executable": executable,
            "files": len(mapped.files),
            "unmatched_files": len(mapped.unmatched),
        }
        if executable:
            total = Measurement(
                metric="coverage_total",
                value=round(100.0 * covered / executable, 2),
                unit="%",
                tool=COVERAGE_TOOL,
                details=total_details,
            )
        else:
            reason = "the coverage data contains no executable lines"
            total = not_applicable("coverage_total", COVERAGE_TOOL, reason)
        new_code, findings = _new_code(ctx, mapped.files)
        measurements = [_with_digest(m, key, version) for m in (new_code, total)]
        return measurements, findings

    def _test_measurement(
        self,
        ctx: ProbeContext,
        cases: list[TestCase],
        tool: str,
        version: str,
        key: str,
    ) -> tuple[Measurement, list[Finding]]:
        if not cases:
            reason = "the JUnit report contains no test cases"
            return _with_digest(not_applicable("test", tool, reason), key, version), []
        failed = [case for case in cases if case.outcome in ("failed", "error")]
        findings = [_failure_finding(ctx, case, tool) for case in failed]
        measurement = Measurement(
            metric="test",
            value=float(len(failed)),
            unit="failures",
            tool=tool,
            details={"tests": len(cases), **_count_outcomes(cases)},
        )
        return _with_digest(measurement, key, version), findings

    def _error(self, reason: str, key: str, hint: str | None = None) -> ProbeResult:
        text = f"{reason}; {hint}" if hint else reason
        log.warning("tests probe failed: %s", text)
        result = error_result(self.name, sorted(self.metrics), COVERAGE_TOOL, text)
        measurements = [_with_digest(m, key) for m in result.measurements]
        return result.model_copy(update={"measurements": measurements})

    def _coverage_errors(
        self, reason: str, key: str, version: str = ""
    ) -> list[Measurement]:
        log.warning("coverage could not be measured: %s", reason)
        return [
            Measurement(
                metric=metric,
                status=MeasurementStatus.ERROR,
                tool=COVERAGE_TOOL,
                tool_version=version,
                inputs_digest=key,
                reason=reason,
            )
            for metric in ("coverage_new_code", "coverage_total")
        ]

    def _test_error(self, reason: str, key: str) -> Measurement:
        log.warning("tests could not be counted: %s", reason)
        return Measurement(
            metric="test",
            status=MeasurementStatus.ERROR,
            tool="tests",
            inputs_digest=key,
            reason=reason,
        )


def _reads_reports(ctx: ProbeContext) -> bool:
    return bool(ctx.settings.coverage_reports or ctx.settings.junit_reports)


def _command(ctx: ProbeContext) -> list[str]:
    if ctx.settings.test_command:
        return list(ctx.settings.test_command)
    return [ctx.python, "-m", "pytest"]


def _wrap(command: list[str], python: str) -> _WrappedCommand | None:
    """Rewrite ``python -m MODULE ...`` or ``pytest ...`` for ``coverage run``.

    A bare interpreter name such as ``python3`` is replaced by ``python`` (the
    interpreter of the probe context). An interpreter given by path is kept.
    """
    program = PurePosixPath(command[0]).name
    if program in _PYTEST_NAMES:
        return _WrappedCommand(python, "pytest", tuple(command[1:]))
    is_python = command[0] == python or _PYTHON_NAME.fullmatch(program)
    if not is_python or len(command) < 3 or command[1] != "-m":
        return None
    interpreter = command[0] if "/" in command[0] else python
    return _WrappedCommand(interpreter, command[2], tuple(command[3:]))


def _run_unwrapped(ctx: ProbeContext) -> Completed | None:
    """Run a configured command that cannot be wrapped, so that it writes its reports.

    Returns None without running anything when no such command is configured.
    """
    command = _unwrapped_command(ctx)
    if command is None:
        return None
    return run_tool(
        command,
        cwd=ctx.repo_root,
        timeout_s=ctx.settings.test_timeout_s,
        env=PROJECT_CODE_ENV,
    )


def _unwrapped_command(ctx: ProbeContext) -> list[str] | None:
    """Return the configured command when reports are given and it cannot be wrapped."""
    if not _reads_reports(ctx) or not ctx.settings.test_command:
        return None
    command = list(ctx.settings.test_command)
    return command if _wrap(command, ctx.python) is None else None


def _tool_versions(ctx: ProbeContext) -> str | None:
    wrapped = _wrap(_command(ctx), ctx.python)
    python = wrapped.python if wrapped else ctx.python
    known = installed_version(python, "coverage")
    if known is not None:
        return f"{platform.python_version()} {known}"
    script = (
        "import sys; from importlib.metadata import version; "
        "print(sys.version.split()[0], version('coverage'))"
    )
    try:
        completed = run_tool(
            [python, "-c", script], cwd=ctx.repo_root, timeout_s=INFO_TIMEOUT_S
        )
    except ToolError as exc:
        log.warning("tests probe is not cacheable: %s", exc)
        return None
    if completed.returncode != 0:
        log.warning("tests probe is not cacheable: %s", completed.describe())
        return None
    return completed.stdout.strip()


def _run_key(ctx: ProbeContext, versions: str) -> str:
    command = shlex.join(_command(ctx))
    changed = _changed_lines_text(ctx)
    return digest_files(ctx.repo_root, ctx.files, "run", command, changed, versions)


def _coverage_info(ctx: ProbeContext, python: str) -> dict:
    """Return the tool versions and the ``[run]`` options that coverage.py reads.

    Raises ToolError when coverage.py is missing or its configuration is invalid.
    """
    completed = run_tool(
        [python, "-c", _INFO_SCRIPT], cwd=ctx.repo_root, timeout_s=INFO_TIMEOUT_S
    )
    if completed.returncode != 0:
        lines = completed.stderr.strip().splitlines() or [
            f"exit {completed.returncode}"
        ]
        raise ToolError(
            f"coverage.py failed to start for {python} or to read its configuration: "
            f"{redact(lines[-1])}"
        )
    try:
        return json.loads(completed.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError) as exc:
        raise ToolError(
            "invalid output of the coverage.py settings script: "
            f"{completed.stdout[:200]!r}"
        ) from exc


def _coverage_run_args(
    wrapped: _WrappedCommand, tmp: Path, *, measure_repository: bool
) -> list[str]:
    args = [wrapped.python, "-m", "coverage", "run", f"--data-file={tmp / '.coverage'}"]
    if measure_repository:
        args.append("--source=.")
    args += ["-m", wrapped.module, *wrapped.args]
    if wrapped.is_pytest:
        args.append(f"--junitxml={tmp / 'junit.xml'}")
        if "no:cacheprovider" not in wrapped.args:
            args += ["-p", "no:cacheprovider"]
    return args


def _export_json(ctx: ProbeContext, python: str, tmp: Path) -> _Export:
    """Write ``coverage json`` for the data in ``tmp`` and read it back.

    Parallel data files (``parallel = true`` in the configuration) are combined
    first. The export skips files that coverage.py cannot parse (``-i``) and
    returns them with the report. Raises ToolError when coverage.py fails, for
    example with no data.
    """
    data_file = tmp / ".coverage"
    base = [python, "-m", "coverage"]
    timeout = ctx.settings.tool_timeout_s
    if not data_file.exists() and any(tmp.glob(".coverage.*")):
        combine = [*base, "combine", f"--data-file={data_file}", str(tmp)]
        _check(ctx, run_tool(combine, cwd=ctx.repo_root, timeout_s=timeout))
    output = tmp / "coverage.json"
    export = [*base, "json", "-i", f"--data-file={data_file}", "-o", str(output)]
    completed = run_tool(
        [*export, "--fail-under=0"], cwd=ctx.repo_root, timeout_s=timeout
    )
    _check(ctx, completed)
    unreported = _unreported_files(ctx, completed.stdout + "\n" + completed.stderr)
    for path, error in unreported.items():
        log.warning("coverage.py could not report %s: %s", path, error)
    return _Export(read_coverage_json(output), unreported)


def _check(ctx: ProbeContext, completed: Completed) -> None:
    if completed.returncode != 0:
        raise ToolError(f"no coverage data: {_short_error(ctx, completed)}")


def _short_error(ctx: ProbeContext, completed: Completed) -> str:
    """Return the error line of a failed coverage.py run and the file it names.

    The error line is the last line shaped like ``SomeError: message``, or else
    the last line of output. The file is the last traceback frame inside the
    repository, when there is one.
    """
    lines = [line for line in completed.stderr.splitlines() if line.strip()]
    lines = lines or [line for line in completed.stdout.splitlines() if line.strip()]
    errors = [line for line in lines if _ERROR_LINE.match(line.strip())]
    chosen = errors or lines or [f"exit code {completed.returncode}"]
    message = chosen[-1].strip()
    frames = [
        _relative_to_repo(ctx, match["path"])
        for line in lines
        if (match := _TRACEBACK_FILE.match(line))
    ]
    inside = [
        path
        for path in frames
        if not PurePosixPath(path).is_absolute() and (ctx.repo_root / path).is_file()
    ]
    if inside:
        message += f" (in {inside[-1]})"
    return redact(
        f"`coverage {completed.args[3]}` exited with {completed.returncode}: {message}"
    )


def _unreported_files(ctx: ProbeContext, output: str) -> dict[str, str]:
    unreported: dict[str, str] = {}
    for match in _COULDNT_PARSE.finditer(output):
        error = match["error"] or "not Python source"
        unreported[_relative_to_repo(ctx, match["path"])] = redact(error)
    return dict(sorted(unreported.items()))


def _relative_to_repo(ctx: ProbeContext, reported: str) -> str:
    """Return ``reported`` relative to the repository root, or as is when outside."""
    path = Path(reported)
    if not path.is_absolute():
        path = ctx.repo_root / path
    root = ctx.repo_root.resolve()
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError:
        return PurePosixPath(reported).as_posix()


def _note_unreported(
    measurements: list[Measurement], unreported: dict[str, str]
) -> list[Measurement]:
    """Name the files coverage.py could not report in each measurement."""
    if not unreported:
        return measurements
    names = ", ".join(f"{path} ({error})" for path, error in unreported.items())
    noun = "file" if len(unreported) == 1 else "files"
    suffix = f"coverage.py could not report {len(unreported)} {noun}: {names}"
    noted = []
    for measurement in measurements:
        reason = "; ".join(part for part in (measurement.reason, suffix) if part)
        details = {
            **measurement.details,
            "unreported_files": len(unreported),
            "unreported": ", ".join(unreported),
        }
        noted.append(
            measurement.model_copy(update={"reason": reason, "details": details})
        )
    return noted


def _changed_lines_text(ctx: ProbeContext) -> str:
    if ctx.changed_lines is None:
        return "no base"
    mapping = {path: sorted(lines) for path, lines in ctx.changed_lines.items()}
    return json.dumps(mapping, sort_keys=True)


def _with_digest(measurement: Measurement, key: str, version: str = "") -> Measurement:
    return measurement.model_copy(
        update={"inputs_digest": key, "tool_version": version}
    )


def _new_code(
    ctx: ProbeContext, files: dict[str, FileCoverage]
) -> tuple[Measurement, list[Finding]]:
    """Measure the share of changed executable lines that ran, failing closed.

    A changed source file that the coverage data does not contain counts every
    executable changed line as not covered. Source files are ``.py`` files and
    files with any suffix that the data covers (``.ts`` in an LCOV report).
    """
    if ctx.changed_lines is None:
        return not_applicable("coverage_new_code", COVERAGE_TOOL, "no base given"), []
    suffixes = {".py"} | {PurePosixPath(rel).suffix for rel in files}
    suffixes.discard("")
    executable = covered = unmeasured = 0
    findings = []
    for path, lines in sorted(ctx.changed_lines.items()):
        if _is_test_file(path) or _is_vendored(path):
            continue
        if PurePosixPath(path).suffix not in suffixes:
            continue
        data = files.get(path)
        if data is None:
            new = lines & _executable_lines(ctx, path)
            hit: frozenset[int] = frozenset()
            unmeasured += 1 if new else 0
        else:
            new = lines & data.executable
            hit = new & data.covered
        executable += len(new)
        covered += len(hit)
        if new - hit:
            findings.append(_uncovered_finding(path, new, new - hit))
    if not executable:
        reason = "no new executable lines"
        return not_applicable("coverage_new_code", COVERAGE_TOOL, reason), []
    measurement = Measurement(
        metric="coverage_new_code",
        value=round(100.0 * covered / executable, 2),
        unit="%",
        tool=COVERAGE_TOOL,
        details={
            "covered": covered,
            "executable": executable,
            "unmeasured_files": unmeasured,
        },
    )
    return measurement, findings


def _executable_lines(ctx: ProbeContext, path: str) -> frozenset[int]:
    """Return the executable lines of a file that has no coverage data.

    Python files are parsed with coverage.py's own parser, so docstrings and
    ``# pragma: no cover`` lines do not count. Other files, and Python files that
    do not parse, count every non-blank line that does not start a comment.
    """
    # Imported here because coverage.py takes a noticeable share of a warm check's
    # start-up, and most runs never parse a file that lacks coverage data.
    from coverage.exceptions import CoverageException
    from coverage.parser import PythonParser

    text = _read_source(ctx, path)
    if path.endswith(".py"):
        try:
            parser = PythonParser(text=text, filename=path, exclude=_NO_COVER)
            parser.parse_source()
            return frozenset(parser.statements)
        except (CoverageException, SyntaxError, ValueError) as exc:
            log.info("counting non-comment lines of %s: %s", path, exc)
    return frozenset(
        number
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.strip().startswith(_COMMENT_PREFIXES)
    )


def _read_source(ctx: ProbeContext, path: str) -> str:
    # The changed line numbers refer to scan_root (the staged content at the commit
    # stage), so read from there first.
    for root in (ctx.scan_root, ctx.repo_root):
        try:
            return (root / path).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
    return ""


def _is_test_file(path: str) -> bool:
    pure = PurePosixPath(path)
    name = pure.name
    if name == "conftest.py" or "tests" in pure.parts[:-1]:
        return True
    return (
        name.startswith("test_") and name.endswith(".py") or name.endswith("_test.py")
    )


def _is_vendored(path: str) -> bool:
    return any(part in _SKIPPED_DIRS for part in PurePosixPath(path).parts[:-1])


def _uncovered_finding(
    path: str, executable: frozenset[int], uncovered: frozenset[int]
) -> Finding:
    lines = sorted(uncovered)
    return Finding(
        category="coverage",
        tool=COVERAGE_TOOL,
        rule_id=UNCOVERED_RULE,
        message=(
            f"{len(lines)} of {len(executable)} new lines not covered: "
            f"{_format_ranges(lines)}"
        ),
        path=path,
        line=lines[0],
        severity="low",
        fingerprint=fingerprint(COVERAGE_TOOL, UNCOVERED_RULE, path),
    )


def _format_ranges(lines: list[int]) -> str:
    """Join sorted line numbers into ranges: ``[14, 15, 16, 22]`` -> ``14-16, 22``."""
    ranges: list[list[int]] = []
    for number in lines:
        if ranges and number == ranges[-1][1] + 1:
            ranges[-1][1] = number
        else:
            ranges.append([number, number])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in ranges)


def _count_outcomes(cases: list[TestCase]) -> dict[str, int]:
    outcomes = [case.outcome for case in cases]
    return {
        outcome: outcomes.count(outcome)
        for outcome in ("passed", "failed", "error", "skipped")
    }


def _failure_finding(ctx: ProbeContext, case: TestCase, tool: str) -> Finding:
    title = f"{case.classname}::{case.name}" if case.classname else case.name
    message = f"{title}: {case.message}" if case.message else title
    return Finding(
        category="test",
        tool=tool,
        rule_id=TEST_FAILURE_RULE,
        message=redact(message),
        path=_test_path(ctx, case),
        severity="high",
        fingerprint=fingerprint(tool, case.classname, case.name),
    )


def _test_path(ctx: ProbeContext, case: TestCase) -> str | None:
    """Return the repo-relative test file from ``file`` or, failing that, ``classname``.

    ``tests.test_app.TestApp`` is tried as ``tests/test_app/TestApp.py``, then
    ``tests/test_app.py``, then ``tests.py``, and the first existing file wins.
    """
    root = ctx.repo_root.resolve()
    if case.file:
        candidate = (root / case.file).resolve()
        if candidate.is_file() and candidate.is_relative_to(root):
            return candidate.relative_to(root).as_posix()
    parts = case.classname.split(".") if case.classname else []
    for end in range(len(parts), 0, -1):
        rel = "/".join(parts[:end]) + ".py"
        if (root / rel).is_file():
            return rel
    return None
