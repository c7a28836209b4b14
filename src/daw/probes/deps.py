"""Discovery of a repository's Python dependencies and the versions in use.

Sources are requirements files (``*requirements*.txt`` and ``requirements/*.txt``),
``pyproject.toml`` (PEP 621, PEP 735 dependency groups and Poetry tables) and the
lock files ``uv.lock``, ``poetry.lock`` and ``pylock.toml`` / ``pylock.*.toml``
(PEP 751). A requirement pinned with ``==`` or ``===`` keeps its version. Any other
requirement takes its version from a lock file in the same folder, else from the
distributions installed for the target interpreter, else it is reported as
unresolved. Lock entries that no manifest in their folder declares are transitive.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import re
import tempfile
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

from packaging.markers import InvalidMarker, Marker, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from daw.probes.base import ProbeContext, files_with_suffix
from daw.process import ToolError, run_tool

log = logging.getLogger(__name__)

LOCK_FILES = ("uv.lock", "poetry.lock", "pylock.toml", "pylock.*.toml")

# pip options that apply to the whole requirements file and declare nothing.
_GLOBAL_OPTIONS = frozenset(
    (
        "-i",
        "--index-url",
        "--extra-index-url",
        "--no-index",
        "-f",
        "--find-links",
        "--pre",
        "--prefer-binary",
        "--require-hashes",
        "--trusted-host",
        "--only-binary",
        "--no-binary",
        "--use-feature",
    )
)

# Prints the target interpreter's installed distributions and its PEP 508 marker
# environment as JSON. It imports only the standard library, because the target
# environment may lack packaging. The first distribution of a name on sys.path
# wins, as it does for imports.
_ENVIRONMENT_SCRIPT = """
import json, os, platform, sys
from importlib import metadata
dists = {}
for dist in metadata.distributions():
    name = dist.metadata["Name"]
    if name and name not in dists:
        dists[name] = dist.version
impl = sys.implementation.version
impl_version = "{0.major}.{0.minor}.{0.micro}".format(impl)
if impl.releaselevel != "final":
    impl_version += impl.releaselevel[0] + str(impl.serial)
env = {
    "implementation_name": sys.implementation.name,
    "implementation_version": impl_version,
    "os_name": os.name,
    "platform_machine": platform.machine(),
    "platform_release": platform.release(),
    "platform_system": platform.system(),
    "platform_version": platform.version(),
    "python_full_version": platform.python_version(),
    "platform_python_implementation": platform.python_implementation(),
    "python_version": ".".join(platform.python_version_tuple()[:2]),
    "sys_platform": sys.platform,
}
print(json.dumps({"distributions": dists, "environment": env}))
"""

_TOML_LINE = re.compile(r"\(at line (\d+), column \d+\)")
_PIP_COMMENT = re.compile(r"(^|\s+)#.*$")


class DependencyError(Exception):
    """A manifest or lock file is invalid, or the target environment cannot be listed.

    ``path`` and ``line`` name the place when known. The probe reports the error as
    an ``error`` measurement.
    """

    def __init__(self, message: str, path: str | None = None, line: int | None = None):
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(f"{where}{message}")
        self.path = path
        self.line = line


@dataclass(frozen=True)
class Dependency:
    """One package at the version in use.

    ``name`` is PEP 503 normalised. ``path`` (relative to the scan root) and
    ``line`` are where it is declared: the manifest for a direct dependency, the
    lock file for a transitive one. ``requirement`` is the declaration as written.
    """

    name: str
    version: str
    path: str
    line: int | None
    direct: bool
    requirement: str


@dataclass(frozen=True)
class UnresolvedDependency:
    """A declared requirement whose version in use could not be determined, and why."""

    requirement: str
    path: str
    line: int | None
    reason: str


@dataclass(frozen=True)
class DependencyReport:
    """The dependencies found, those that could not be resolved and the files read."""

    dependencies: tuple[Dependency, ...]
    unresolved: tuple[UnresolvedDependency, ...]
    files: tuple[str, ...]


@dataclass(frozen=True)
class _Declared:
    """A requirement as a manifest declares it, before its version is resolved."""

    name: str
    path: str
    line: int | None
    text: str
    pin: str | None = None
    marker: Marker | None = None
    problem: str | None = None


@dataclass(frozen=True)
class _Locked:
    """One package entry of a lock file."""

    name: str
    version: str | None
    path: str
    line: int | None
    marker: Marker | None = None


@dataclass
class _Environment:
    """The target interpreter's distributions and marker values, listed on first use."""

    python: str
    timeout_s: float
    _data: dict[str, dict[str, str]] | None = field(default=None, init=False)

    def installed(self) -> dict[str, str]:
        """Return the installed versions by PEP 503 normalised name."""
        return self._load()["distributions"]

    def markers(self) -> dict[str, str]:
        return self._load()["environment"]

    def _load(self) -> dict[str, dict[str, str]]:
        if self._data is None:
            data = _list_environment(self.python, self.timeout_s)
            names = data["distributions"].items()
            data["distributions"] = {canonicalize_name(n): v for n, v in names}
            self._data = data
        return self._data


