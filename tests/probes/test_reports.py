"""Tests of the coverage and JUnit report readers on output of real coverage.py runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from daw.errors import ConfigError
from daw.probes.reports import (
    COBERTURA,
    COVERAGE_JSON,
    JUNIT,
    LCOV,
    detect_format,
    map_to_repository,
    read_cobertura,
    read_coverage_json,
    read_coverage_report,
    read_junit,
    read_lcov,
)

MODULE = """\
def double(x):
    return 2 * x


def unused():
    return None
"""

TESTS = """\
import pytest

from pkg.mod import double


def test_double():
    assert double(2) == 4


def test_wrong():
    assert double(2) == 5


@pytest.mark.skip(reason="later")
def test_later():
    pass
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with its code under ``src/``, configured with ``source = src``."""
    root = tmp_path_factory.mktemp("project")
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "src" / "pkg" / "__init__.py").write_text("", encoding="utf-8")
    (root / "src" / "pkg" / "mod.py").write_text(MODULE, encoding="utf-8")
    (root / ".coveragerc").write_text("[run]\nsource = src\n", encoding="utf-8")
    (root / "tests").mkdir()
    (root / "tests" / "test_mod.py").write_text(TESTS, encoding="utf-8")
    out = root.parent / f"{root.name}-reports"
    out.mkdir()
    data = f"--data-file={out / 'data'}"
    subprocess.run(
        [sys.executable, "-m", "coverage", "run", data, "-m"]
        + ["pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={out / 'junit.xml'}"],
        cwd=root,
        env={"PYTHONPATH": str(root / "src"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        check=False,
    )
    for kind, name in (("json", "cov.json"), ("xml", "cov.xml"), ("lcov", "cov.info")):
        export = [sys.executable, "-m", "coverage", kind, data, "-o", str(out / name)]
        subprocess.run(export, cwd=root, capture_output=True, check=True)
    outside = [sys.executable, "-m", "coverage", "json", data, "-o", "absolute.json"]
    subprocess.run(outside, cwd=out, capture_output=True, check=True)
    return root


def report(project: Path, name: str) -> Path:
    return project.parent / f"{project.name}-reports" / name


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_detect_each_format(project):
    assert detect_format(report(project, "cov.json")) == COVERAGE_JSON
    assert detect_format(report(project, "cov.xml")) == COBERTURA
    assert detect_format(report(project, "cov.info")) == LCOV
    assert detect_format(report(project, "junit.xml")) == JUNIT


def test_detect_ignores_extension(project, tmp_path):
    text = report(project, "cov.info").read_text(encoding="utf-8")
    disguised = write(tmp_path, "coverage.xml", text)

    assert detect_format(disguised) == LCOV


def test_detect_unknown_format(tmp_path):
    path = write(tmp_path, "notes.txt", "just some text\n")

    with pytest.raises(ConfigError, match="notes.txt: not a coverage.py JSON"):
        detect_format(path)


def test_formats_agree(project):
    readers = (
        (read_coverage_json, "cov.json"),
        (read_cobertura, "cov.xml"),
        (read_lcov, "cov.info"),
    )
    for reader, name in readers:
        mapped = map_to_repository([reader(report(project, name))], project)
        mod = mapped.files["src/pkg/mod.py"]

        assert mod.executable == frozenset({1, 2, 5, 6}), name
        assert mod.covered == frozenset({1, 2, 5}), name
        assert mapped.unmatched == [], name


def test_cobertura_source_root(project):
    parsed = read_cobertura(report(project, "cov.xml"))

    assert parsed.source_roots == (str(project / "src"),)
    assert "pkg/mod.py" in parsed.files


def test_absolute_paths_mapped(project):
    parsed = read_coverage_json(report(project, "absolute.json"))
    mapped = map_to_repository([parsed], project)

    assert all(Path(name).is_absolute() for name in parsed.files)
    assert sorted(mapped.files) == ["src/pkg/__init__.py", "src/pkg/mod.py"]


def test_unmatched_paths_listed(project, tmp_path):
    elsewhere = tmp_path / "other"
    elsewhere.mkdir()
    parsed = read_lcov(report(project, "cov.info"))
    mapped = map_to_repository([parsed], elsewhere)

    assert mapped.files == {}
    assert mapped.unmatched == ["src/pkg/__init__.py", "src/pkg/mod.py"]


def test_path_outside_repo_unmatched(project, tmp_path):
    outside = write(tmp_path, "outside.py", "X = 1\n")
    lcov = write(tmp_path, "o.info", f"SF:{outside}\nDA:1,1\nend_of_record\n")
    mapped = map_to_repository([read_lcov(lcov)], project)

    assert mapped.files == {}
    assert mapped.unmatched == [str(outside)]


def test_truncated_json(project, tmp_path):
    text = report(project, "cov.json").read_text(encoding="utf-8")
    path = write(tmp_path, "cut.json", text[: len(text) // 2])

    with pytest.raises(ConfigError, match=r"cut.json:\d+: invalid JSON"):
        read_coverage_report(path)


def test_json_without_files(tmp_path):
    path = write(tmp_path, "other.json", '{"name": "not coverage"}')

    with pytest.raises(ConfigError, match="no 'files' object"):
        read_coverage_json(path)


def test_lcov_bad_record_line(project, tmp_path):
    lines = report(project, "cov.info").read_text(encoding="utf-8").splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith("DA:"))
    lines[index] = "DA:one,1"
    path = write(tmp_path, "bad.info", "\n".join(lines) + "\n")

    with pytest.raises(ConfigError, match=rf"bad.info:{index + 1}: invalid DA record"):
        read_lcov(path)


def test_lcov_truncated(project, tmp_path):
    text = report(project, "cov.info").read_text(encoding="utf-8")
    path = write(tmp_path, "cut.info", text.rsplit("end_of_record", 1)[0])

    with pytest.raises(ConfigError, match="truncated"):
        read_lcov(path)


def test_lcov_garbage_line(tmp_path):
    path = write(tmp_path, "junk.info", "SF:a.py\nthis is not lcov\nend_of_record\n")

    with pytest.raises(ConfigError, match=r"junk.info:2: invalid LCOV record"):
        read_lcov(path)


def test_lcov_data_outside_file(tmp_path):
    path = write(tmp_path, "orphan.info", "TN:\nDA:1,1\nend_of_record\n")

    with pytest.raises(ConfigError, match=r"orphan.info:2: DA record outside SF"):
        read_lcov(path)


def test_corrupt_cobertura_line(project, tmp_path):
    text = report(project, "cov.xml").read_text(encoding="utf-8")
    cut = write(tmp_path, "cut.xml", text[: len(text) // 2])

    with pytest.raises(ConfigError, match=r"cut.xml:\d+: invalid XML"):
        read_coverage_report(cut)


def test_cobertura_bad_hits(project, tmp_path):
    text = report(project, "cov.xml").read_text(encoding="utf-8")
    path = write(tmp_path, "hits.xml", text.replace('hits="1"', 'hits="many"', 1))

    with pytest.raises(ConfigError, match="invalid number or hits"):
        read_cobertura(path)


def test_junit_as_coverage_rejected(project):
    with pytest.raises(ConfigError, match="is a JUnit XML report"):
        read_coverage_report(report(project, "junit.xml"))


def test_junit_outcomes(project):
    cases = {case.name: case for case in read_junit(report(project, "junit.xml"))}

    assert cases["test_double"].outcome == "passed"
    assert cases["test_wrong"].outcome == "failed"
    assert cases["test_wrong"].message.startswith("assert 4 == 5")
    assert cases["test_wrong"].classname == "tests.test_mod"
    assert cases["test_later"].outcome == "skipped"


def test_junit_invalid_xml(tmp_path):
    path = write(tmp_path, "junit.xml", "<testsuites><testsuite>\n<testcase")

    with pytest.raises(ConfigError, match=r"junit.xml:2: invalid XML"):
        read_junit(path)


def test_junit_entity_expansion_rejected(tmp_path):
    bomb = (
        '<?xml version="1.0"?>\n<!DOCTYPE t [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>\n<testsuite>&b;</testsuite>\n'
    )
    path = write(tmp_path, "junit.xml", bomb)

    with pytest.raises(ConfigError, match="entity or DTD declarations"):
        read_junit(path)


def test_junit_wrong_root(project):
    with pytest.raises(ConfigError, match="expected <testsuites> or <testsuite>"):
        read_junit(report(project, "cov.xml"))


def test_missing_report(tmp_path):
    with pytest.raises(ConfigError, match="gone.json: cannot be read"):
        read_coverage_report(tmp_path / "gone.json")
