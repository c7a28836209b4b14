"""Tests of the ruff and eslint probes, running the real tools on real git repos."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest
from _lint_support import bare_python, context, link_node_modules, npm_tools

from daw.git import export_index
from daw.models import MeasurementStatus
from daw.probes.base import ProbeSettings
from daw.probes.lint import EslintProbe, RuffProbe
from daw.stages import Stage

RUFF_CONFIG = '[tool.ruff]\nline-length = 88\n\n[tool.ruff.lint]\nselect = ["F"]\n'
DIRTY_PY = "import os\n\n\ndef f():\n    y = 1\n    return None\n"
ESLINT_CONFIG = """export default [
  {
    files: ["**/*.js"],
    rules: { "no-unused-vars": "error", "no-console": "warn" },
  },
];
"""
GITIGNORE = "node_modules\n"


@pytest.fixture(scope="session")
def eslint_modules() -> Path:
    """A node_modules folder with eslint 9, installed once and kept across sessions."""
    return npm_tools("eslint@9")


def eslint_repo(make_repo, eslint_modules: Path, files: dict[str, str | bytes]):
    repo = make_repo(
        {"eslint.config.mjs": ESLINT_CONFIG, ".gitignore": GITIGNORE, **files}
    )
    link_node_modules(repo.root, eslint_modules)
    return repo


def test_ruff_clean_repo(make_repo, python):
    repo = make_repo({"pyproject.toml": RUFF_CONFIG, "app.py": "X = 1\n"})

    ctx = context(repo.root, python)
    result = RuffProbe().run(ctx)

    measurement = result.measurements[0]
    assert measurement.status is MeasurementStatus.OK
    assert measurement.value == 0
    assert result.findings == []
    assert measurement.tool_version
    assert measurement.inputs_digest == RuffProbe().cache_key(ctx)
    assert measurement.details["files"] == 1


def test_ruff_violations(make_repo, python):
    repo = make_repo(
        {
            "pyproject.toml": RUFF_CONFIG,
            "pkg/mod.py": DIRTY_PY,
            "broken.py": "x = (\n",
        }
    )

    result = RuffProbe().run(context(repo.root, python))

    found = [(f.path, f.line, f.rule_id, f.severity) for f in result.findings]
    assert result.measurements[0].value == 3
    assert ("pkg/mod.py", 1, "F401", "medium") in found
    assert ("pkg/mod.py", 5, "F841", "medium") in found
    syntax = [f for f in result.findings if f.path == "broken.py"]
    assert len(syntax) == 1
    assert syntax[0].severity == "high"
    assert syntax[0].category == "lint"
    assert "`os` imported but unused" in {f.message for f in result.findings}


def test_ruff_project_config_applies(make_repo, python):
    config = (
        '[tool.ruff]\nextend-exclude = ["gen"]\n\n'
        '[tool.ruff.lint]\nselect = ["F"]\nignore = ["F841"]\n'
    )
    long_line = "X = '" + "a" * 120 + "'\n"
    repo = make_repo(
        {
            "pyproject.toml": config,
            "app.py": DIRTY_PY + long_line,
            "gen/out.py": DIRTY_PY,
        }
    )

    result = RuffProbe().run(context(repo.root, python))

    assert [(f.path, f.rule_id) for f in result.findings] == [("app.py", "F401")]


def test_ruff_fix_setting_leaves_files(make_repo, python):
    config = RUFF_CONFIG.replace("line-length = 88\n", "line-length = 88\nfix = true\n")
    repo = make_repo({"pyproject.toml": config, "app.py": DIRTY_PY})

    result = RuffProbe().run(context(repo.root, python))

    assert (repo.root / "app.py").read_text() == DIRTY_PY
    assert result.measurements[0].value == 2
    assert not (repo.root / ".ruff_cache").exists()


def test_ruff_fingerprint_survives_move(make_repo, python):
    repo = make_repo({"pyproject.toml": RUFF_CONFIG, "app.py": DIRTY_PY})
    before = RuffProbe().run(context(repo.root, python)).findings

    repo.write("app.py", '"""Doc."""\n\nX = 1\n\n' + DIRTY_PY)
    after = RuffProbe().run(context(repo.root, python)).findings

    assert {f.fingerprint for f in before} == {f.fingerprint for f in after}
    assert [f.line for f in before] == [1, 5]
    assert [f.line for f in after] == [5, 9]


def test_ruff_identical_lines_distinct(make_repo, python):
    text = "def f():\n    y = 1\n\n\ndef g():\n    y = 1\n"
    repo = make_repo({"pyproject.toml": RUFF_CONFIG, "app.py": text})

    findings = RuffProbe().run(context(repo.root, python)).findings

    assert len(findings) == 2
    assert findings[0].fingerprint != findings[1].fingerprint


def test_ruff_python_missing(make_repo, tmp_path):
    repo = make_repo({"app.py": "X = 1\n"})
    ctx = context(repo.root, str(tmp_path / "no" / "python"))

    result = RuffProbe().run(ctx)

    measurement = result.measurements[0]
    assert measurement.status is MeasurementStatus.ERROR
    assert "not installed" in measurement.reason
    assert RuffProbe().cache_key(ctx) is None


def test_ruff_not_installed(make_repo, tmp_path):
    repo = make_repo({"app.py": "X = 1\n"})
    python = bare_python(tmp_path / "bare")

    result = RuffProbe().run(context(repo.root, python))

    measurement = result.measurements[0]
    assert measurement.status is MeasurementStatus.ERROR
    assert "ruff is not installed" in measurement.reason


def test_ruff_timeout(make_repo, python):
    repo = make_repo({"app.py": "X = 1\n"})
    ctx = context(repo.root, python)
    ctx = replace(ctx, settings=ProbeSettings(tool_timeout_s=0.001))

    result = RuffProbe().run(ctx)

    measurement = result.measurements[0]
    assert measurement.status is MeasurementStatus.ERROR
    assert "timed out" in measurement.reason


def test_ruff_exported_index(make_repo, python, tmp_path):
    repo = make_repo({"pyproject.toml": RUFF_CONFIG, "app.py": "X = 1\n"})
    repo.write("app.py", DIRTY_PY)
    repo.git("add", "app.py")
    repo.write("app.py", "X = 1\n")
    export = tmp_path / "export"
    export_index(repo.root, export)
    ctx = context(repo.root, python, ["app.py"], scan_root=export, stage=Stage.COMMIT)

    result = RuffProbe().run(ctx)

    assert [(f.path, f.line) for f in result.findings] == [("app.py", 1), ("app.py", 5)]


def test_ruff_invalid_config(make_repo, python):
    config = "[tool.ruff]\nline-lngth = 88\n"
    repo = make_repo({"pyproject.toml": config, "app.py": DIRTY_PY})

    result = RuffProbe().run(context(repo.root, python))

    measurement = result.measurements[0]
    assert measurement.status is MeasurementStatus.ERROR
    assert "line-lngth" in measurement.reason
    assert result.findings == []


def test_ruff_undecodable_files(make_repo, python):
    repo = make_repo(
        {
            "pyproject.toml": RUFF_CONFIG.replace('["F"]', '["E9", "F"]'),
            "latin.py": b'X = "caf\xe9"\n',
            "blob.py": bytes(range(256)) * 4,
            "ok.py": "X = 1\n",
        }
    )

    result = RuffProbe().run(context(repo.root, python))

    assert result.measurements[0].status is MeasurementStatus.OK
    paths = sorted(f.path for f in result.findings)
    assert paths == ["blob.py", "latin.py"]
    assert {f.severity for f in result.findings} == {"high"}


def test_ruff_no_python_in_scope(make_repo, python):
    repo = make_repo({"app.py": "X = 1\n", "README.md": "hello\n"})

    result = RuffProbe().run(context(repo.root, python, ["README.md"]))

    measurement = result.measurements[0]
    assert measurement.status is MeasurementStatus.OK
    assert measurement.value == 0
    assert measurement.details["note"] == "no files in scope"


def test_ruff_repo_without_python(make_repo, python):
    repo = make_repo({"README.md": "hello\n"})

    result = RuffProbe().run(context(repo.root, python))

    assert result.measurements[0].status is MeasurementStatus.NOT_APPLICABLE


def test_ruff_cache_key_tracks_inputs(make_repo, python):
    repo = make_repo({"pyproject.toml": RUFF_CONFIG, "pkg/app.py": "X = 1\n"})
    probe = RuffProbe()
    first = probe.cache_key(context(repo.root, python))

    repo.write("pkg/app.py", "X = 2\n")
    second = probe.cache_key(context(repo.root, python))
    repo.write("pkg/ruff.toml", "line-length = 100\n")
    third = probe.cache_key(
        context(repo.root, python, ["pkg/app.py", "pyproject.toml"])
    )

    assert first is not None
    assert first != second
    assert second != third
    assert probe.cache_key(context(repo.root, python)) == third


def test_eslint_no_config(make_repo, python):
    repo = make_repo({"app.js": "const a = 1;\n"})

    result = EslintProbe().run(context(repo.root, python))

    measurement = result.measurements[0]
    assert measurement.status is MeasurementStatus.NOT_APPLICABLE
    assert measurement.reason == "no eslint configuration"


@pytest.mark.parametrize(
    "files",
    [
        {"eslint.config.mjs": ESLINT_CONFIG},
        {".eslintrc.json": "{}\n"},
        {"package.json": '{"name": "x", "eslintConfig": {"rules": {}}}\n'},
    ],
)
def test_eslint_not_installed(make_repo, python, files):
    repo = make_repo({**files, "app.js": "const a = 1;\n"})

    result = EslintProbe().run(context(repo.root, python))

    measurement = result.measurements[0]
    assert measurement.status is MeasurementStatus.ERROR
    assert "node_modules/.bin/eslint is missing; run npm install" in measurement.reason


def test_eslint_clean_repo(make_repo, python, eslint_modules):
    repo = eslint_repo(make_repo, eslint_modules, {"app.js": "export const a = 1;\n"})

    ctx = context(repo.root, python)
    result = EslintProbe().run(ctx)

    measurement = result.measurements[0]
    assert measurement.status is MeasurementStatus.OK
    assert measurement.value == 0
    assert measurement.tool_version.startswith("9.")
    assert measurement.inputs_digest == EslintProbe().cache_key(ctx)


def test_eslint_counts_errors_only(make_repo, python, eslint_modules):
    text = 'export const a = 1;\nconsole.log("x");\nconst unused = 2;\n'
    repo = eslint_repo(
        make_repo, eslint_modules, {"src/app.js": text, "src/types.ts": "let x = 1;\n"}
    )

    result = EslintProbe().run(context(repo.root, python))

    assert result.measurements[0].value == 1
    finding = result.findings[0]
    assert finding.path == "src/app.js"
    assert finding.line == 3
    assert finding.rule_id == "no-unused-vars"
    assert finding.category == "lint"
    assert finding.severity == "medium"


def test_eslint_parse_error(make_repo, python, eslint_modules):
    repo = eslint_repo(make_repo, eslint_modules, {"bad.js": "const = ;\n"})

    result = EslintProbe().run(context(repo.root, python))

    assert len(result.findings) == 1
    assert result.findings[0].rule_id == "parse-error"
    assert result.findings[0].severity == "high"
    assert result.findings[0].line == 1


def test_eslint_fingerprint_survives_move(make_repo, python, eslint_modules):
    text = "const unused = 2;\n"
    repo = eslint_repo(make_repo, eslint_modules, {"app.js": text})
    before = EslintProbe().run(context(repo.root, python)).findings

    repo.write("app.js", "// header\n\nexport const a = 1;\n" + text)
    after = EslintProbe().run(context(repo.root, python)).findings

    assert [f.line for f in before] == [1]
    assert [f.line for f in after] == [4]
    assert before[0].fingerprint == after[0].fingerprint


def test_eslint_undecodable_files(make_repo, python, eslint_modules):
    files: dict[str, str | bytes] = {
        "latin.js": b'export const b = "caf\xe9";\n',
        "blob.js": bytes(range(256)) * 4,
    }
    repo = eslint_repo(make_repo, eslint_modules, files)

    result = EslintProbe().run(context(repo.root, python))

    assert result.measurements[0].status is MeasurementStatus.OK
    assert [f.path for f in result.findings] == ["blob.js"]
    assert result.findings[0].rule_id == "parse-error"


def test_eslint_broken_config(make_repo, python, eslint_modules):
    repo = make_repo({"eslint.config.mjs": "export default [\n", "app.js": "1;\n"})
    link_node_modules(repo.root, eslint_modules)

    result = EslintProbe().run(context(repo.root, python))

    measurement = result.measurements[0]
    assert measurement.status is MeasurementStatus.ERROR
    assert "eslint failed" in measurement.reason


def test_eslint_node_missing(make_repo, python, eslint_modules, tmp_path, monkeypatch):
    repo = eslint_repo(make_repo, eslint_modules, {"app.js": "const a = 1;\n"})
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))

    result = EslintProbe().run(context(repo.root, python))

    assert result.measurements[0].status is MeasurementStatus.ERROR


def test_eslint_exported_index(make_repo, python, eslint_modules, tmp_path):
    repo = eslint_repo(make_repo, eslint_modules, {"app.js": "export const a = 1;\n"})
    repo.write("app.js", "const staged = 1;\n")
    repo.git("add", "app.js")
    repo.write("app.js", "export const a = 1;\n")
    export = tmp_path / "export"
    export_index(repo.root, export)
    ctx = context(repo.root, python, ["app.js"], scan_root=export, stage=Stage.COMMIT)

    result = EslintProbe().run(ctx)

    assert [(f.path, f.line) for f in result.findings] == [("app.js", 1)]
    assert not os.path.lexists(export / "node_modules")