def discover_dependencies(ctx: ProbeContext) -> DependencyReport:
    """Find the Python dependencies of the repository at ``ctx.scan_root``.

    Raises DependencyError when a manifest or lock file is invalid, or when the
    target interpreter's installed distributions are needed and cannot be listed.
    """
    environment = _Environment(ctx.python, ctx.settings.tool_timeout_s)
    manifests, locks = _find_manifests(ctx)

    declared: dict[tuple[str, int | None], _Declared] = {}
    read: set[str] = set()
    for rel in manifests:
        for item in _parse_manifest(ctx.scan_root, rel, read):
            declared.setdefault((item.path, item.line), item)

    locked: list[_Locked] = []
    for rel in locks:
        read.add(rel)
        locked.extend(_parse_lock(ctx.scan_root, rel))

    applicable = [d for d in declared.values() if _applies(d.marker, environment)]
    lockable = [lock for lock in locked if _applies(lock.marker, environment)]
    deps, unresolved = _resolve(applicable, lockable, environment)
    return DependencyReport(
        dependencies=tuple(_deduplicate(deps)),
        unresolved=tuple(sorted(unresolved, key=lambda u: (u.path, u.line or 0))),
        files=tuple(sorted(read)),
    )


def _find_manifests(ctx: ProbeContext) -> tuple[list[str], list[str]]:
    manifests: list[str] = []
    locks: list[str] = []
    for rel in files_with_suffix(ctx, ".txt", ".toml", ".lock"):
        path = PurePosixPath(rel)
        if path.name == "pyproject.toml" or _is_requirements_file(path):
            manifests.append(rel)
        elif any(fnmatch.fnmatchcase(path.name, pattern) for pattern in LOCK_FILES):
            locks.append(rel)
    return manifests, locks


def _is_requirements_file(path: PurePosixPath) -> bool:
    if path.suffix != ".txt":
        return False
    return "requirements" in path.name or path.parent.name == "requirements"


def _parse_manifest(root: Path, rel: str, read: set[str]) -> list[_Declared]:
    if PurePosixPath(rel).name == "pyproject.toml":
        read.add(rel)
        return _parse_pyproject(root, rel)
    return _parse_requirements(root, rel, read, ())


# --- requirements files -----------------------------------------------------------


def _parse_requirements(
    root: Path, rel: str, read: set[str], chain: tuple[str, ...]
) -> list[_Declared]:
    """Parse one requirements file and, recursively, the files it includes with -r."""
    if rel in chain:
        raise DependencyError(f"-r include cycle: {' -> '.join((*chain, rel))}", rel)
    read.add(rel)
    result: list[_Declared] = []
    for line, text in _logical_lines(_read_text(root, rel), rel):
        if text.startswith("-"):
            result.extend(_parse_option(root, rel, line, text, read, (*chain, rel)))
        else:
            result.append(_parse_requirement_line(rel, line, text))
    return result


def _logical_lines(content: str, rel: str) -> Iterator[tuple[int, str]]:
    """Yield (first line number, text), continuations joined and comments removed."""
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(content.splitlines(), start=1):
        if not pending:
            start = number
        if raw.endswith("\\"):
            pending.append(raw[:-1])
            continue
        pending.append(raw)
        text = _PIP_COMMENT.sub("", " ".join(pending)).strip()
        pending = []
        if text:
            yield start, text
    if pending:
        raise DependencyError("line continuation at the end of the file", rel, start)


def _parse_option(
    root: Path, rel: str, line: int, text: str, read: set[str], chain: tuple[str, ...]
) -> list[_Declared]:
    option, value = _split_option(text)
    if option in ("-r", "--requirement"):
        return _include(root, rel, line, value, read, chain)
    if option in ("-c", "--constraint"):
        # NOTE: constraint files only narrow versions and declare nothing, so their
        # pins are not used to resolve unpinned requirements.
        log.debug("%s:%d: constraint file %s not read", rel, line, value)
        return []
    if option in ("-e", "--editable"):
        return [_problem(rel, line, text, "editable requirement has no fixed version")]
    if option in _GLOBAL_OPTIONS:
        return []
    raise DependencyError(f"unknown pip option {option!r}", rel, line)


