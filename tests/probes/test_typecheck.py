"""Tests of the type-check probe, running the real mypy and pyright on real repos."""

from __future__ import annotations

from pathlib import Path

import pytest
from _lint_support import bare_python, context, link_node_modules, npm_tools

from daw.models import MeasurementStatus
from daw.probes.typecheck import TypeCheckProbe, run_mypy

MYPY_CONFIG = "[tool.mypy]\nstrict = true\n"
PYRIGHT_CONFIG = '{"pythonVersion": "3.11"}\n'
CLEAN_PY = "def f(x: int) -> int:\n    return x\n"
TYPE_ERRORS_PY = 'def f(x: int) -> str:\n    return x\n\n\ny: int = "a"\n'
GITIGNORE = "node_modules\n"


@pytest.fixture(scope="session")
def pyright_modules() -> Path:
    """A node_modules folder with pyright 1, installed once and kept across sessions."""
    return npm_tools("pyright@1")


def test_typecheck_not_configured(make_repo, python):
    repo = make_repo({"app.py": TYPE_ERRORS_PY, "setup.cfg": "[flake8]\n"})

    result = TypeCheckProbe().run(context(repo.root, python))

    measurement = result.measurements[0]
    assert measurement.status is MeasurementStatus.NOT_APPLICABLE
    assert measurement.reason == "no type checker configured"


def test_mypy_clean_repo(make_repo, python):
    repo = make_repo({"pyproject.toml": MYPY_CONFIG, "app.py": CLEAN_PY})

    ctx = context(repo.root, python)
    result = TypeCheckProbe().run(ctx)

    measurement = result.measurements[0]
    assert measurement.status is MeasurementStatus.OK
    assert measurement.value == 0
    assert measurement.tool == "mypy"
    assert measurement.tool_version
    assert measurement.inputs_digest == TypeCheckProbe().cache_key(ctx)
    assert result.findings == []


def test_mypy_errors(make_repo, python):
    repo = make_repo({"pyproject.toml": MYPY_CONFIG, "pkg/mod.py": TYPE_ERRORS_PY})

    result = TypeCheckProbe().run(context(repo.root, python))

    found = [(f.path, f.line, f.rule_id) for f in result.findings]
    assert result.measurements[0].value == 2
    assert found == [("pkg/mod.py", 2, "return-value"), ("pkg/mod.py", 5, "assignment")]
    assert {f.category for f in result.findings} == {"type"}
    assert {f.tool for f in result.findings} == {"mypy"}
    assert "Incompatible return value type" in result.findings[0].message


def test_mypy_text_output_matches_json(make_repo, python):
    repo = make_repo({"pyproject.toml": MYPY_CONFIG, "pkg/mod.py": TYPE_ERRORS_PY})
    ctx = context(repo.root, python)
    version = "1.10.0"

    as_text = run_mypy(ctx, ["pkg/mod.py"], version, json_output=False)
    as_json = run_mypy(ctx, ["pkg/mod.py"], version, json_output=True)

    assert len(as_text) == 2
    assert as_text == as_json


def test_mypy_fingerprint_survives_move(make_repo, python):
    repo = make_repo({"pyproject.toml": MYPY_CONFIG, "app.py": TYPE_ERRORS_PY})
    before = TypeCheckProbe().run(context(repo.root, python)).findings

    repo.write("app.py", '"""Doc."""\n\nX = 1\n\n' + TYPE_ERRORS_PY)
    after = TypeCheckProbe().run(context(repo.root, python)).findings

    assert [f.line for f in before] == [2, 5]
    assert [f.line for f in after] == [6, 9]
    assert [f.fingerprint for f in before] == [f.fingerprint for f in after]


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("mypy.ini", "[mypy]\nstrict = True\n"),
        (".mypy.ini", "[mypy]\nstrict = True\n"),
        ("setup.cfg", "[metadata]\nname = x\n\n[mypy]\nstrict = True\n"),
    ],
)
def test_mypy_config_files(make_repo, python, name, text):
    repo = make_repo({name: text, "app.py": TYPE_ERRORS_PY})

    result = TypeCheckProbe().run(context(repo.root, python))

    assert result.measurements[0].status is MeasurementStatus.OK
    assert result.measurements[0].value == 2


def test_mypy_not_installed(make_repo, tmp_path):
    repo = make_repo({"pyproject.toml": MYPY_CONFIG, "app.py": CLEAN_PY})
    python = bare_python(tmp_path / "bare")

    result = TypeCheckProbe().run(context(repo.root, python))

    measurement = result.measurements[0]
    assert measurement.status is MeasurementStatus.ERROR
    assert "mypy is configured but not installed" in measurement.reason


def test_mypy_python_missing(make_repo, tmp_path):
    repo = make_repo({"pyproject.toml": MYPY_CONFIG, "app.py": CLEAN_PY})
    ctx = context(repo.root, str(tmp_path / "no" / "python"))

    result = TypeCheckProbe().run(ctx)

    assert result.measurements[0].status is MeasurementStatus.ERROR
    assert TypeCheckProbe().cache_key(ctx) is None


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        ("[tool.mypy]\nwarn_unused_configs = 3\n", "rejected its configuration"),
        ('[tool.mypy]\npython_version = "2.7"\n', "no longer supports"),
        ("[tool.mypy\nstrict = true\n", "pyproject.toml is not valid TOML"),
    ],
)
def test_mypy_invalid_config(make_repo, python, config, reason):
    repo = make_repo({"pyproject.toml": config, "app.py": TYPE_ERRORS_PY})

    result = TypeCheckProbe().run(context(repo.root, python))

    measurement = result.measurements[0]
    assert measurement.status is MeasurementStatus.ERROR
    assert reason in measurement.reason
    assert result.findings == []


