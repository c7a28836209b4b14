"""TypeScript strictness probe: resolve each tsconfig's extends chain, check strict.

The probe reads the files itself and runs no tool. A tsconfig is strict when the
resolved ``compilerOptions`` has ``strict: true`` and no strict-family flag is
switched off. A tsconfig that cannot be resolved is reported as not strict.
"""

from __future__ import annotations

import bisect
import json
import logging
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

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
    files_with_suffix,
    not_applicable,
)

log = logging.getLogger(__name__)

TOOL = "tsconfig"
# Part of the cache key: bump it when the resolution or the strictness rules change.
RESOLVER_VERSION = "1"
STRICT_FAMILY = (
    "noImplicitAny",
    "strictNullChecks",
    "strictFunctionTypes",
    "strictBindCallApply",
    "strictPropertyInitialization",
    "noImplicitThis",
    "alwaysStrict",
    "useUnknownInCatchVariables",
    "strictBuiltinIteratorReturn",
)
VENDORED_FOLDERS = ("vendor/", "third_party/", "bower_components/", "jspm_packages/")
_TSCONFIG_NAME = re.compile(r"^tsconfig.*\.json$")
# Conditions tried in a package.json "exports" entry, most specific first.
_EXPORT_CONDITIONS = ("types", "require", "import", "node", "default")


