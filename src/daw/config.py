"""Measurement settings from ``[tool.daw]`` in pyproject.toml, the policy and the CLI.

Later sources win: ``[tool.daw]``, then the policy's ``settings``, then options
given on the command line.
"""

from __future__ import annotations

import shlex
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from daw.errors import ConfigError
from daw.policy.model import Policy, Settings
from daw.probes.base import ProbeSettings


def read_tool_table(repo_root: Path) -> dict[str, Any]:
    """Return ``[tool.daw]`` of the repository's pyproject.toml, or ``{}``."""
    path = repo_root / "pyproject.toml"
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"invalid TOML: {exc}", path=str(path)) from exc
    table = data.get("tool", {}).get("daw", {})
    if not isinstance(table, dict):
        raise ConfigError("[tool.daw] must be a table", path=str(path))
    return table


def _tool_settings(repo_root: Path) -> Settings:
    table = dict(read_tool_table(repo_root))
    if isinstance(table.get("test_command"), str):
        table["test_command"] = shlex.split(table["test_command"])
    try:
        return Settings.model_validate(table)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"])
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        raise ConfigError(
            f"[tool.daw] {field}: {message}", path=str(repo_root / "pyproject.toml")
        ) from exc


def _paths(repo_root: Path, values: list[str]) -> tuple[Path, ...]:
    return tuple((repo_root / value).resolve() for value in values)


def _apply(settings: ProbeSettings, source: Settings, repo_root: Path) -> ProbeSettings:
    changes: dict[str, Any] = {}
    if source.test_command:
        changes["test_command"] = tuple(source.test_command)
    if source.coverage_reports:
        changes["coverage_reports"] = _paths(repo_root, source.coverage_reports)
    if source.junit_reports:
        changes["junit_reports"] = _paths(repo_root, source.junit_reports)
    if source.sarif_files:
        changes["sarif_files"] = _paths(repo_root, source.sarif_files)
    if source.osv_db:
        changes["osv_db"] = (repo_root / source.osv_db).resolve()
    for name in ("osv_api_url", "pypi_index_url", "tool_timeout_s", "test_timeout_s"):
        value = getattr(source, name)
        if value is not None:
            changes[name] = value
    return replace(settings, **changes)


def probe_settings(repo_root: Path, policy: Policy, cli: Settings) -> ProbeSettings:
    """Return the merged settings; relative paths are resolved against ``repo_root``.

    Raises ConfigError for an invalid ``[tool.daw]`` table.
    """
    settings = ProbeSettings()
    for source in (_tool_settings(repo_root), policy.settings, cli):
        settings = _apply(settings, source, repo_root)
    return settings
