"""Readers for coverage reports (coverage.py JSON, Cobertura XML, LCOV) and JUnit XML.

Each reader raises ConfigError naming the file, and the line where the parser
reports one, when the input is invalid. The format is detected from the content,
never from the file name.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET  # nosec B405 - types and errors only
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from daw.errors import ConfigError

COVERAGE_JSON = "coverage.py JSON"
COBERTURA = "Cobertura XML"
LCOV = "LCOV"
JUNIT = "JUnit XML"

_LCOV_TAG = re.compile(r"^[A-Z]+:")


@dataclass(frozen=True)
class FileCoverage:
    """Line coverage of one file: the executable lines and those that ran (1-based)."""

    executable: frozenset[int]
    covered: frozenset[int]


@dataclass(frozen=True)
class CoverageReport:
    """Line coverage per file, with paths exactly as the report spells them.

    ``source_roots`` are the folders that relative paths are relative to (the
    Cobertura ``<sources>``), empty for formats that have none.
    """

    path: Path
    format: str
    files: dict[str, FileCoverage]
    source_roots: tuple[str, ...] = ()


@dataclass(frozen=True)
class TestCase:
    """One JUnit ``<testcase>``: its outcome is passed, failed, error or skipped."""

    __test__ = False

    classname: str
    name: str
    outcome: str
    message: str = ""
    file: str | None = None


@dataclass
class MappedCoverage:
    """Coverage of files in the repository, keyed by repo-relative POSIX path.

    ``unmatched`` lists report paths that name no file in the repository.
    """

    files: dict[str, FileCoverage] = field(default_factory=dict)
    unmatched: list[str] = field(default_factory=list)


def detect_format(path: Path) -> str:
    """Return which report format ``path`` contains, judged by its content.

    Raises ConfigError when the file cannot be read or matches none of the formats.
    """
    head = _read_text(path)[:4096].lstrip("\ufeff \t\r\n")
    if head.startswith("{"):
        return COVERAGE_JSON
    if head.startswith("<"):
        return _detect_xml(path)
    if _LCOV_TAG.match(head) or head.startswith("end_of_record"):
        return LCOV
    raise ConfigError(
        "not a coverage.py JSON, Cobertura XML, LCOV or JUnit XML report",
        path=str(path),
        hint="pass the report file the tool wrote, not a folder or HTML report",
    )


def read_coverage_report(path: Path) -> CoverageReport:
    """Read a coverage report in any supported format, or raise ConfigError."""
    readers = {
        COVERAGE_JSON: read_coverage_json,
        COBERTURA: read_cobertura,
        LCOV: read_lcov,
    }
    kind = detect_format(path)
    if kind not in readers:
        raise ConfigError(
            f"is a {kind} report, not a coverage report",
            path=str(path),
            hint="pass it as a JUnit report instead",
        )
    return readers[kind](path)


def read_coverage_json(path: Path) -> CoverageReport:
    """Read the output of ``coverage json``: executable = executed + missing lines."""
    text = _read_text(path)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"invalid JSON: {exc.msg}", path=str(path), line=exc.lineno
        ) from exc
    files = document.get("files") if isinstance(document, dict) else None
    if not isinstance(files, dict):
        raise ConfigError(
            "no 'files' object: not the output of `coverage json`", path=str(path)
        )
    result = {}
    for name, entry in files.items():
        try:
            executed = _line_numbers(entry["executed_lines"])
            missing = _line_numbers(entry["missing_lines"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(
                f"invalid entry for {name!r}: {exc}", path=str(path)
            ) from exc
        result[name] = FileCoverage(executed | missing, executed)
    return CoverageReport(path, COVERAGE_JSON, result)


def read_cobertura(path: Path) -> CoverageReport:
    """Read a Cobertura XML report from the ``<line>`` elements of each ``<class>``."""
    root = _parse_xml(path)
    if root.tag != "coverage":
        raise ConfigError(
            f"root element is <{root.tag}>, expected <coverage>", path=str(path)
        )
    sources = tuple(
        (source.text or "").strip()
        for source in root.iter("source")
        if (source.text or "").strip()
    )
    executable: dict[str, set[int]] = {}
    covered: dict[str, set[int]] = {}
    for cls in root.iter("class"):
        name = cls.get("filename")
        if not name:
            raise ConfigError("<class> without a filename attribute", path=str(path))
        lines = executable.setdefault(name, set())
        hit = covered.setdefault(name, set())
        for number, hits in _class_lines(path, cls):
            lines.add(number)
            if hits > 0:
                hit.add(number)
    files = {
        name: FileCoverage(frozenset(lines), frozenset(covered[name]))
        for name, lines in executable.items()
    }
    return CoverageReport(path, COBERTURA, files, sources)


def read_lcov(path: Path) -> CoverageReport:
    """Read an LCOV tracefile from its ``SF``, ``DA`` and ``end_of_record`` records.

    Other tags (functions, branches, totals) are skipped. A record left open at
    the end of the file means the file is truncated.
    """
    executable: dict[str, set[int]] = {}
    covered: dict[str, set[int]] = {}
    current: str | None = None
    number = 0
    for number, raw in enumerate(_read_text(path).splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if line == "end_of_record":
            current = None
            continue
        if not _LCOV_TAG.match(line):
            raise ConfigError(
                f"invalid LCOV record {line[:80]!r}", path=str(path), line=number
            )
        tag, _, value = line.partition(":")
        if tag == "SF":
            current = value
            executable.setdefault(current, set())
            covered.setdefault(current, set())
        elif tag == "DA":
            if current is None:
                raise ConfigError("DA record outside SF", path=str(path), line=number)
            line_number, hits = _lcov_line(path, number, value)
            executable[current].add(line_number)
            if hits > 0:
                covered[current].add(line_number)
    if current is not None:
        raise ConfigError(
            "truncated: the last record has no end_of_record",
            path=str(path),
            line=number,
        )
    if not executable:
        raise ConfigError("no SF records: no file is covered", path=str(path))
    files = {
        name: FileCoverage(frozenset(lines), frozenset(covered[name]))
        for name, lines in executable.items()
    }
    return CoverageReport(path, LCOV, files)


def read_junit(path: Path) -> list[TestCase]:
    """Read every ``<testcase>`` of a JUnit XML report, in document order.

    A test case with a ``<failure>`` child has outcome ``failed``, one with an
    ``<error>`` child ``error``, one with ``<skipped>`` ``skipped``. The message
    is the first line of the failure's ``message`` attribute or text.
    """
    root = _parse_xml(path)
    if root.tag not in ("testsuites", "testsuite"):
        raise ConfigError(
            f"root element is <{root.tag}>, expected <testsuites> or <testsuite>",
            path=str(path),
        )
    return [_test_case(case) for case in root.iter("testcase")]


def map_to_repository(reports: list[CoverageReport], repo_root: Path) -> MappedCoverage:
    """Map the paths of ``reports`` to files under ``repo_root`` and merge them.

    A report path may be absolute, relative to the repository or relative to one
    of the report's source roots. The first candidate that names an existing file
    inside the repository wins. A file that several reports cover gets the union
    of their executable and covered lines. Paths are never guessed by suffix, so
    a report written in another checkout matches nothing.
    """
    root = repo_root.resolve()
    executable: dict[str, set[int]] = {}
    covered: dict[str, set[int]] = {}
    unmatched = []
    for report in reports:
        for name, lines in report.files.items():
            rel = _match_path(name, report.source_roots, root)
            if rel is None:
                unmatched.append(name)
                continue
            executable.setdefault(rel, set()).update(lines.executable)
            covered.setdefault(rel, set()).update(lines.covered)
    files = {
        rel: FileCoverage(frozenset(lines), frozenset(covered[rel]))
        for rel, lines in sorted(executable.items())
    }
    return MappedCoverage(files, sorted(set(unmatched)))


def _match_path(name: str, source_roots: tuple[str, ...], root: Path) -> str | None:
    candidates = [Path(name)]
    candidates += [Path(source) / name for source in source_roots]
    for candidate in candidates:
        full = candidate if candidate.is_absolute() else root / candidate
        try:
            resolved = full.resolve()
            rel = resolved.relative_to(root)
        except (OSError, ValueError):
            continue
        if resolved.is_file():
            return PurePosixPath(rel).as_posix()
    return None


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ConfigError(f"cannot be read: {exc.strerror}", path=str(path)) from exc


def _detect_xml(path: Path) -> str:
    root = _parse_xml(path)
    if root.tag == "coverage":
        return COBERTURA
    if root.tag in ("testsuites", "testsuite"):
        return JUNIT
    raise ConfigError(
        f"XML with root element <{root.tag}> is neither Cobertura nor JUnit",
        path=str(path),
    )


def _parse_xml(path: Path) -> ET.Element:
    """Parse an XML report with defusedxml, which rejects entity declarations."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot be read: {exc.strerror}", path=str(path)) from exc
    try:
        return SafeET.fromstring(data)
    except ET.ParseError as exc:
        line = exc.position[0] if exc.position else None
        raise ConfigError(f"invalid XML: {exc}", path=str(path), line=line) from exc
    except DefusedXmlException as exc:
        raise ConfigError(
            f"XML with entity or DTD declarations is not accepted: {exc}",
            path=str(path),
            hint="write the report without a DOCTYPE or entity declarations",
        ) from exc


