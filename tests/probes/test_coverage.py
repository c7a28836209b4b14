"""Tests of the tests probe with real pytest and coverage.py runs on real git repos."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from daw.git import changed_lines, tracked_files
from daw.models import MeasurementStatus, ProbeResult
from daw.probes.base import ProbeContext, ProbeSettings
from daw.probes.coverage import TestCoverageProbe, _short_error
from daw.process import run_tool
from daw.stages import Stage

APP = """\
def add(a, b):
    return a + b


def classify(x):
    return "zero"
"""

APP_CHANGED = """\
def add(a, b):
    return a + b


def classify(x):
    if x > 0:
        return "positive"
    if x < 0:
        return "negative"
    return "zero"
"""

TEST_APP = """\
from app import add


def test_add():
    assert add(1, 2) == 3
"""

TEST_CLASSIFY = """\
from app import classify


def test_positive():
    assert classify(1) == "positive"
"""


def make_ctx(repo, python: str, base: str | None = None, **settings) -> ProbeContext:
    return ProbeContext(
        repo_root=repo.root,
        scan_root=repo.root,
        stage=Stage.MERGE,
        files=tuple(tracked_files(repo.root)),
        python=python,
        settings=ProbeSettings(**settings),
        base=base,
        changed_lines=changed_lines(repo.root, base) if base else None,
    )


def by_metric(result: ProbeResult) -> dict:
    return {m.metric: m for m in result.measurements}


@pytest.fixture
def base_repo(make_repo):
    return make_repo({"app.py": APP, "tests/test_app.py": TEST_APP})


def base_of(repo) -> str:
    return repo.git("rev-parse", "HEAD").strip()


def test_new_code_fully_covered(base_repo, python):
    base = base_of(base_repo)
    base_repo.write("app.py", APP + "\n\ndef mul(a, b):\n    return a * b\n")
    base_repo.write(
        "tests/test_mul.py",
        "from app import mul\n\n\ndef test_mul():\n    assert mul(2, 3) == 6\n",
    )
    base_repo.commit("add mul")

    result = TestCoverageProbe().run(make_ctx(base_repo, python, base))
    measured = by_metric(result)

    assert measured["coverage_new_code"].status is MeasurementStatus.OK
    assert measured["coverage_new_code"].value == 100.0
    assert measured["coverage_new_code"].details["executable"] == 2
    assert [f for f in result.findings if f.category == "coverage"] == []


def test_new_code_half_covered(base_repo, python):
    base = base_of(base_repo)
    base_repo.write("app.py", APP_CHANGED)
    base_repo.write("tests/test_classify.py", TEST_CLASSIFY)
    base_repo.commit("classify signs")

    result = TestCoverageProbe().run(make_ctx(base_repo, python, base))
    new_code = by_metric(result)["coverage_new_code"]
    [finding] = result.findings

    assert new_code.value == 50.0
    assert new_code.details["executable"] == 4
    assert finding.message == "2 of 4 new lines not covered: 8-9"
    assert finding.path == "app.py"
    assert finding.line == 8
    assert finding.severity == "low"
    assert finding.rule_id == "uncovered-new-code"


def test_total_excludes_tests(base_repo, python):
    result = TestCoverageProbe().run(make_ctx(base_repo, python))
    total = by_metric(result)["coverage_total"]

    assert total.value == 75.0
    assert total.unit == "%"
    assert total.details["files"] == 1
    assert total.details["executable"] == 4
    assert total.tool_version != ""


def test_new_code_without_base(base_repo, python):
    result = TestCoverageProbe().run(make_ctx(base_repo, python))
    new_code = by_metric(result)["coverage_new_code"]

    assert new_code.status is MeasurementStatus.NOT_APPLICABLE
    assert new_code.reason == "no base given"


def test_unmeasured_file_counts_uncovered(make_repo, python):
    repo = make_repo(
        {
            "app.py": APP,
            "tests/test_app.py": TEST_APP,
            "pyproject.toml": '[tool.coverage.run]\ninclude = ["app.py"]\n',
        }
    )
    base = base_of(repo)
    repo.write("scripts/tool.py", '"""Doc."""\n\n# comment\nVALUE = 1\nprint(VALUE)\n')
    repo.commit("add a script")

    result = TestCoverageProbe().run(make_ctx(repo, python, base))
    measured = by_metric(result)
    [finding] = result.findings

    assert measured["coverage_new_code"].value == 0.0
    assert measured["coverage_new_code"].details["executable"] == 2
    assert measured["coverage_new_code"].details["unmeasured_files"] == 1
    assert measured["coverage_total"].details["source"] == "configuration"
    assert finding.path == "scripts/tool.py"
    assert finding.message == "2 of 2 new lines not covered: 4-5"


def test_no_new_executable_lines(base_repo, python):
    base = base_of(base_repo)
    base_repo.write("app.py", "# arithmetic helpers\n" + APP)
    base_repo.write("README.md", "hello\n")
    base_repo.commit("comment only")

    result = TestCoverageProbe().run(make_ctx(base_repo, python, base))
    new_code = by_metric(result)["coverage_new_code"]

    assert new_code.status is MeasurementStatus.NOT_APPLICABLE
    assert new_code.reason == "no new executable lines"


def test_changed_test_files_ignored(base_repo, python):
    base = base_of(base_repo)
    base_repo.write(
        "tests/test_app.py", TEST_APP + "\n\ndef test_more():\n    assert True\n"
    )
    base_repo.commit("more tests")

    result = TestCoverageProbe().run(make_ctx(base_repo, python, base))
    new_code = by_metric(result)["coverage_new_code"]

    assert new_code.status is MeasurementStatus.NOT_APPLICABLE


def test_failing_tests_counted(base_repo, python):
    base_repo.write(
        "tests/test_fail.py",
        "def test_broken():\n    assert 1 == 2, 'password=hunter2 mismatch'\n\n\n"
        "def test_crash():\n    raise RuntimeError('boom')\n",
    )
    base_repo.commit("failing tests")

    result = TestCoverageProbe().run(make_ctx(base_repo, python))
    measured = by_metric(result)
    failures = [f for f in result.findings if f.category == "test"]
    messages = sorted(f.message for f in failures)

    assert measured["test"].value == 2.0
    assert measured["test"].details["passed"] == 1
    assert measured["coverage_total"].status is MeasurementStatus.OK
    assert len(failures) == 2
    assert messages[0].startswith("tests.test_fail::test_broken: AssertionError")
    assert "hunter2" not in messages[0]
    assert messages[1].startswith("tests.test_fail::test_crash: RuntimeError: boom")
    assert {f.path for f in failures} == {"tests/test_fail.py"}
    assert {f.severity for f in failures} == {"high"}
    assert {f.rule_id for f in failures} == {"test-failure"}
    assert failures[0].fingerprint != failures[1].fingerprint


def test_skipped_not_failure(base_repo, python):
    base_repo.write(
        "tests/test_skip.py",
        "import pytest\n\n\n@pytest.mark.skip(reason='later')\ndef test_later():\n"
        "    assert False\n",
    )
    base_repo.commit("skipped test")

    result = TestCoverageProbe().run(make_ctx(base_repo, python))
    test = by_metric(result)["test"]

    assert test.value == 0.0
    assert test.details["skipped"] == 1
    assert result.findings == []


def test_usage_error_is_error(base_repo, python):
    command = (python, "-m", "pytest", "--no-such-option")
    result = TestCoverageProbe().run(make_ctx(base_repo, python, test_command=command))
    statuses = {m.metric: m.status for m in result.measurements}

    assert set(statuses.values()) == {MeasurementStatus.ERROR}
    assert "usage error" in result.measurements[0].reason
    assert "--no-such-option" in result.measurements[0].reason


def test_no_tests_collected(make_repo, python):
    repo = make_repo({"app.py": APP})

    result = TestCoverageProbe().run(make_ctx(repo, python))
    measured = by_metric(result)

    assert measured["test"].status is MeasurementStatus.NOT_APPLICABLE
    assert measured["test"].reason == "pytest collected no tests"
    assert measured["coverage_total"].value == 0.0


def test_pytest_word_wrapped(base_repo, python):
    command = ("pytest", "-q", "tests")
    result = TestCoverageProbe().run(make_ctx(base_repo, python, test_command=command))
    measured = by_metric(result)

    assert measured["coverage_total"].value == 75.0
    assert measured["test"].details["passed"] == 1


def test_unwrappable_command_is_error(base_repo, python):
    command = ("make", "test")
    result = TestCoverageProbe().run(make_ctx(base_repo, python, test_command=command))

    assert {m.status for m in result.measurements} == {MeasurementStatus.ERROR}
    assert "`make test`" in result.measurements[0].reason
    assert "coverage_reports" in result.measurements[0].reason


def test_timeout_is_error(base_repo, python):
    base_repo.write(
        "tests/test_slow.py", "import time\n\n\ndef test_slow():\n    time.sleep(30)\n"
    )
    base_repo.commit("slow test")

    ctx = make_ctx(base_repo, python, test_timeout_s=1.5)
    result = TestCoverageProbe().run(ctx)

    assert {m.status for m in result.measurements} == {MeasurementStatus.ERROR}
    assert "timed out after 1.5 s" in result.measurements[0].reason
    assert result.duration_s < 20


def test_temporary_files_outside_repo(base_repo, python):
    TestCoverageProbe().run(make_ctx(base_repo, python))
    status = base_repo.git("status", "--porcelain", "--ignored")

    assert status == ""


def test_cache_key_follows_content(base_repo, python):
    probe = TestCoverageProbe()
    first = probe.cache_key(make_ctx(base_repo, python))
    same = probe.cache_key(make_ctx(base_repo, python))
    base_repo.write("app.py", APP + "\nX = 1\n")
    changed = probe.cache_key(make_ctx(base_repo, python))

    assert first is not None
    assert first == same
    assert first != changed


def test_measurements_record_digest(base_repo, python):
    ctx = make_ctx(base_repo, python)
    probe = TestCoverageProbe()
    result = probe.run(ctx)

    assert [m.metric for m in result.measurements] == sorted(probe.metrics)
    assert {m.inputs_digest for m in result.measurements} == {probe.cache_key(ctx)}


def export_reports(repo, python: str, folder: Path) -> dict[str, Path]:
    """Run the tests of ``repo`` under coverage and export every report format."""
    data = f"--data-file={folder / 'data.coverage'}"
    junit = folder / "junit.xml"
    run = [python, "-m", "coverage", "run", data, "--source=.", "--omit=tests/*"]
    pytest_args = [
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        f"--junitxml={junit}",
    ]
    subprocess.run(
        [*run, *pytest_args], cwd=repo.root, check=False, capture_output=True
    )
    reports = {"junit": junit}
    for kind, name in (("json", "cov.json"), ("xml", "cov.xml"), ("lcov", "cov.info")):
        reports[kind] = folder / name
        export = [python, "-m", "coverage", kind, data, "-o", str(reports[kind])]
        subprocess.run(export, cwd=repo.root, check=True, capture_output=True)
    return reports


def test_imported_reports_match_run(base_repo, python, tmp_path):
    base = base_of(base_repo)
    base_repo.write("app.py", APP_CHANGED)
    base_repo.write("tests/test_classify.py", TEST_CLASSIFY)
    base_repo.commit("classify signs")
    reports = export_reports(base_repo, python, tmp_path)
    ran = by_metric(TestCoverageProbe().run(make_ctx(base_repo, python, base)))

    for kind in ("json", "xml", "lcov"):
        ctx = make_ctx(base_repo, python, base, coverage_reports=(reports[kind],))
        result = TestCoverageProbe().run(ctx)
        read = by_metric(result)

        assert read["coverage_total"].value == ran["coverage_total"].value, kind
        assert read["coverage_total"].details["executable"] == 8, kind
        assert read["coverage_new_code"].value == ran["coverage_new_code"].value, kind
        assert read["coverage_new_code"].value == 50.0, kind
        assert read["test"].status is MeasurementStatus.ERROR, kind
        assert read["test"].reason.startswith("no test report given: pass"), kind
        assert [f.path for f in result.findings] == ["app.py"], kind


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory):
    """A repository with one failing test, and every report of one coverage run.

    Shared by the tests below to save a run each. Tests that change a report
    change a copy.
    """
    root = tmp_path_factory.mktemp("exported")
    files = {
        "app.py": APP,
        "tests/test_app.py": TEST_APP,
        "tests/test_fail.py": "def test_broken():\n    assert False\n",
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    subprocess.run(["git", "init", "--quiet"], cwd=root, check=True)
    subprocess.run(["git", "add", "--all"], cwd=root, check=True)
    repo = SimpleNamespace(root=root)
    folder = tmp_path_factory.mktemp("exported-reports")
    return repo, export_reports(repo, sys.executable, folder)


def copy_report(source: Path, tmp_path: Path) -> Path:
    target = tmp_path / source.name
    shutil.copy(source, target)
    return target


def test_imported_junit_counts_failures(exported, python):
    repo, reports = exported
    ctx = make_ctx(
        repo,
        python,
        coverage_reports=(reports["xml"],),
        junit_reports=(reports["junit"],),
    )
    result = TestCoverageProbe().run(ctx)
    measured = by_metric(result)
    [finding] = result.findings

    assert measured["test"].value == 1.0
    assert measured["test"].details["passed"] == 1
    assert measured["test"].tool == "junit"
    assert measured["coverage_total"].value == 75.0
    assert finding.message.startswith("tests.test_fail::test_broken: ")
    assert finding.path == "tests/test_fail.py"


def test_junit_only_skips_coverage(exported, python):
    repo, reports = exported
    ctx = make_ctx(repo, python, junit_reports=(reports["junit"],))
    measured = by_metric(TestCoverageProbe().run(ctx))

    assert measured["test"].value == 1.0
    assert measured["coverage_total"].status is MeasurementStatus.NOT_APPLICABLE
    assert measured["coverage_total"].reason == "no coverage report given"


def test_report_matching_nothing_is_error(exported, make_repo, python):
    _, reports = exported
    other = make_repo({"lib.py": "VALUE = 1\n"})

    ctx = make_ctx(other, python, coverage_reports=(reports["lcov"],))
    measured = by_metric(TestCoverageProbe().run(ctx))

    assert measured["coverage_total"].status is MeasurementStatus.ERROR
    assert measured["coverage_total"].reason == (
        "paths in cov.info match no file in the repository; "
        "check the report's source root"
    )
    assert measured["coverage_new_code"].status is MeasurementStatus.ERROR


def test_partly_matching_report(exported, python, tmp_path):
    repo, reports = exported
    lcov = copy_report(reports["lcov"], tmp_path)
    text = lcov.read_text(encoding="utf-8")
    lcov.write_text(text + "SF:gone.py\nDA:1,1\nend_of_record\n", encoding="utf-8")

    ctx = make_ctx(repo, python, coverage_reports=(lcov,))
    total = by_metric(TestCoverageProbe().run(ctx))["coverage_total"]

    assert total.value == 75.0
    assert total.details["unmatched_files"] == 1


def test_corrupt_xml_is_error(exported, python, tmp_path):
    repo, reports = exported
    xml = copy_report(reports["xml"], tmp_path)
    text = xml.read_text(encoding="utf-8")
    xml.write_text(text[: len(text) // 2], encoding="utf-8")

    ctx = make_ctx(repo, python, coverage_reports=(xml,))
    measured = by_metric(TestCoverageProbe().run(ctx))

    assert measured["coverage_total"].status is MeasurementStatus.ERROR
    assert str(xml) in measured["coverage_total"].reason
    assert "invalid XML" in measured["coverage_total"].reason


def test_report_cache_key_follows_report(exported, python, tmp_path):
    repo, reports = exported
    report = copy_report(reports["json"], tmp_path)
    ctx = make_ctx(repo, python, coverage_reports=(report,))
    probe = TestCoverageProbe()
    first = probe.cache_key(ctx)
    report.write_text("{}", encoding="utf-8")

    assert first is not None
    assert probe.cache_key(ctx) != first


def test_unwrapped_command_writes_report(exported, python, tmp_path):
    repo, reports = exported
    lcov = tmp_path / "fresh.info"
    script = f"import shutil; shutil.copy({str(reports['lcov'])!r}, {str(lcov)!r})"
    command = ("sh", "-c", f'{python} -c "{script}"')

    ctx = make_ctx(repo, python, test_command=command, coverage_reports=(lcov,))
    measured = by_metric(TestCoverageProbe().run(ctx))

    assert measured["coverage_total"].value == 75.0
    assert measured["test"].status is MeasurementStatus.NOT_APPLICABLE


def test_failing_unwrapped_command(exported, python):
    repo, reports = exported
    command = ("sh", "-c", "exit 3")

    ctx = make_ctx(
        repo, python, test_command=command, coverage_reports=(reports["lcov"],)
    )
    measured = by_metric(TestCoverageProbe().run(ctx))

    assert measured["coverage_total"].value == 75.0
    assert measured["test"].status is MeasurementStatus.ERROR
    assert "exited with 3" in measured["test"].reason
    assert "failures cannot be counted" in measured["test"].reason


def test_parallel_data_combined(make_repo, python):
    config = "[tool.coverage.run]\nparallel = true\n"
    repo = make_repo(
        {"app.py": APP, "tests/test_app.py": TEST_APP, "pyproject.toml": config}
    )

    total = by_metric(TestCoverageProbe().run(make_ctx(repo, python)))["coverage_total"]

    assert total.value == 75.0


def test_invalid_coverage_config(make_repo, python):
    config = "[tool.coverage.run]\nomit = [\n"
    repo = make_repo(
        {"app.py": APP, "tests/test_app.py": TEST_APP, "pyproject.toml": config}
    )

    result = TestCoverageProbe().run(make_ctx(repo, python))
    reason = result.measurements[0].reason

    assert {m.status for m in result.measurements} == {MeasurementStatus.ERROR}
    assert "read its configuration" in reason
    assert "Couldn't read config file pyproject.toml" in reason


# Latin-1 bytes with no coding cookie: Python, and so coverage.py, cannot parse it.
NOT_UTF8 = "NAME = 'caf\xe9'\n".encode("latin-1")


def test_unparseable_file_named(base_repo, python):
    base_repo.write("legacy.py", NOT_UTF8)
    base_repo.commit("add a latin-1 module")

    measured = by_metric(TestCoverageProbe().run(make_ctx(base_repo, python)))
    total = measured["coverage_total"]

    assert total.status is MeasurementStatus.OK
    assert total.value == 75.0
    assert total.details["unreported_files"] == 1
    assert total.details["unreported"] == "legacy.py"
    assert "could not report 1 file: legacy.py" in total.reason
    assert "Traceback" not in total.reason


def test_unparseable_changed_file_uncovered(base_repo, python):
    base = base_of(base_repo)
    base_repo.write("legacy.py", NOT_UTF8 + b"VALUE = 2\n")
    base_repo.commit("add a latin-1 module")

    result = TestCoverageProbe().run(make_ctx(base_repo, python, base))
    new_code = by_metric(result)["coverage_new_code"]

    assert new_code.status is MeasurementStatus.OK
    assert new_code.value == 0.0
    assert new_code.details["unmeasured_files"] == 1
    assert new_code.details["unreported"] == "legacy.py"
    assert [f.path for f in result.findings] == ["legacy.py"]


def test_export_error_is_short(base_repo, python, tmp_path):
    base_repo.write("legacy.py", NOT_UTF8)
    data = f"--data-file={tmp_path / 'data.coverage'}"
    coverage = [python, "-m", "coverage"]
    run_tool(
        [*coverage, "run", data, "--source=.", "-m", "pytest", "-q"],
        cwd=base_repo.root,
        env={"PYTHONSAFEPATH": ""},
    )
    export = [*coverage, "json", data, "-o", str(tmp_path / "c.json")]
    completed = run_tool(export, cwd=base_repo.root)

    reason = _short_error(make_ctx(base_repo, python), completed)

    assert completed.returncode != 0
    assert "Traceback" in completed.stderr
    assert "Traceback" not in reason
    assert "\n" not in reason
    assert reason.endswith("SyntaxError: invalid or missing encoding declaration")


def test_reports_without_junit_is_error(exported, python):
    repo, reports = exported
    ctx = make_ctx(repo, python, coverage_reports=(reports["lcov"],))
    measured = by_metric(TestCoverageProbe().run(ctx))

    assert measured["coverage_total"].value == 75.0
    assert measured["test"].status is MeasurementStatus.ERROR
    assert measured["test"].reason == (
        "no test report given: pass --junit-report FILE with the coverage report, "
        "or let DAW run the tests"
    )