def test_mypy_syntax_error(make_repo, python):
    repo = make_repo({"pyproject.toml": MYPY_CONFIG, "bad.py": "x = (\n"})

    result = TypeCheckProbe().run(context(repo.root, python))

    assert result.measurements[0].status is MeasurementStatus.OK
    assert [f.rule_id for f in result.findings] == ["syntax"]
    assert result.findings[0].severity == "high"


def test_mypy_undecodable_files(make_repo, python):
    repo = make_repo(
        {
            "pyproject.toml": MYPY_CONFIG,
            "latin.py": b'X = "caf\xe9"\n',
            "blob.py": bytes(range(256)) * 4,
            "cookie.py": b'# -*- coding: latin-1 -*-\nX: str = "caf\xe9"\n',
            "app.py": TYPE_ERRORS_PY,
        }
    )

    result = TypeCheckProbe().run(context(repo.root, python))

    assert result.measurements[0].status is MeasurementStatus.OK
    decode = sorted(f.path for f in result.findings if f.rule_id == "decode-error")
    assert decode == ["blob.py", "latin.py"]
    checked = [f.path for f in result.findings if f.rule_id != "decode-error"]
    assert checked == ["app.py", "app.py"]


def test_typecheck_no_python_in_scope(make_repo, python):
    repo = make_repo({"pyproject.toml": MYPY_CONFIG, "app.py": TYPE_ERRORS_PY})

    result = TypeCheckProbe().run(context(repo.root, python, ["pyproject.toml"]))

    measurement = result.measurements[0]
    assert measurement.status is MeasurementStatus.OK
    assert measurement.value == 0
    assert measurement.details["note"] == "no files in scope"


def test_typecheck_cache_key_whole_tree(make_repo, python):
    repo = make_repo(
        {"pyproject.toml": MYPY_CONFIG, "app.py": CLEAN_PY, "lib/util.py": CLEAN_PY}
    )
    probe = TypeCheckProbe()
    first = probe.cache_key(context(repo.root, python, ["app.py"]))

    repo.write("lib/util.py", TYPE_ERRORS_PY)
    second = probe.cache_key(context(repo.root, python, ["app.py"]))

    assert first is not None
    assert first != second


def test_pyright_not_installed(make_repo, python):
    repo = make_repo({"pyrightconfig.json": PYRIGHT_CONFIG, "app.py": CLEAN_PY})

    result = TypeCheckProbe().run(context(repo.root, python))

    measurement = result.measurements[0]
    assert measurement.status is MeasurementStatus.ERROR
    assert "pyright is configured but not installed" in measurement.reason


def test_pyright_errors(make_repo, python, pyright_modules):
    files: dict[str, str | bytes] = {
        "pyrightconfig.json": PYRIGHT_CONFIG,
        ".gitignore": GITIGNORE,
        "pkg/mod.py": TYPE_ERRORS_PY,
        "ok.py": CLEAN_PY,
        "latin.py": b'X = "caf\xe9"\n',
    }
    repo = make_repo(files)
    link_node_modules(repo.root, pyright_modules)

    result = TypeCheckProbe().run(context(repo.root, python))

    measurement = result.measurements[0]
    found = [(f.path, f.line, f.rule_id, f.tool) for f in result.findings]
    assert measurement.status is MeasurementStatus.OK
    assert measurement.tool == "pyright"
    assert measurement.tool_version.startswith("1.1.")
    assert found == [
        ("pkg/mod.py", 2, "reportReturnType", "pyright"),
        ("pkg/mod.py", 5, "reportAssignmentType", "pyright"),
    ]

    repo.write("pkg/mod.py", "X = 1\n\n\n" + TYPE_ERRORS_PY)
    moved = TypeCheckProbe().run(context(repo.root, python)).findings

    assert [f.line for f in moved] == [5, 8]
    assert [f.fingerprint for f in moved] == [f.fingerprint for f in result.findings]


def test_pyright_invalid_config(make_repo, python, pyright_modules):
    files = {
        "pyrightconfig.json": '{"pythonVersion": ',
        ".gitignore": GITIGNORE,
        "app.py": CLEAN_PY,
    }
    repo = make_repo(files)
    link_node_modules(repo.root, pyright_modules)

    result = TypeCheckProbe().run(context(repo.root, python))

    measurement = result.measurements[0]
    assert measurement.status is MeasurementStatus.ERROR
    assert "pyright failed" in measurement.reason


def test_both_checkers(make_repo, python, pyright_modules):
    config = MYPY_CONFIG + '\n[tool.pyright]\npythonVersion = "3.11"\n'
    files = {
        "pyproject.toml": config,
        ".gitignore": GITIGNORE,
        "app.py": TYPE_ERRORS_PY,
    }
    repo = make_repo(files)
    link_node_modules(repo.root, pyright_modules)

    result = TypeCheckProbe().run(context(repo.root, python))

    measurement = result.measurements[0]
    assert measurement.tool == "mypy+pyright"
    assert measurement.value == 4
    assert measurement.details["mypy"] == 2
    assert measurement.details["pyright"] == 2
    assert "mypy " in measurement.tool_version
    assert "pyright " in measurement.tool_version
