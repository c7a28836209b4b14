"""Reading of SARIF 2.1.0 logs (semgrep, CodeQL, eslint, bandit) into SAST findings.

The constants name the parts of the format that DAW reads, so that a SARIF writer
can use the same names. Every problem in a log raises SarifError with the JSON
path of the offending value, such as ``runs[0].results[3]: missing 'message'``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, TypeGuard
from urllib.parse import unquote, urlparse

from daw.errors import ConfigError
from daw.models import Finding, fingerprint, normalise_snippet
from daw.redact import redact

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
SECURITY_SEVERITY_PROPERTY = "security-severity"

# The SARIF 2.1.0 levels, and the level a result has when neither it nor its
# rule's defaultConfiguration sets one.
LEVELS = ("none", "note", "warning", "error")
DEFAULT_LEVEL = "warning"

# Result kinds that mean the code passed or the rule did not apply. They are not
# problems, so they give no finding. A result without ``kind`` is a "fail".
NON_FAILURE_KINDS = frozenset({"pass", "notApplicable"})

LEVEL_SEVERITY = {"error": "high", "warning": "medium", "note": "low", "none": "low"}

# Maximum number of uriBaseId references followed in one chain.
_MAX_BASE_DEPTH = 8

# A quoted value after a secret-like word and ":" or "=", as in bandit's
# "Possible hardcoded password: 'hunter2'".
_QUOTED_SECRET = re.compile(
    r"(?i)(?P<lead>(?:password|passwd|secret|token|api[_-]?key|access[_-]?key)"
    r"[^'\"\n]{0,40}?[:=]\s*)(?P<quote>['\"])[^'\"\n]*(?P=quote)"
)

LineReader = Callable[[str, int], "str | None"]


class SarifError(ConfigError):
    """A SARIF file is missing, is not JSON, or breaks the SARIF 2.1.0 format.

    ``json_path`` is where in the document the problem is, or None when the file
    could not be read or parsed at all.
    """

    def __init__(
        self, message: str, *, path: str, json_path: str | None = None
    ) -> None:
        text = f"{json_path}: {message}" if json_path else message
        super().__init__(text, path=path)
        self.json_path = json_path


@dataclass
class SarifLog:
    """Findings, tools and counts read from SARIF files.

    ``tools`` lists (driver name, version) for each run, with "" for an unknown
    version. ``suppressed`` counts results with a suppression in effect,
    ``not_failures`` results whose kind is "pass" or "notApplicable", and
    ``error_notifications`` tool notifications of level "error" (such as files
    the tool could not parse).
    """

    findings: list[Finding] = field(default_factory=list)
    tools: list[tuple[str, str]] = field(default_factory=list)
    suppressed: int = 0
    not_failures: int = 0
    error_notifications: int = 0


def score_severity(score: float) -> str:
    """Return the default severity for a ``security-severity`` score (0 to 10)."""
    if score >= 9.0:
        return "critical"
    if score >= 7.0:
        return "high"
    if score >= 4.0:
        return "medium"
    return "low"


def level_severity(level: str) -> str:
    """Return the default severity for a SARIF level, used when no score is given."""
    return LEVEL_SEVERITY.get(level, "low")


def scrub_message(text: str) -> str:
    """Return a tool's message with quoted secret values and URL passwords masked.

    NOTE: this masks ``password: 'value'`` and the patterns of daw.redact only.
    A tool that puts a secret into its message in another form is not caught.
    """
    masked = _QUOTED_SECRET.sub(r"\g<lead>\g<quote>***\g<quote>", text)
    return redact(masked)


def read_sarif(path: Path, repo_root: Path, line_reader: LineReader) -> SarifLog:
    """Read the SARIF file at ``path`` and return its findings and tools.

    Result paths are made relative to ``repo_root``. ``line_reader(path, line)``
    returns the text of a flagged line, or None when the file cannot be read; it
    feeds the fingerprint. Raises SarifError when the file is missing, is not
    JSON or breaks the format.
    """
    document = _load_json(path)
    return parse_sarif(document, str(path), repo_root, line_reader)


def parse_sarif(
    document: Any, source: str, repo_root: Path, line_reader: LineReader
) -> SarifLog:
    """Return the findings and tools of a decoded SARIF document.

    ``source`` names the document in errors. Raises SarifError as read_sarif does.
    """
    checker = _Checker(source)
    log = checker.object(document, "$")
    _check_version(checker, log)
    runs = checker.list(log.get("runs"), "runs", required=True)

    result = SarifLog()
    for index, run in enumerate(runs):
        reader = _RunReader(checker, repo_root, line_reader, run, f"runs[{index}]")
        reader.read(result)
    return result


def _load_json(path: Path) -> Any:
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise SarifError("SARIF file not found", path=str(path)) from exc
    except IsADirectoryError as exc:
        raise SarifError("is a directory, not a SARIF file", path=str(path)) from exc
    except OSError as exc:
        raise SarifError(f"could not be read: {exc}", path=str(path)) from exc

    try:
        return json.loads(data)
    except UnicodeDecodeError as exc:
        raise SarifError(f"is not UTF-8 text: {exc}", path=str(path)) from exc
    except json.JSONDecodeError as exc:
        raise SarifError(
            f"is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            path=str(path),
        ) from exc


def _check_version(checker: _Checker, log: dict[str, Any]) -> None:
    if "version" not in log:
        raise checker.fail("$", "missing 'version'")
    if log["version"] != SARIF_VERSION:
        raise checker.fail(
            "version",
            f"expected {SARIF_VERSION!r}, found {log['version']!r}: "
            "export the log as SARIF 2.1.0",
        )


class _Checker:
    """Type checks on JSON values that raise SarifError naming the file and path."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, json_path: str, message: str) -> SarifError:
        return SarifError(message, path=self.source, json_path=json_path)

    def object(self, value: Any, json_path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(json_path, f"expected an object, found {_kind(value)}")
        return value

    def list(self, value: Any, json_path: str, *, required: bool = False) -> list[Any]:
        """Return ``value`` as a list. Absent or null is [] unless ``required``."""
        if value is None:
            if required:
                parent, _, name = json_path.rpartition(".")
                raise self.fail(parent or "$", f"missing {name!r}")
            return []
        if not isinstance(value, list):
            raise self.fail(json_path, f"expected a list, found {_kind(value)}")
        return value

    def string(self, value: Any, json_path: str) -> str:
        if not isinstance(value, str):
            raise self.fail(json_path, f"expected a string, found {_kind(value)}")
        return value

    def number(self, value: Any, json_path: str) -> float:
        """Return a number or numeric string (``"8.8"``) as a finite float."""
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if isinstance(value, bool) or not math.isfinite(number):
            raise self.fail(json_path, f"expected a number, found {value!r}")
        return number

    def level(self, value: Any, json_path: str) -> str:
        if value not in LEVELS:
            raise self.fail(
                json_path, f"expected one of {', '.join(LEVELS)}, found {value!r}"
            )
        return str(value)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    return type(value).__name__


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _is_index(value: Any, length: int) -> TypeGuard[int]:
    return (
        isinstance(value, int) and not isinstance(value, bool) and 0 <= value < length
    )


class _RunReader:
    """Reader of one ``runs[]`` entry: its tool, rules, base URIs and results."""

    def __init__(
        self,
        checker: _Checker,
        repo_root: Path,
        line_reader: LineReader,
        run: Any,
        json_path: str,
    ) -> None:
        self.check = checker
        self.repo_root = repo_root
        self.line_reader = line_reader
        self.path = json_path
        self.run = checker.object(run, json_path)
        self.driver = self._driver()
        self.components = self._components()

    def read(self, into: SarifLog) -> None:
        """Append this run's tool, findings and counts to ``into``."""
        name_path = f"{self.path}.tool.driver.name"
        name = self.check.string(self.driver["name"], name_path)
        version = self.driver.get("version") or self.driver.get("semanticVersion")
        into.tools.append((name, str(version or "")))

        self._check_invocations(into)
        results_path = f"{self.path}.results"
        results = self.check.list(self.run.get("results"), results_path, required=True)
        for index, raw in enumerate(results):
            result_path = f"{results_path}[{index}]"
            result = self.check.object(raw, result_path)
            self._read_result(name, result, result_path, into)

    def _driver(self) -> dict[str, Any]:
        tool_path = f"{self.path}.tool"
        if "tool" not in self.run:
            raise self.check.fail(self.path, "missing 'tool'")
        tool = self.check.object(self.run["tool"], tool_path)
        if "driver" not in tool:
            raise self.check.fail(tool_path, "missing 'driver'")
        driver = self.check.object(tool["driver"], f"{tool_path}.driver")
        if "name" not in driver:
            raise self.check.fail(f"{tool_path}.driver", "missing 'name'")
        return driver

    def _components(self) -> list[tuple[dict[str, Any], str]]:
        """Return the driver, then each of ``tool.extensions``, with JSON paths.

        The list index of extension ``i`` is ``i + 1``, so that a result's
        ``rule.toolComponent.index`` maps to one entry.
        """
        components = [(self.driver, f"{self.path}.tool.driver")]
        extensions_path = f"{self.path}.tool.extensions"
        extensions = self.check.list(
            self.run["tool"].get("extensions"), extensions_path
        )
        for index, extension in enumerate(extensions):
            components.append((_mapping(extension), f"{extensions_path}[{index}]"))
        return components

    def _check_invocations(self, into: SarifLog) -> None:
        """Reject a run whose execution failed, and count error notifications.

        A run with ``executionSuccessful: false`` may have incomplete results, so
        they must not count as a measurement.
        """
        invocations_path = f"{self.path}.invocations"
        invocations = self.check.list(self.run.get("invocations"), invocations_path)
        for index, raw in enumerate(invocations):
            invocation_path = f"{invocations_path}[{index}]"
            invocation = self.check.object(raw, invocation_path)
            if invocation.get("executionSuccessful") is False:
                raise self.check.fail(
                    invocation_path,
                    "executionSuccessful is false: the tool reported that its run "
                    "failed, so its results may be incomplete",
                )
            for key in ("toolExecutionNotifications", "toolConfigurationNotifications"):
                notes_path = f"{invocation_path}.{key}"
                notes = self.check.list(invocation.get(key), notes_path)
                into.error_notifications += sum(
                    1 for note in notes if _mapping(note).get("level") == "error"
                )

    def _read_result(
        self, tool: str, result: dict[str, Any], json_path: str, into: SarifLog
    ) -> None:
        if result.get("kind", "fail") in NON_FAILURE_KINDS:
            into.not_failures += 1
            return
        if self._is_suppressed(result, json_path):
            into.suppressed += 1
            return

        rule, rule_path = self._rule(result)
        rule_id = _rule_id(result, rule)
        message = self._message(result, rule, json_path)
        level = self._level(result, rule, json_path, rule_path)
        score = self._score(result, rule, json_path, rule_path)
        path, line = self._location(result, json_path)
        severity = level_severity(level) if score is None else score_severity(score)
        into.findings.append(
            Finding(
                category="sast",
                tool=tool,
                rule_id=rule_id,
                message=scrub_message(message),
                path=path,
                line=line,
                severity=severity,
                tool_severity=level,
                tool_confidence=_precision(rule),
                score=score,
                fingerprint=self._fingerprint(
                    tool, rule_id, path, line, result, message
                ),
            )
        )

    def _is_suppressed(self, result: dict[str, Any], json_path: str) -> bool:
        """Return whether a suppression is in effect: ``status`` absent or accepted.

        Suppressions with status "underReview" or "rejected" are not in effect.
        """
        suppressions_path = f"{json_path}.suppressions"
        suppressions = self.check.list(result.get("suppressions"), suppressions_path)
        return any(
            isinstance(item, dict) and item.get("status", "accepted") == "accepted"
            for item in suppressions
        )

    def _rule(self, result: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
        """Return the rule a result refers to and its JSON path, or (None, "").

        The rule is found by ``rule.toolComponent.index`` and ``rule.index`` (how
        CodeQL points into ``tool.extensions``), then ``ruleIndex``, then by id.
        """
        reference = _mapping(result.get("rule"))
        position = _mapping(reference.get("toolComponent")).get("index")
        chosen = position + 1 if _is_index(position, len(self.components) - 1) else 0
        component, component_path = self.components[chosen]

        rules = self._rules(component, component_path)
        for index in (reference.get("index"), result.get("ruleIndex")):
            if _is_index(index, len(rules)) and isinstance(rules[index], dict):
                return rules[index], f"{component_path}.rules[{index}]"
        return self._rule_by_id(result.get("ruleId") or reference.get("id"))

    def _rule_by_id(self, rule_id: Any) -> tuple[dict[str, Any] | None, str]:
        if not isinstance(rule_id, str):
            return None, ""
        for component, component_path in self.components:
            for index, rule in enumerate(self._rules(component, component_path)):
                if isinstance(rule, dict) and rule.get("id") == rule_id:
                    return rule, f"{component_path}.rules[{index}]"
        return None, ""

    def _rules(self, component: dict[str, Any], json_path: str) -> list[Any]:
        return self.check.list(component.get("rules"), f"{json_path}.rules")

    def _message(
        self, result: dict[str, Any], rule: dict[str, Any] | None, json_path: str
    ) -> str:
        """Return the result's message text, looking up ``message.id`` in the rule."""
        if "message" not in result:
            raise self.check.fail(json_path, "missing 'message'")
        message_path = f"{json_path}.message"
        message = self.check.object(result["message"], message_path)
        if "text" in message:
            return self.check.string(message["text"], f"{message_path}.text")

        strings = _mapping(_mapping(rule).get("messageStrings"))
        message_id = message.get("id")
        entry = strings.get(message_id) if isinstance(message_id, str) else None
        text = _mapping(entry).get("text")
        if isinstance(text, str):
            return text
        raise self.check.fail(
            message_path,
            "missing 'text', and 'id' matches no messageStrings entry of the rule",
        )

    def _level(
        self,
        result: dict[str, Any],
        rule: dict[str, Any] | None,
        json_path: str,
        rule_path: str,
    ) -> str:
        if "level" in result:
            return self.check.level(result["level"], f"{json_path}.level")
        configuration = _mapping(_mapping(rule).get("defaultConfiguration"))
        if "level" in configuration:
            level_path = f"{rule_path}.defaultConfiguration.level"
            return self.check.level(configuration["level"], level_path)
        return DEFAULT_LEVEL

    def _score(
        self,
        result: dict[str, Any],
        rule: dict[str, Any] | None,
        json_path: str,
        rule_path: str,
    ) -> float | None:
        """Return ``security-severity`` from the result, else from its rule."""
        for owner, owner_path in ((result, json_path), (_mapping(rule), rule_path)):
            properties = _mapping(owner.get("properties"))
            if SECURITY_SEVERITY_PROPERTY in properties:
                value_path = f"{owner_path}.properties.{SECURITY_SEVERITY_PROPERTY}"
                value = properties[SECURITY_SEVERITY_PROPERTY]
                return self.check.number(value, value_path)
        return None

    def _location(
        self, result: dict[str, Any], json_path: str
    ) -> tuple[str | None, int | None]:
        """Return the repository-relative path and start line of the first location."""
        locations_path = f"{json_path}.locations"
        locations = self.check.list(result.get("locations"), locations_path)
        first = _mapping(locations[0]) if locations else {}
        physical = _mapping(first.get("physicalLocation"))
        uri = _artifact_uri(self.run, _mapping(physical.get("artifactLocation")))
        path = _relative_to(self.repo_root, uri) if uri else None

        line = _mapping(physical.get("region")).get("startLine")
        valid = isinstance(line, int) and not isinstance(line, bool) and line > 0
        return path, line if valid else None

    def _fingerprint(
        self,
        tool: str,
        rule_id: str,
        path: str | None,
        line: int | None,
        result: dict[str, Any],
        message: str,
    ) -> str:
        """Return an id from the result's partialFingerprints, else its flagged line.

        Without partial fingerprints the normalised text of the flagged line is
        hashed, or the message when the line cannot be read; never the line number.
        """
        partial = _mapping(result.get("partialFingerprints"))
        if partial:
            pairs = [f"{key}={partial[key]}" for key in sorted(partial)]
            return fingerprint(tool, rule_id, path, *pairs)
        text = self.line_reader(path, line) if path and line else None
        snippet = normalise_snippet(message if text is None else text)
        return fingerprint(tool, rule_id, path, snippet)


def _rule_id(result: dict[str, Any], rule: dict[str, Any] | None) -> str:
    reference = _mapping(result.get("rule"))
    for candidate in (
        result.get("ruleId"),
        reference.get("id"),
        _mapping(rule).get("id"),
    ):
        if isinstance(candidate, str) and candidate:
            return candidate
    return "unknown"


def _precision(rule: dict[str, Any] | None) -> str | None:
    """Return the rule's ``precision`` property (CodeQL: very-high to low), if any."""
    precision = _mapping(_mapping(rule).get("properties")).get("precision")
    return precision if isinstance(precision, str) else None


def _artifact_uri(run: dict[str, Any], artifact: dict[str, Any]) -> str | None:
    """Return an artifact location's URI joined to its chain of uriBaseIds.

    A location given only by ``index`` is looked up in ``run.artifacts``. A base
    id the log does not define (CodeQL's ``%SRCROOT%``) is taken to be the
    repository root, so the URI stays relative.
    """
    uri, base_id = artifact.get("uri"), artifact.get("uriBaseId")
    artifacts = run.get("artifacts")
    index = artifact.get("index")
    if uri is None and isinstance(artifacts, list) and _is_index(index, len(artifacts)):
        location = _mapping(_mapping(artifacts[index]).get("location"))
        uri, base_id = location.get("uri"), location.get("uriBaseId")
    if not isinstance(uri, str) or not uri:
        return None

    bases = _mapping(run.get("originalUriBaseIds"))
    for _ in range(_MAX_BASE_DEPTH):
        if _is_absolute_uri(uri) or not isinstance(base_id, str):
            break
        base = _mapping(bases.get(base_id))
        prefix = base.get("uri")
        if not isinstance(prefix, str):
            break
        uri = prefix + uri if prefix.endswith("/") else f"{prefix}/{uri}"
        base_id = base.get("uriBaseId")
    return uri


def _is_absolute_uri(uri: str) -> bool:
    return bool(urlparse(uri).scheme) or uri.startswith("/")


def _relative_to(repo_root: Path, uri: str) -> str:
    """Return a result URI as a path relative to ``repo_root`` with forward slashes.

    A ``file:`` URI or absolute path outside the repository is returned as an
    absolute path, and a URI of another scheme is returned unchanged.
    """
    parsed = urlparse(uri)
    if parsed.scheme and parsed.scheme != "file":
        return uri
    raw = unquote(parsed.path if parsed.scheme else uri)
    if not raw.startswith("/"):
        return PurePosixPath(raw).as_posix().removeprefix("./")

    absolute = Path(raw)
    for base in (repo_root, repo_root.resolve()):
        try:
            return absolute.relative_to(base).as_posix()
        except ValueError:
            continue
    return absolute.as_posix()