class JsoncError(ValueError):
    """Text that is not JSON even after comments and trailing commas are removed."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


def strip_jsonc(text: str) -> str:
    """Return ``text`` with comments and trailing commas replaced by spaces.

    ``//`` and ``/* */`` comments are removed only outside strings, so a URL in a
    string survives. Line breaks are kept, so line numbers stay valid. Raises
    JsoncError for an unterminated block comment.
    """
    chars = list(text)
    _blank_comments(chars)
    _blank_trailing_commas(chars)
    return "".join(chars)


def _skip_string(chars: Sequence[str], start: int) -> int:
    """Return the index just past the JSON string that starts at ``start``."""
    i = start + 1
    while i < len(chars) and chars[i] != '"':
        i += 2 if chars[i] == "\\" else 1
    return i + 1


def _blank_comments(chars: list[str]) -> None:
    i = 0
    while i < len(chars):
        pair = "".join(chars[i : i + 2])
        if chars[i] == '"':
            i = _skip_string(chars, i)
        elif pair == "//":
            while i < len(chars) and chars[i] not in "\r\n":
                chars[i] = " "
                i += 1
        elif pair == "/*":
            end = "".join(chars).find("*/", i + 2)
            if end < 0:
                line = "".join(chars[:i]).count("\n") + 1
                raise JsoncError(f"unterminated /* comment at line {line}", line)
            for j in range(i, end + 2):
                if chars[j] not in "\r\n":
                    chars[j] = " "
            i = end + 2
        else:
            i += 1


def _blank_trailing_commas(chars: list[str]) -> None:
    """Blank each comma that closes a non-empty list, so "{,}" stays invalid."""
    previous = ""
    i = 0
    while i < len(chars):
        char = chars[i]
        if char == '"':
            i = _skip_string(chars, i)
            previous = '"'
            continue
        if char == "," and previous not in ("{", "[", ","):
            j = i + 1
            while j < len(chars) and chars[j].isspace():
                j += 1
            if j < len(chars) and chars[j] in "}]":
                chars[i] = " "
        if not char.isspace():
            previous = char
        i += 1


def parse_jsonc(text: str) -> Any:
    """Parse JSON with comments and trailing commas, as tsconfig files allow.

    An empty document is an empty object. Raises JsoncError with the line of the
    first syntax error.
    """
    stripped = strip_jsonc(text.removeprefix("\ufeff"))
    if not stripped.strip():
        return {}
    try:
        return json.loads(stripped)
    except json.JSONDecodeError as exc:
        raise JsoncError(
            f"{exc.msg} at line {exc.lineno} column {exc.colno}", exc.lineno
        ) from exc


def key_lines(text: str) -> dict[tuple[str, ...], int]:
    """Return the 1-based line of each object key, by its path of keys.

    Array elements appear as ``"[]"`` in a path. ``text`` must be valid JSON once
    passed through strip_jsonc.
    """
    stripped = strip_jsonc(text.removeprefix("\ufeff"))
    breaks = [i for i, char in enumerate(stripped) if char == "\n"]
    lines: dict[tuple[str, ...], int] = {}
    paths: list[tuple[str, ...]] = []
    kinds: list[str] = []
    last_key = ""
    i = 0
    while i < len(stripped):
        char = stripped[i]
        if char == '"':
            end = _skip_string(stripped, i)
            rest = stripped[end:].lstrip()
            if kinds and kinds[-1] == "{" and rest.startswith(":"):
                last_key = json.loads(stripped[i:end])
                lines[(*paths[-1], last_key)] = bisect.bisect_left(breaks, i) + 1
            i = end
            continue
        if char in "{[":
            segment = last_key if kinds and kinds[-1] == "{" else "[]"
            paths.append((*paths[-1], segment) if paths else ())
            kinds.append(char)
        elif char in "}]" and kinds:
            paths.pop()
            kinds.pop()
        i += 1
    return lines


def _normal(path: Path) -> Path:
    return Path(os.path.normpath(path))


@dataclass(frozen=True)
class Origin:
    """The value of one compiler option, with the file and line that set it."""

    value: Any
    name: str
    file: Path
    line: int | None


@dataclass(frozen=True)
class ConfigFile:
    """One parsed tsconfig file and the lines of its keys."""

    path: Path
    data: dict[str, Any]
    lines: dict[tuple[str, ...], int]


class ResolveError(Exception):
    """A tsconfig in an extends chain cannot be read, parsed or found.

    ``file`` is the file where the problem is and ``line`` its line there.
    """

    def __init__(
        self, rule_id: str, message: str, file: Path, line: int | None
    ) -> None:
        super().__init__(message)
        self.rule_id = rule_id
        self.message = message
        self.file = file
        self.line = line


class Resolver:
    """Resolver of tsconfig extends chains under ``scan_root``.

    At the commit stage ``scan_root`` is an export of the git index without
    node_modules, so package lookups also try the same folders under
    ``repo_root``. ``consulted`` records every path looked at, for the cache key.
    """

    def __init__(self, scan_root: Path, repo_root: Path) -> None:
        self.scan_root = scan_root
        self.repo_root = repo_root
        self.consulted: set[Path] = set()
        self._parsed: dict[Path, ConfigFile] = {}

    def display(self, path: Path) -> str:
        """Return ``path`` relative to the scan root or the repository, with slashes."""
        for root in (self.scan_root, self.repo_root):
            try:
                return path.relative_to(root).as_posix()
            except ValueError:
                continue
        return path.as_posix()

    def consulted_names(self) -> list[str]:
        """Return the consulted paths as digest_files takes them under the scan root.

        Paths under the scan root are relative and the others absolute.
        """
        names = []
        for path in self.consulted:
            if path.is_relative_to(self.scan_root):
                names.append(path.relative_to(self.scan_root).as_posix())
            else:
                names.append(str(path))
        return sorted(names)

    def options(self, path: Path, chain: tuple[Path, ...] = ()) -> dict[str, Origin]:
        """Return the compiler options of ``path`` merged over its extends chain.

        Option names are case-sensitive, as in tsc. Raises ResolveError.
        """
        if path in chain:
            names = " -> ".join(self.display(p) for p in (*chain, path))
            first = chain[-1]
            line = self.load(first).lines.get(("extends",))
            raise ResolveError("extends-cycle", f"extends cycle: {names}", first, line)

        config = self.load(path)
        merged: dict[str, Origin] = {}
        for spec in self._extends(config):
            target = self.locate(spec, path.parent)
            if target is None:
                line = config.lines.get(("extends",))
                message = (
                    f"extends target {spec!r} in {self.display(path)} was not found"
                )
                raise ResolveError("extends-not-found", message, path, line)
            merged.update(self.options(_normal(target), (*chain, path)))

        for name, value in self._compiler_options(config).items():
            line = config.lines.get(("compilerOptions", name))
            merged[name] = Origin(value, name, path, line)
        return merged

    def load(self, path: Path) -> ConfigFile:
        """Read and parse one tsconfig file; raises ResolveError."""
        cached = self._parsed.get(path)
        if cached is not None:
            return cached
        self.consulted.add(path)
        display_name = self.display(path)
        try:
            text = path.read_bytes().decode("utf-8")
        except OSError as exc:
            raise ResolveError(
                "invalid-tsconfig",
                f"{display_name} cannot be read: {exc.strerror}",
                path,
                None,
            ) from exc
        except UnicodeDecodeError as exc:
            raise ResolveError(
                "invalid-tsconfig",
                f"{display_name} is not valid UTF-8: {exc.reason} at byte {exc.start}",
                path,
                None,
            ) from exc
        try:
            data = parse_jsonc(text)
        except JsoncError as exc:
            raise ResolveError(
                "invalid-tsconfig",
                f"{display_name} is not valid JSON: {exc}",
                path,
                exc.line,
            ) from exc
        if not isinstance(data, dict):
            raise ResolveError(
                "invalid-tsconfig",
                f"{display_name} must contain a JSON object",
                path,
                1,
            )
        config = ConfigFile(path, data, key_lines(text))
        self._parsed[path] = config
        return config

    def _extends(self, config: ConfigFile) -> list[str]:
        value = config.data.get("extends")
        if value is None:
            return []
        if isinstance(value, str):
            return [value]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return list(value)
        display_name = self.display(config.path)
        message = f"extends in {display_name} must be a string or an array of strings"
        raise ResolveError(
            "invalid-tsconfig", message, config.path, config.lines.get(("extends",))
        )

    def _compiler_options(self, config: ConfigFile) -> dict[str, Any]:
        value = config.data.get("compilerOptions", {})
        if isinstance(value, dict):
            return value
        message = f"compilerOptions in {self.display(config.path)} must be an object"
        line = config.lines.get(("compilerOptions",))
        raise ResolveError("invalid-tsconfig", message, config.path, line)

    def locate(self, spec: str, folder: Path) -> Path | None:
        """Return the file an ``extends`` value names, looked up from ``folder``."""
        if not spec:
            return None
        if spec.startswith(("./", "../", "/")) or spec in (".", ".."):
            return self._with_json_suffix(folder / spec)
        parts = PurePosixPath(spec).parts
        count = 2 if spec.startswith("@") else 1
        if len(parts) < count:
            return None
        package = "/".join(parts[:count])
        subpath = "/".join(parts[count:])
        for modules in self._node_modules_folders(folder):
            found = self._locate_in_package(modules / package, subpath)
            if found is not None:
                return found
        return None

    def _is_file(self, path: Path) -> bool:
        self.consulted.add(path)
        return path.is_file()

    def _with_json_suffix(self, path: Path) -> Path | None:
        if self._is_file(path):
            return path
        if path.suffix != ".json" and self._is_file(
            path.with_name(path.name + ".json")
        ):
            return path.with_name(path.name + ".json")
        return None

    def _node_modules_folders(self, folder: Path) -> list[Path]:
        """Return the node_modules folders to search from ``folder``, nearest first."""
        roots = [self.scan_root]
        if self.repo_root != self.scan_root:
            roots.append(self.repo_root)
        relative = None
        for root in roots:
            try:
                relative = folder.relative_to(root)
                break
            except ValueError:
                continue
        if relative is None:
            return []
        found: list[Path] = []
        for level in (relative, *relative.parents):
            if level.name == "node_modules":
                continue
            found.extend(root / level / "node_modules" for root in roots)
        return found

    def _locate_in_package(self, package: Path, subpath: str) -> Path | None:
        manifest_path = package / "package.json"
        if not self._is_file(manifest_path) and not package.is_dir():
            return None
        manifest = _read_manifest(manifest_path)
        if manifest.get("exports") is not None:
            # As in tsc 5, a package with "exports" offers only what it exports.
            key = f"./{subpath}" if subpath else "."
            exported = _export_target(manifest["exports"], key)
            if exported is not None and self._is_file(package / exported):
                return package / exported
            return None
        if not subpath:
            field = manifest.get("tsconfig")
            if isinstance(field, str):
                found = self._with_json_suffix(package / field)
                if found is not None:
                    return found
            return (
                package / "tsconfig.json"
                if self._is_file(package / "tsconfig.json")
                else None
            )
        found = self._with_json_suffix(package / subpath)
        if found is not None:
            return found
        nested = package / subpath / "tsconfig.json"
        return nested if self._is_file(nested) else None


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _export_target(exports: Any, key: str) -> str | None:
    """Return the file a package.json ``exports`` field maps ``key`` to, or None."""
    if exports is None:
        return None
    if isinstance(exports, dict) and any(k.startswith(".") for k in exports):
        if key in exports:
            return _condition_target(exports[key])
        for pattern, target in exports.items():
            prefix, star, suffix = pattern.partition("*")
            if (
                star
                and key.startswith(prefix)
                and key.endswith(suffix)
                and len(key) >= len(prefix) + len(suffix)
            ):
                matched = key[len(prefix) : len(key) - len(suffix)]
                resolved = _condition_target(target)
                return resolved.replace("*", matched) if resolved else None
        return None
    return _condition_target(exports) if key == "." else None


def _condition_target(entry: Any) -> str | None:
    if isinstance(entry, str):
        return entry
    if isinstance(entry, list):
        for item in entry:
            found = _condition_target(item)
            if found is not None:
                return found
        return None
    if isinstance(entry, dict):
        for condition in _EXPORT_CONDITIONS:
            if condition in entry:
                found = _condition_target(entry[condition])
                if found is not None:
                    return found
    return None


@dataclass(frozen=True)
class Cause:
    """One reason a tsconfig is not strict.

    ``text`` has no line number, so that it can go into a fingerprint.
    """

    text: str
    origin: Origin | None


class TsconfigProbe:
    """Check that every in-scope tsconfig*.json resolves to strict compiler options.

    Each tsconfig that is not strict, or cannot be resolved, is one ``tsconfig``
    finding of severity ``high`` that names the cause.
    """

    name = "tsconfig"
    metrics = ("tsconfig",)

    def cache_key(self, ctx: ProbeContext) -> str | None:
        """Return a digest of every file the extends chains read or looked for."""
        tsconfigs = tsconfig_files(ctx)
        if not tsconfigs:
            return None
        resolver = _resolver(ctx)
        for rel in tsconfigs:
            try:
                resolver.options(_normal(resolver.scan_root / rel))
            except ResolveError:
                continue
        return _digest(resolver, tsconfigs)

    def run(self, ctx: ProbeContext) -> ProbeResult:
        """Resolve each tsconfig and return the ``tsconfig`` count and its findings."""
        started = time.monotonic()
        tsconfigs = tsconfig_files(ctx)
        if not tsconfigs:
            measurement = not_applicable("tsconfig", TOOL, "no tsconfig*.json in scope")
            return ProbeResult(probe=self.name, measurements=[measurement])

        resolver = _resolver(ctx)
        findings = []
        for rel in tsconfigs:
            finding = check_tsconfig(resolver, rel)
            if finding is not None:
                findings.append(finding)
        findings = disambiguate(findings)

        measurement = Measurement(
            metric="tsconfig",
            value=float(len(findings)),
            unit="findings",
            tool=TOOL,
            tool_version=RESOLVER_VERSION,
            inputs_digest=_digest(resolver, tsconfigs),
            details={"files": len(tsconfigs)},
        )
        return ProbeResult(
            probe=self.name,
            measurements=[measurement],
            findings=findings,
            duration_s=time.monotonic() - started,
        )


def tsconfig_files(ctx: ProbeContext) -> list[str]:
    """Return the in-scope tsconfig*.json paths outside vendored folders."""
    return [
        rel
        for rel in files_with_suffix(ctx, ".json")
        if _TSCONFIG_NAME.match(PurePosixPath(rel).name)
        and not any(f"/{folder}" in f"/{rel}" for folder in VENDORED_FOLDERS)
    ]


def _digest(resolver: Resolver, tsconfigs: list[str]) -> str:
    names = [*tsconfigs, *resolver.consulted_names()]
    return digest_files(resolver.scan_root, names, TOOL, RESOLVER_VERSION)


def _resolver(ctx: ProbeContext) -> Resolver:
    return Resolver(
        _normal(ctx.scan_root.absolute()), _normal(ctx.repo_root.absolute())
    )


def check_tsconfig(resolver: Resolver, rel: str) -> Finding | None:
    """Return the finding for the tsconfig at ``rel``, or None when it is strict."""
    path = _normal(resolver.scan_root / rel)
    sources = SourceLines(resolver.scan_root)
    try:
        options = resolver.options(path)
    except ResolveError as exc:
        log.info("%s cannot be resolved: %s", rel, exc.message)
        line = exc.line if exc.file == path else _extends_line(resolver, path)
        snippet = normalise_snippet(sources.line(rel, line) or "")
        return _finding(
            exc.rule_id, exc.message, rel, line, f"{exc.message}\x1f{snippet}"
        )

    causes = strictness_causes(resolver, options)
    if not causes:
        return None
    line = _cause_line(resolver, path, causes)
    message = " and ".join(_describe(cause) for cause in causes)
    texts = "\x1f".join(cause.text for cause in causes)
    snippet = normalise_snippet(sources.line(rel, line) or "")
    return _finding("not-strict", message, rel, line, f"{texts}\x1f{snippet}")


def strictness_causes(resolver: Resolver, options: dict[str, Origin]) -> list[Cause]:
    """Return the reasons resolved ``options`` are not strict, or [] when they are."""
    causes = []
    strict = options.get("strict")
    # NOTE: TypeScript 6.0 turns strict on by default, so there a missing
    # strict is strict. This check still requires the explicit setting, which
    # TypeScript 5 and earlier need.
    if strict is None:
        causes.append(Cause("strict is not enabled", None))
    elif strict.value is False:
        causes.append(
            Cause(f"strict is switched off in {resolver.display(strict.file)}", strict)
        )
    elif strict.value is not True:
        value = json.dumps(strict.value)
        text = f"strict must be true but is {value} in {resolver.display(strict.file)}"
        causes.append(Cause(text, strict))

    for flag in STRICT_FAMILY:
        origin = options.get(flag)
        if origin is not None and origin.value is False:
            text = f"{origin.name} is switched off in {resolver.display(origin.file)}"
            causes.append(Cause(text, origin))
    return causes


def _describe(cause: Cause) -> str:
    if cause.origin is None or cause.origin.line is None:
        return cause.text
    return f"{cause.text} (line {cause.origin.line})"


def _cause_line(resolver: Resolver, path: Path, causes: list[Cause]) -> int | None:
    """Return the line to flag in ``path``: an offending key there, else its extends."""
    for cause in causes:
        if cause.origin is not None and cause.origin.file == path:
            return cause.origin.line
    if any(cause.origin is not None for cause in causes):
        return _extends_line(resolver, path)
    config = resolver.load(path)
    return config.lines.get(("compilerOptions",))


def _extends_line(resolver: Resolver, path: Path) -> int | None:
    try:
        return resolver.load(path).lines.get(("extends",))
    except ResolveError:
        return None


def _finding(
    rule_id: str, message: str, rel: str, line: int | None, content: str
) -> Finding:
    return Finding(
        category="tsconfig",
        tool=TOOL,
        rule_id=rule_id,
        message=message,
        path=rel,
        line=line,
        severity="high",
        fingerprint=fingerprint(TOOL, rule_id, rel, content),
    )