def _split_option(text: str) -> tuple[str, str]:
    if text.startswith("--"):
        option, _, value = text.replace("=", " ", 1).partition(" ")
        return option, value.strip()
    if len(text) > 2 and text[2] != " ":
        return text[:2], text[2:].strip()
    option, _, value = text.partition(" ")
    return option, value.strip()


def _include(
    root: Path, rel: str, line: int, target: str, read: set[str], chain: tuple[str, ...]
) -> list[_Declared]:
    if not target:
        raise DependencyError("-r needs a file name", rel, line)
    if "://" in target:
        return [
            _problem(rel, line, f"-r {target}", "remote requirements file not read")
        ]

    included = (PurePosixPath(rel).parent / target).as_posix()
    resolved = (root / included).resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise DependencyError(f"-r {target} points outside the repository", rel, line)
    if not resolved.is_file():
        raise DependencyError(f"-r {target}: file not found", rel, line)
    normalised = resolved.relative_to(root.resolve()).as_posix()
    return _parse_requirements(root, normalised, read, chain)


def _parse_requirement_line(rel: str, line: int, text: str) -> _Declared:
    # Per-requirement options such as --hash follow the requirement itself.
    words = text.split()
    first_option = next(
        (i for i, word in enumerate(words) if word.startswith("-")), len(words)
    )
    spec = " ".join(words[:first_option])
    if _looks_like_path_or_url(spec):
        return _problem(rel, line, spec, "URL or path requirement has no fixed version")
    return _declare(spec, rel, line)


def _looks_like_path_or_url(spec: str) -> bool:
    head = spec.split(";", 1)[0].strip()
    return "://" in head.split("@", 1)[0] or head.startswith((".", "/", "file:"))


def _declare(spec: str, rel: str, line: int | None) -> _Declared:
    """Parse one PEP 508 requirement string. Raises DependencyError when invalid."""
    try:
        requirement = Requirement(spec)
    except InvalidRequirement as exc:
        raise DependencyError(
            f"invalid requirement {spec!r}: {exc}", rel, line
        ) from exc

    name = canonicalize_name(requirement.name)
    if requirement.url:
        reason = "direct URL reference has no fixed version"
        return _problem(rel, line, spec, reason, name=name, marker=requirement.marker)
    return _Declared(
        name=name,
        path=rel,
        line=line,
        text=spec,
        pin=_pinned_version(requirement),
        marker=requirement.marker,
    )


def _pinned_version(requirement: Requirement) -> str | None:
    for specifier in sorted(requirement.specifier, key=str):
        exact = specifier.operator in ("==", "===")
        if exact and not specifier.version.endswith(".*"):
            return specifier.version
    return None


def _problem(
    rel: str,
    line: int | None,
    text: str,
    reason: str,
    *,
    name: str = "",
    marker: Marker | None = None,
) -> _Declared:
    return _Declared(
        name=name, path=rel, line=line, text=text, marker=marker, problem=reason
    )


# --- pyproject.toml ---------------------------------------------------------------


def _parse_pyproject(root: Path, rel: str) -> list[_Declared]:
    content = _read_text(root, rel)
    data = _load_toml(content, rel)
    lines = content.splitlines()
    result: list[_Declared] = []

    project = _table(data, "project")
    result += _declare_list(project.get("dependencies"), lines, rel, "[project]")
    for group, specs in sorted(_table(project, "optional-dependencies").items()):
        header = "[project.optional-dependencies]"
        result += _declare_list(specs, lines, rel, header, group)
    for group, specs in sorted(_table(data, "dependency-groups").items()):
        result += _declare_list(specs, lines, rel, "[dependency-groups]", group)

    poetry = _table(_table(data, "tool"), "poetry")
    result += _declare_poetry(poetry.get("dependencies"), lines, rel, "dependencies")
    dev = poetry.get("dev-dependencies")
    result += _declare_poetry(dev, lines, rel, "dev-dependencies")
    for group, table in sorted(_table(poetry, "group").items()):
        specs = table.get("dependencies") if isinstance(table, dict) else None
        result += _declare_poetry(specs, lines, rel, f"group.{group}.dependencies")
    return result


