"""Reading policy files: YAML with line numbers, merging and validation.

Every problem becomes a ConfigError that names the file, the line and the field,
because the user must be able to fix the file without a traceback.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from daw.errors import ConfigError
from daw.policy.model import Policy
from daw.stages import ENVIRONMENTS

PROJECT_POLICY = Path(".daw") / "policy.yaml"
DEFAULT_SOURCE = "<built-in default policy>"

Location = tuple[str | int, ...]


@dataclass
class PolicySource:
    """A parsed policy document with the line (1-based) of every key and item."""

    path: str
    data: dict[str, Any]
    lines: dict[Location, int]

    def line_of(self, loc: Location) -> int | None:
        """Return the line of ``loc`` or of its nearest enclosing key in this file."""
        for end in range(len(loc), -1, -1):
            line = self.lines.get(loc[:end])
            if line is not None:
                return line
        return None


def parse_yaml(text: str, path: str) -> PolicySource:
    """Parse one policy document, keeping line numbers.

    Raises ConfigError for YAML syntax errors, duplicate keys and a top level that
    is not a mapping.
    """
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise ConfigError(
            f"invalid YAML: {exc.problem or exc}",
            path=path,
            line=line,
            hint="fix the YAML syntax at that line",
        ) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", path=path) from exc
    if node is None:
        return PolicySource(path, {}, {(): 1})
    lines: dict[Location, int] = {}
    data = _to_python(node, (), lines, path)
    if not isinstance(data, dict):
        raise ConfigError(
            "a policy must be a mapping of keys such as 'gates' and 'waivers'",
            path=path,
            line=node.start_mark.line + 1,
        )
    return PolicySource(path, data, lines)


def _to_python(
    node: yaml.Node, loc: Location, lines: dict[Location, int], path: str
) -> Any:
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        return _mapping_to_python(node, loc, lines, path)
    if isinstance(node, yaml.SequenceNode):
        items = enumerate(node.value)
        return [_to_python(item, (*loc, index), lines, path) for index, item in items]
    try:
        return _SCALARS.construct_object(node, deep=True)
    except ValueError as exc:
        # PyYAML reads 2027-02-30 as a timestamp and fails to build the date.
        field = ".".join(str(part) for part in loc) or "(top level)"
        raise ConfigError(
            f"{field}: invalid value {node.value!r}: {exc}",
            path=path,
            line=node.start_mark.line + 1,
            hint="write a real date as YYYY-MM-DD, or quote the text",
        ) from exc


def _mapping_to_python(
    node: yaml.MappingNode, loc: Location, lines: dict[Location, int], path: str
) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key_node, value_node in node.value:
        line = key_node.start_mark.line + 1
        if not isinstance(key_node, yaml.ScalarNode):
            raise ConfigError("a key must be plain text", path=path, line=line)
        key = str(key_node.value)
        if key in result:
            raise ConfigError(
                f"duplicate key {key!r}",
                path=path,
                line=line,
                hint="remove one of the two entries",
            )
        lines[(*loc, key)] = line
        result[key] = _to_python(value_node, (*loc, key), lines, path)
    return result


_SCALARS = yaml.SafeLoader("")


def read_policy_file(path: Path) -> PolicySource:
    """Read and parse a policy file; ConfigError when it is missing or unreadable."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise ConfigError("policy file not found", path=str(path)) from exc
    except OSError as exc:
        raise ConfigError(
            f"cannot read policy file: {exc.strerror}", path=str(path)
        ) from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"policy file is not UTF-8 text (invalid byte at offset {exc.start})",
            path=str(path),
            hint="save the file as UTF-8",
        ) from exc
    return parse_yaml(text, str(path))


def default_source() -> PolicySource:
    text = (
        resources.files("daw.policy").joinpath("default_policy.yaml").read_text("utf-8")
    )
    return parse_yaml(text, DEFAULT_SOURCE)


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Return ``base`` with ``override`` applied: mappings merge, the rest replace."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def validate(data: dict[str, Any], sources: list[PolicySource]) -> Policy:
    """Build a Policy from merged data, reporting the first error at its file and line.

    ``sources`` are searched last to first, so an error is reported in the file
    that set the offending value.
    """
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        raise _located(exc, sources) from None


