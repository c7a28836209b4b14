"""Policy loading: merging, environments and errors that name the file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from daw.errors import ConfigError
from daw.policy.loading import load_policy


def write_policy(root: Path, text: str) -> Path:
    path = root / ".daw" / "policy.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_default_policy_has_all_criteria(tmp_path):
    policy, sources = load_policy(tmp_path)
    ids = {cid for cid, _ in policy.criteria()}
    assert len(ids) == 19
    assert "security.sca_critical" in ids
    assert len(sources) == 1


def test_project_overrides_threshold(tmp_path):
    write_policy(
        tmp_path, "gates:\n  code_quality:\n    coverage_total:\n      threshold: 85\n"
    )
    policy, _ = load_policy(tmp_path)
    criterion = policy.gates["code_quality"]["coverage_total"]
    assert criterion.threshold == 85
    assert criterion.action.value == "block-release"


def test_project_adds_criterion(tmp_path):
    write_policy(
        tmp_path,
        "gates:\n  security:\n    sast_medium:\n      metric: sast_medium\n"
        "      operator: '=='\n      threshold: 0\n      action: warn\n",
    )
    policy, _ = load_policy(tmp_path)
    assert "security.sast_medium" in dict(policy.criteria())


def test_environment_override_applies_only_there(tmp_path):
    write_policy(
        tmp_path,
        "environments:\n  production:\n    gates:\n      code_quality:\n"
        "        coverage_total:\n          threshold: 90\n",
    )
    production, _ = load_policy(tmp_path, environment="production")
    development, _ = load_policy(tmp_path, environment="development")
    assert production.gates["code_quality"]["coverage_total"].threshold == 90
    assert development.gates["code_quality"]["coverage_total"].threshold == 70
    assert production.digest() != development.digest()


def test_digest_is_stable(tmp_path):
    first, _ = load_policy(tmp_path)
    second, _ = load_policy(tmp_path)
    assert first.digest() == second.digest()
    assert len(first.digest()) == 64


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("gates: [\n", 2, "invalid YAML"),
        (
            "gates:\n  code_quality:\n    lint_errors:\n      actoin: warn\n",
            4,
            "unknown key 'actoin'",
        ),
        (
            "gates:\n  code_quality:\n    lint_errors:\n      action: stop\n",
            4,
            "action",
        ),
        (
            "gates:\n  code_quality:\n    lint_errors:\n      threshold: many\n",
            4,
            "threshold",
        ),
        ("color: blue\n", 1, "unknown key 'color'"),
        (
            "gates:\n  speed:\n    x:\n      metric: memory_mb\n",
            2,
            "unknown name 'speed'",
        ),
        (
            "gates:\n  code_quality:\n    lint_errors:\n      metric: lines\n",
            4,
            "unknown metric",
        ),
        (
            "waivers:\n  - reason: r\n    owner: o\n    expires: 2027-01-01\n",
            2,
            "exactly one",
        ),
        (
            "waivers:\n  - criterion: x\n    owner: o\n    reason: r\n"
            "    expires: soon\n",
            5,
            "expires",
        ),
        ("a: 1\na: 2\n", 2, "duplicate key 'a'"),
        (
            "waivers:\n  - criterion: code_quality.lint_errors\n    owner: o\n"
            "    reason: r\n    expires: 2027-13-45\n",
            5,
            "invalid value '2027-13-45'",
        ),
        (
            "gates:\n  code_quality:\n    coverage_totl: {threshold: 80}\n",
            3,
            "unknown criterion 'coverage_totl'",
        ),
        (
            "waivers:\n  - criterion: security.sast_hihg\n    owner: o\n"
            "    reason: r\n    expires: 2027-01-01\n",
            2,
            "unknown criterion 'security.sast_hihg'",
        ),
        (
            "environments:\n  production:\n    environments: {}\n",
            3,
            "cannot contain environments",
        ),
        (
            "gates:\n  code_quality:\n    lint_errors: {threshold: .nan}\n",
            3,
            "finite number",
        ),
        (
            "gates:\n  code_quality:\n    lint_errors: {threshold: true}\n",
            3,
            "valid number",
        ),
        (
            "gates:\n  code_quality:\n    lint_errors: {threshold: '80'}\n",
            3,
            "valid number",
        ),
        ("settings:\n  osv_api_url: file:///etc\n", 2, "use an http:// or https://"),
        ("- 1\n- 2\n", 1, "must be a mapping"),
        ("environments:\n  qa: {}\n", 2, "unknown name 'qa'"),
        (
            "environments:\n  staging:\n    gates:\n      uat:\n        p0_journeys:\n"
            "          action: never\n",
            6,
            "environments.staging.gates.uat.p0_journeys.action",
        ),
    ],
)
def test_invalid_policy_names_file_and_line(tmp_path, text, line, fragment):
    path = write_policy(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_policy(tmp_path)
    assert caught.value.path == str(path)
    assert caught.value.line == line
    assert fragment in caught.value.message


def test_non_utf8_policy(tmp_path):
    path = tmp_path / ".daw" / "policy.yaml"
    path.parent.mkdir()
    path.write_bytes(b"gates: \xff\xfe\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_policy(tmp_path)


def test_missing_explicit_policy(tmp_path):
    with pytest.raises(ConfigError, match="policy file not found"):
        load_policy(tmp_path, tmp_path / "nope.yaml")


def test_unknown_environment(tmp_path):
    with pytest.raises(ConfigError, match="unknown environment 'prod'"):
        load_policy(tmp_path, environment="prod")