def _declare_list(
    specs: Any, lines: list[str], rel: str, header: str, key: str = ""
) -> list[_Declared]:
    if specs is None:
        return []
    if not isinstance(specs, list):
        where = _find_line(lines, (header,), 0)
        raise DependencyError(f"{header} {key} must be a list of strings", rel, where)

    start = (_find_line(lines, (header,), 0) or 1) - 1
    result = []
    for spec in specs:
        if isinstance(spec, dict):  # a PEP 735 {include-group = "..."} entry
            continue
        if not isinstance(spec, str):
            raise DependencyError(f"requirement {spec!r} is not a string", rel)
        line = _find_line(lines, (f'"{spec}"', f"'{spec}'"), start)
        start = line or start
        result.append(_declare(spec, rel, line))
    return result


def _declare_poetry(
    table: Any, lines: list[str], rel: str, section: str
) -> list[_Declared]:
    if not isinstance(table, dict):
        return []
    start = _find_line(lines, (f"[tool.poetry.{section}]",), 0) or 1
    result = []
    for name, constraint in table.items():
        if canonicalize_name(name) == "python":
            continue
        needles = (f"{name} ", f"{name}=", f'"{name}"')
        line = _find_line(lines, needles, start - 1, at_start=True)
        result.append(_declare_poetry_entry(name, constraint, rel, line))
    return result


def _declare_poetry_entry(
    name: str, constraint: Any, rel: str, line: int | None
) -> _Declared:
    text = f"{name} = {json.dumps(constraint)}"
    normalised = canonicalize_name(name)
    if isinstance(constraint, list):
        return _problem(rel, line, text, "multiple Poetry constraints", name=normalised)
    if isinstance(constraint, dict):
        if any(key in constraint for key in ("git", "path", "url")):
            reason = "git, path or URL dependency has no fixed version"
            return _problem(rel, line, text, reason, name=normalised)
        constraint = constraint.get("version", "*")
    if not isinstance(constraint, str):
        raise DependencyError(f"invalid Poetry constraint for {name!r}", rel, line)
    return _Declared(
        name=normalised, path=rel, line=line, text=text, pin=_poetry_pin(constraint)
    )


def _poetry_pin(constraint: str) -> str | None:
    """Return the version of an exact Poetry constraint (``1.2.3`` or ``==1.2.3``)."""
    bare = constraint.strip().removeprefix("==").strip()
    if not bare or any(char in bare for char in "^~<>=!*,| "):
        return None
    return bare


# --- lock files -------------------------------------------------------------------


def _parse_lock(root: Path, rel: str) -> list[_Locked]:
    content = _read_text(root, rel)
    data = _load_toml(content, rel)
    lines = content.splitlines()
    is_pylock = PurePosixPath(rel).name.startswith("pylock.")
    packages = data.get("packages" if is_pylock else "package", [])
    if not isinstance(packages, list):
        raise DependencyError("package entries must be an array of tables", rel)

    result = []
    cursor = 0
    for entry in packages:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise DependencyError("package entry without a name", rel)
        name = entry["name"]
        needles = (f'name = "{name}"', f"name = '{name}'")
        line = _find_line(lines, needles, cursor, at_start=True)
        cursor = line or cursor
        if _is_local_source(entry, is_pylock):
            continue
        result.append(_lock_entry(entry, rel, line, is_pylock))
    return result


def _is_local_source(entry: dict[str, Any], is_pylock: bool) -> bool:
    """Return whether a lock entry is local code: the project or a workspace member."""
    if is_pylock:
        return "directory" in entry
    source = entry.get("source")
    if not isinstance(source, dict):
        return False
    if source.get("type") == "directory":  # poetry.lock
        return True
    return any(key in source for key in ("editable", "virtual", "directory", "path"))


def _lock_entry(
    entry: dict[str, Any], rel: str, line: int | None, is_pylock: bool
) -> _Locked:
    version = entry.get("version")
    if version is not None and not isinstance(version, str):
        raise DependencyError(f"invalid version {version!r}", rel, line)
    marker = None
    if is_pylock and isinstance(entry.get("marker"), str):
        try:
            marker = Marker(entry["marker"])
        except InvalidMarker as exc:
            raise DependencyError(f"invalid marker: {exc}", rel, line) from exc
    name = canonicalize_name(entry["name"])
    return _Locked(name=name, version=version, path=rel, line=line, marker=marker)


# --- resolution -------------------------------------------------------------------