def _line_numbers(values: object) -> frozenset[int]:
    if not isinstance(values, list) or not all(
        isinstance(value, int) and value > 0 for value in values
    ):
        raise ValueError("line numbers must be a list of positive integers")
    return frozenset(values)


def _class_lines(path: Path, cls: ET.Element) -> list[tuple[int, int]]:
    result = []
    lines = cls.find("lines")
    for line in lines.iter("line") if lines is not None else ():
        try:
            number = int(line.get("number", ""))
            hits = int(line.get("hits", ""))
        except ValueError as exc:
            raise ConfigError(
                f"<line> in {cls.get('filename')!r} has an invalid number or hits: "
                f"{line.attrib}",
                path=str(path),
            ) from exc
        result.append((number, hits))
    return result


def _lcov_line(path: Path, number: int, value: str) -> tuple[int, int]:
    parts = value.split(",")
    try:
        line_number, hits = int(parts[0]), int(parts[1])
    except (IndexError, ValueError) as exc:
        raise ConfigError(
            f"invalid DA record {value[:80]!r}: expected LINE,HITS",
            path=str(path),
            line=number,
        ) from exc
    if line_number < 1:
        raise ConfigError(
            f"invalid line number {line_number} in DA record",
            path=str(path),
            line=number,
        )
    return line_number, hits


def _test_case(case: ET.Element) -> TestCase:
    outcome = "passed"
    message = ""
    for tag in ("failure", "error", "skipped"):
        child = case.find(tag)
        if child is not None:
            outcome = {"failure": "failed", "error": "error"}.get(tag, "skipped")
            message = _first_line(child.get("message") or child.text or "")
            break
    return TestCase(
        classname=case.get("classname", ""),
        name=case.get("name", ""),
        outcome=outcome,
        message=message,
        file=case.get("file") or None,
    )


def _first_line(text: str) -> str:
    stripped = text.strip()
    return stripped.splitlines()[0].strip() if stripped else ""