def _located(
    exc: ValidationError, sources: list[PolicySource], prefix: Location = ()
) -> ConfigError:
    error = exc.errors()[0]
    loc: Location = tuple(part for part in (*prefix, *error["loc"]) if part != "[key]")
    field = ".".join(str(part) for part in loc) or "(top level)"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = f"unknown key {loc[-1]!r}"
    elif error["type"] == "missing" and _is_new_criterion(loc, sources):
        field = ".".join(str(part) for part in loc[:-1])
        message = (
            f"unknown criterion {loc[-2]!r}: a new criterion needs metric, operator, "
            "threshold and action (check the spelling of a built-in one)"
        )
    elif error["type"] == "missing":
        message = "required field is missing"
    elif "[key]" in error["loc"]:
        message = f"unknown name {loc[-1]!r}: {message}"
    for source in reversed(sources):
        if any(loc[:end] in source.lines for end in range(len(loc), 0, -1)):
            line = source.line_of(loc)
            return ConfigError(f"{field}: {message}", path=source.path, line=line)
    return ConfigError(f"{field}: {message}", path=sources[-1].path)


def _is_new_criterion(loc: Location, sources: list[PolicySource]) -> bool:
    """Return whether ``loc`` is a field of a criterion the default policy lacks."""
    if "gates" not in loc:
        return False
    start = loc.index("gates")
    if len(loc) != start + 4:
        return False
    gate, name = loc[start + 1], loc[start + 2]
    return name not in sources[0].data.get("gates", {}).get(gate, {})


def load_policy(
    repo_root: Path, policy_path: Path | None = None, environment: str = "development"
) -> tuple[Policy, list[PolicySource]]:
    """Return the effective policy for ``environment`` and the documents it came from.

    ``policy_path`` defaults to ``.daw/policy.yaml`` under ``repo_root``; a missing
    default file means the built-in policy alone. Raises ConfigError for any
    invalid document or an unknown environment.
    """
    if environment not in ENVIRONMENTS:
        raise ConfigError(
            f"unknown environment {environment!r}",
            hint=f"use one of: {', '.join(ENVIRONMENTS)}",
        )
    sources = [default_source()]
    explicit = policy_path is not None
    path = policy_path if explicit else repo_root / PROJECT_POLICY
    if explicit or path.is_file():
        sources.append(read_policy_file(path))
    merged: dict[str, Any] = {}
    for source in sources:
        merged = deep_merge(merged, source.data)
    _check_waiver_targets(validate(merged, sources), sources)
    return _apply_environment(merged, environment, sources), sources


def _check_waiver_targets(policy: Policy, sources: list[PolicySource]) -> None:
    """Raise ConfigError for a waiver that names a criterion the policy lacks."""
    known = {criterion_id for criterion_id, _ in policy.criteria()}
    for index, waiver in enumerate(policy.waivers):
        if waiver.criterion is not None and waiver.criterion not in known:
            raise _located_message(
                sources,
                ("waivers", index, "criterion"),
                f"unknown criterion {waiver.criterion!r}; "
                "use a gate.criterion id that `daw policy show` lists",
            )


def _apply_environment(
    merged: dict[str, Any], environment: str, sources: list[PolicySource]
) -> Policy:
    environments = merged.get("environments") or {}
    for name, override in sorted(environments.items()):
        if not isinstance(override, dict):
            raise _located_message(
                sources,
                ("environments", name),
                "an environment override must be a mapping",
            )
        if "environments" in override:
            raise _located_message(
                sources,
                ("environments", name, "environments"),
                "an environment override cannot contain environments",
            )
        candidate = deep_merge(merged, override)
        candidate["environments"] = {}
        try:
            Policy.model_validate(candidate)
        except ValidationError as exc:
            raise _located(exc, sources, ("environments", name)) from None
    chosen = deep_merge(merged, environments.get(environment) or {})
    chosen["environments"] = {}
    return Policy.model_validate(chosen)


def _located_message(
    sources: list[PolicySource], loc: Location, message: str
) -> ConfigError:
    source = sources[-1]
    field = ".".join(str(part) for part in loc)
    return ConfigError(
        f"{field}: {message}", path=source.path, line=source.line_of(loc)
    )