def _resolve(
    declared: list[_Declared], locked: list[_Locked], environment: _Environment
) -> tuple[list[Dependency], list[UnresolvedDependency]]:
    lock_versions: dict[tuple[str, str], str] = {}
    for lock in locked:
        if lock.version is not None:
            lock_versions.setdefault((_folder(lock.path), lock.name), lock.version)

    deps: list[Dependency] = []
    unresolved: list[UnresolvedDependency] = []
    declared_names = set()
    for item in declared:
        declared_names.add((_folder(item.path), item.name))
        version, reason = _version_in_use(item, lock_versions, environment)
        if version is None:
            unresolved.append(
                UnresolvedDependency(item.text, item.path, item.line, reason)
            )
            continue
        deps.append(
            Dependency(item.name, version, item.path, item.line, True, item.text)
        )

    for lock in locked:
        if (_folder(lock.path), lock.name) in declared_names:
            continue
        if lock.version is None:
            reason = "lock entry has no version"
            unresolved.append(
                UnresolvedDependency(lock.name, lock.path, lock.line, reason)
            )
            continue
        text = f"{lock.name} {lock.version}"
        deps.append(
            Dependency(lock.name, lock.version, lock.path, lock.line, False, text)
        )
    return deps, unresolved


def _version_in_use(
    item: _Declared,
    lock_versions: dict[tuple[str, str], str],
    environment: _Environment,
) -> tuple[str | None, str]:
    if item.problem is not None:
        return None, item.problem
    if item.pin is not None:
        return item.pin, ""
    locked = lock_versions.get((_folder(item.path), item.name))
    if locked is not None:
        return locked, ""
    installed = environment.installed()
    if item.name in installed:
        return installed[item.name], ""
    return None, f"not pinned, not locked and not installed for {environment.python}"


def _applies(marker: Marker | None, environment: _Environment) -> bool:
    """Return whether an environment marker is true for the target interpreter."""
    if marker is None:
        return True
    try:
        return marker.evaluate({**environment.markers(), "extra": ""})
    except UndefinedEnvironmentName as exc:
        raise DependencyError(f"cannot evaluate marker {str(marker)!r}: {exc}") from exc


def _deduplicate(deps: list[Dependency]) -> list[Dependency]:
    """Keep one entry per (name, version), preferring a direct one, then by path."""
    chosen: dict[tuple[str, str], Dependency] = {}
    for dep in sorted(deps, key=lambda d: (not d.direct, d.path, d.line or 0)):
        key = (dep.name, dep.version)
        if key not in chosen:
            chosen[key] = dep
        elif dep.direct and not chosen[key].direct:
            chosen[key] = replace(chosen[key], direct=True)
    return sorted(chosen.values(), key=lambda d: (d.name, d.version, d.path))


def _list_environment(python: str, timeout_s: float) -> dict[str, dict[str, str]]:
    """Run the target interpreter to list its distributions and marker environment."""
    # A neutral working folder keeps a repository's own modules off sys.path.
    with tempfile.TemporaryDirectory(prefix="daw-env-") as neutral:
        try:
            done = run_tool(
                [python, "-c", _ENVIRONMENT_SCRIPT],
                cwd=Path(neutral),
                timeout_s=timeout_s,
            )
        except ToolError as exc:
            raise DependencyError(
                f"cannot list installed distributions: {exc}"
            ) from exc
    if done.returncode != 0:
        raise DependencyError(f"cannot list installed distributions: {done.describe()}")
    try:
        data = json.loads(done.stdout)
        return {
            "distributions": data["distributions"],
            "environment": data["environment"],
        }
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DependencyError(
            f"{python} printed invalid output for its installed distributions: {exc}"
        ) from exc


# --- helpers ----------------------------------------------------------------------


def _folder(rel: str) -> str:
    return PurePosixPath(rel).parent.as_posix()


def _read_text(root: Path, rel: str) -> str:
    try:
        return (root / rel).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DependencyError(f"not valid UTF-8: {exc}", rel) from exc
    except OSError as exc:
        raise DependencyError(f"cannot read file: {exc.strerror}", rel) from exc


def _load_toml(content: str, rel: str) -> dict[str, Any]:
    try:
        return tomllib.loads(content)
    except tomllib.TOMLDecodeError as exc:
        match = _TOML_LINE.search(str(exc))
        line = int(match.group(1)) if match else None
        if line is None and "end of document" in str(exc):
            line = max(1, len(content.splitlines()))
        raise DependencyError(f"invalid TOML: {exc}", rel, line) from exc


def _table(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def _find_line(
    lines: list[str], needles: tuple[str, ...], start: int, *, at_start: bool = False
) -> int | None:
    """Return the 1-based number of the first line from index ``start`` with a needle.

    With ``at_start`` the stripped line must begin with the needle.
    """
    for index in range(start, len(lines)):
        stripped = lines[index].strip()
        if at_start and stripped.startswith(needles):
            return index + 1
        if not at_start and any(needle in stripped for needle in needles):
            return index + 1
    return None
