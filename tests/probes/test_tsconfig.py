"""Tests of the tsconfig probe and its JSONC reader, checked against tsc 5."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from _lint_support import context, link_node_modules, npm_tools

from daw.git import export_index
from daw.models import MeasurementStatus
from daw.probes.tsconfig import (
    STRICT_FAMILY,
    JsoncError,
    Resolver,
    TsconfigProbe,
    key_lines,
    parse_jsonc,
    strip_jsonc,
)
from daw.stages import Stage

STRICT = '{\n  "compilerOptions": {\n    "strict": true\n  }\n}\n'
STRICT_WITH_COMMENTS = """{
  // https://www.typescriptlang.org/tsconfig
  "$schema": "https://json.schemastore.org/tsconfig",
  /* a block comment
     over two lines */
  "compilerOptions": {
    "strict": true, // trailing comment
    "outDir": "dist/*",
    "paths": {"@/*": ["./src/*",],},
  },
}
"""
GITIGNORE = "node_modules\n"
LOOSE_BASE = '{"compilerOptions": {"noImplicitThis": false}}'


@pytest.fixture(scope="session")
def typescript_modules() -> Path:
    """A node_modules folder with TypeScript 5 and @tsconfig/node20."""
    return npm_tools("typescript@5", "@tsconfig/node20@20")


def run_probe(root: Path, python: str, files: list[str] | None = None):
    return TsconfigProbe().run(context(root, python, files))


def test_jsonc_keeps_urls_and_escapes():
    text = '{"a": "http://x/y", "b": "q\\"//not a comment", "c": "/* no */"}'

    assert parse_jsonc(text) == {
        "a": "http://x/y",
        "b": 'q"//not a comment',
        "c": "/* no */",
    }


def test_jsonc_strips_comments_and_commas():
    data = parse_jsonc(STRICT_WITH_COMMENTS)

    assert data["compilerOptions"]["strict"] is True
    assert data["compilerOptions"]["paths"] == {"@/*": ["./src/*"]}
    assert data["$schema"] == "https://json.schemastore.org/tsconfig"


def test_jsonc_keeps_line_numbers():
    stripped = strip_jsonc(STRICT_WITH_COMMENTS)
    lines = key_lines(STRICT_WITH_COMMENTS)

    assert stripped.count("\n") == STRICT_WITH_COMMENTS.count("\n")
    assert lines[("compilerOptions",)] == 6
    assert lines[("compilerOptions", "strict")] == 7
    assert lines[("compilerOptions", "paths", "@/*")] == 9


def test_jsonc_error_line():
    with pytest.raises(JsoncError) as caught:
        parse_jsonc('{\n  "a": 1\n  "b": 2\n}\n')

    assert caught.value.line == 3


def test_jsonc_unterminated_comment():
    with pytest.raises(JsoncError) as caught:
        parse_jsonc('{\n  "a": 1 /* open\n}\n')

    assert caught.value.line == 2


def test_tsconfig_absent(make_repo, python):
    repo = make_repo({"index.ts": "export const x = 1;\n"})

    result = run_probe(repo.root, python)

    assert result.measurements[0].status is MeasurementStatus.NOT_APPLICABLE


def test_tsconfig_strict_clean(make_repo, python):
    repo = make_repo(
        {"tsconfig.json": STRICT_WITH_COMMENTS, "tsconfig.build.json": STRICT}
    )

    ctx = context(repo.root, python)
    result = TsconfigProbe().run(ctx)

    measurement = result.measurements[0]
    assert measurement.status is MeasurementStatus.OK
    assert measurement.value == 0
    assert measurement.details["files"] == 2
    assert measurement.inputs_digest == TsconfigProbe().cache_key(ctx)
    assert result.findings == []


def test_tsconfig_strict_missing(make_repo, python):
    text = '{\n  "compilerOptions": {\n    "target": "es2022"\n  }\n}\n'
    repo = make_repo({"web/tsconfig.json": text})

    result = run_probe(repo.root, python)

    assert result.measurements[0].value == 1
    finding = result.findings[0]
    assert finding.path == "web/tsconfig.json"
    assert finding.message == "strict is not enabled"
    assert finding.line == 2
    assert finding.severity == "high"
    assert finding.category == "tsconfig"
    assert finding.rule_id == "not-strict"


def test_tsconfig_strict_false_here(make_repo, python):
    text = (
        '{\n  "compilerOptions": {\n    "target": "es2022",\n'
        '    "strict": false\n  }\n}\n'
    )
    repo = make_repo({"tsconfig.json": text})

    finding = run_probe(repo.root, python).findings[0]

    assert finding.message == "strict is switched off in tsconfig.json (line 4)"
    assert finding.line == 4


def test_tsconfig_flag_off_in_base(make_repo, python):
    base = (
        '{\n  "compilerOptions": {\n    "strict": true,\n'
        '    "strictNullChecks": false\n  }\n}\n'
    )
    child = '{\n  "extends": "./base.json",\n  "compilerOptions": {}\n}\n'
    repo = make_repo(
        {"config/base.json": base, "tsconfig.json": child.replace("./", "./config/")}
    )

    finding = run_probe(repo.root, python).findings[0]

    assert finding.path == "tsconfig.json"
    assert finding.line == 2
    expected = "strictNullChecks is switched off in config/base.json (line 4)"
    assert finding.message == expected


def test_tsconfig_child_overrides_base(make_repo, python):
    base = '{"compilerOptions": {"strict": false, "noImplicitAny": false}}\n'
    child = json.dumps(
        {
            "extends": "./base",
            "compilerOptions": {"strict": True, "noImplicitAny": True},
        }
    )
    repo = make_repo({"base.json": base, "tsconfig.json": child})

    result = run_probe(repo.root, python, ["tsconfig.json"])

    assert result.findings == []


def test_tsconfig_several_causes(make_repo, python):
    text = (
        '{\n  "compilerOptions": {\n    "noImplicitAny": false,\n'
        '    "alwaysStrict": false\n  }\n}\n'
    )
    repo = make_repo({"tsconfig.json": text})

    finding = run_probe(repo.root, python).findings[0]

    assert finding.message == (
        "strict is not enabled and noImplicitAny is switched off in tsconfig.json "
        "(line 3) and alwaysStrict is switched off in tsconfig.json (line 4)"
    )
    assert finding.line == 3


def test_tsconfig_strict_not_boolean(make_repo, python):
    repo = make_repo({"tsconfig.json": '{"compilerOptions": {"strict": "true"}}'})

    finding = run_probe(repo.root, python).findings[0]

    expected = 'strict must be true but is "true" in tsconfig.json (line 1)'
    assert finding.message == expected


def test_tsconfig_option_names_case_sensitive(make_repo, python):
    text = '{"compilerOptions": {"strict": true, "StrictNullChecks": false}}'
    repo = make_repo({"tsconfig.json": text})

    assert run_probe(repo.root, python).findings == []


@pytest.mark.parametrize(
    ("order", "strict"),
    [(["./off.json", "./on.json"], True), (["./on.json", "./off.json"], False)],
)
def test_tsconfig_extends_array(make_repo, python, order, strict):
    files = {
        "on.json": '{"compilerOptions": {"strict": true}}',
        "off.json": '{"compilerOptions": {"strict": false}}',
        "tsconfig.json": json.dumps({"extends": order}),
    }
    repo = make_repo(files)

    result = run_probe(repo.root, python, ["tsconfig.json"])

    assert (result.findings == []) is strict


@pytest.mark.parametrize(
    ("spec", "manifest", "target"),
    [
        ("@acme/tsconfig", {"tsconfig": "base.json"}, "base.json"),
        ("@acme/tsconfig", {}, "tsconfig.json"),
        ("@acme/tsconfig/node", {}, "node.json"),
        ("@acme/tsconfig/dir", {}, "dir/tsconfig.json"),
        ("@acme/tsconfig/strict", {"exports": {"./strict": "./c/s.json"}}, "c/s.json"),
        ("@acme/tsconfig", {"exports": {".": {"default": "./e.json"}}}, "e.json"),
        ("acme-tsconfig/x", {}, "x.json"),
    ],
)
def test_tsconfig_extends_package(
    make_repo, python, typescript_modules, spec, manifest, target
):
    package = "acme-tsconfig" if spec.startswith("acme-") else "@acme/tsconfig"
    files = {
        ".gitignore": GITIGNORE,
        "index.ts": "export const x = 1;\n",
        "tsconfig.json": json.dumps({"extends": spec}),
        f"node_modules/{package}/package.json": json.dumps(
            {"name": package, **manifest}
        ),
        f"node_modules/{package}/{target}": LOOSE_BASE,
    }
    repo = make_repo(files)

    result = run_probe(repo.root, python, ["tsconfig.json"])
    tsc_options = tsc_show_config(typescript_modules, repo.root)

    assert tsc_options["noImplicitThis"] is False
    assert len(result.findings) == 1
    assert f"node_modules/{package}/{target}" in result.findings[0].message


def test_tsconfig_exports_hide_files(make_repo, python, typescript_modules):
    files = {
        ".gitignore": GITIGNORE,
        "index.ts": "export const x = 1;\n",
        "tsconfig.json": '{"extends": "@acme/tsconfig"}',
        "node_modules/@acme/tsconfig/package.json": '{"exports": {"./x": "./x.json"}}',
        "node_modules/@acme/tsconfig/tsconfig.json": STRICT,
    }
    repo = make_repo(files)

    finding = run_probe(repo.root, python, ["tsconfig.json"]).findings[0]
    with pytest.raises(subprocess.CalledProcessError) as caught:
        tsc_show_config(typescript_modules, repo.root)

    assert finding.rule_id == "extends-not-found"
    assert "TS6053" in caught.value.stdout


def test_tsconfig_extends_missing(make_repo, python):
    text = '{\n  "extends": "./nope.json",\n  "compilerOptions": {"strict": true}\n}\n'
    repo = make_repo({"tsconfig.json": text})

    result = run_probe(repo.root, python)

    finding = result.findings[0]
    assert result.measurements[0].status is MeasurementStatus.OK
    assert finding.rule_id == "extends-not-found"
    assert (
        finding.message == "extends target './nope.json' in tsconfig.json was not found"
    )
    assert finding.line == 2


def test_tsconfig_extends_cycle(make_repo, python):
    files = {
        "tsconfig.json": '{"extends": "./a.json"}',
        "a.json": '{\n  "extends": "./b.json"\n}\n',
        "b.json": '{\n\n  "extends": "./a"\n}\n',
    }
    repo = make_repo(files)

    finding = run_probe(repo.root, python, ["tsconfig.json"]).findings[0]

    assert finding.rule_id == "extends-cycle"
    assert (
        finding.message == "extends cycle: tsconfig.json -> a.json -> b.json -> a.json"
    )
    assert finding.line == 1


def test_tsconfig_self_extends(make_repo, python):
    repo = make_repo({"tsconfig.json": '{"extends": "./tsconfig.json"}'})

    finding = run_probe(repo.root, python).findings[0]

    assert finding.rule_id == "extends-cycle"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{\n  "compilerOptions": {\n    "strict": true\n  \n', "is not valid JSON"),
        (b'{"compilerOptions": {"strict": true, "x": "caf\xe9"}}', "not valid UTF-8"),
        (bytes(range(256)) * 4, "not valid UTF-8"),
        ("[1, 2]", "must contain a JSON object"),
        (
            '{"compilerOptions": []}',
            "compilerOptions in tsconfig.json must be an object",
        ),
        ('{"extends": 3}', "must be a string or an array of strings"),
    ],
)
def test_tsconfig_invalid(make_repo, python, content, expected):
    repo = make_repo({"tsconfig.json": content})

    result = run_probe(repo.root, python)

    assert result.measurements[0].status is MeasurementStatus.OK
    assert result.measurements[0].value == 1
    assert result.findings[0].rule_id == "invalid-tsconfig"
    assert expected in result.findings[0].message


def test_tsconfig_invalid_base(make_repo, python):
    files = {"tsconfig.json": '{"extends": "./base.json"}', "base.json": "{,}"}
    repo = make_repo(files)

    finding = run_probe(repo.root, python, ["tsconfig.json"]).findings[0]

    assert finding.rule_id == "invalid-tsconfig"
    assert finding.message.startswith("base.json is not valid JSON")
    assert finding.line == 1


def test_tsconfig_skips_vendored(make_repo, python):
    loose = '{"compilerOptions": {}}'
    files = {
        "node_modules/pkg/tsconfig.json": loose,
        "vendor/lib/tsconfig.json": loose,
        "tsconfig.json": STRICT,
        "tsconfig-like.txt": loose,
    }
    repo = make_repo(files)

    result = run_probe(repo.root, python, sorted(files))

    assert result.measurements[0].details["files"] == 1
    assert result.findings == []


def test_tsconfig_fingerprint_survives_move(make_repo, python):
    text = '{\n  "compilerOptions": {\n    "strict": false\n  }\n}\n'
    repo = make_repo({"tsconfig.json": text})
    before = run_probe(repo.root, python).findings[0]

    moved = text.replace("{\n", '{\n  "include": ["src"],\n\n', 1)
    repo.write("tsconfig.json", moved)
    after = run_probe(repo.root, python).findings[0]

    assert before.line == 3
    assert after.line == 5
    assert before.fingerprint == after.fingerprint


def test_tsconfig_fingerprint_base_move(make_repo, python):
    base = '{\n  "compilerOptions": {\n    "strictNullChecks": false\n  }\n}\n'
    files = {"tsconfig.json": '{"extends": "./base.json"}', "base.json": base}
    repo = make_repo(files)
    before = run_probe(repo.root, python, ["tsconfig.json"]).findings[0]

    repo.write("base.json", base.replace("{\n", '{\n  "files": [],\n', 1))
    after = run_probe(repo.root, python, ["tsconfig.json"]).findings[0]

    assert before.message != after.message
    assert before.fingerprint == after.fingerprint


def test_tsconfig_cache_key_follows_base(make_repo, python):
    files = {"tsconfig.json": '{"extends": "./base.json"}', "base.json": STRICT}
    repo = make_repo(files)
    probe = TsconfigProbe()
    first = probe.cache_key(context(repo.root, python, ["tsconfig.json"]))

    repo.write("base.json", '{"compilerOptions": {}}')
    second = probe.cache_key(context(repo.root, python, ["tsconfig.json"]))

    assert first is not None
    assert first != second


def test_tsconfig_commit_stage_packages(make_repo, python, tmp_path):
    base = '{"compilerOptions": {"strict": true, "alwaysStrict": false}}'
    files = {
        ".gitignore": GITIGNORE,
        "tsconfig.json": '{"extends": "@acme/base"}',
        "node_modules/@acme/base/tsconfig.json": base,
    }
    repo = make_repo(files)
    export = tmp_path / "export"
    export_index(repo.root, export)
    ctx = context(
        repo.root, python, ["tsconfig.json"], scan_root=export, stage=Stage.COMMIT
    )

    result = TsconfigProbe().run(ctx)

    assert not (export / "node_modules").exists()
    message = result.findings[0].message
    where = "node_modules/@acme/base/tsconfig.json (line 1)"
    assert message == f"alwaysStrict is switched off in {where}"


def effective_flags(options: dict) -> dict[str, bool]:
    """Return each strict-family flag's value as tsc applies it."""
    strict = options.get("strict") is True
    return {
        flag: bool(options.get(flag, strict)) for flag in ("strict", *STRICT_FAMILY)
    }


def tsc_show_config(node_modules: Path, root: Path) -> dict:
    proc = subprocess.run(
        [str(node_modules / ".bin" / "tsc"), "--showConfig", "-p", "tsconfig.json"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(proc.stdout)["compilerOptions"]


def test_tsconfig_resolution_matches_tsc(make_repo, python, typescript_modules):
    files = {
        ".gitignore": GITIGNORE,
        "index.ts": "export const x = 1;\n",
        "configs/base.json": (
            '{\n  // shared\n  "compilerOptions": {"noImplicitAny": false,},\n}'
        ),
        "configs/strictish.json": json.dumps(
            {"extends": "./base", "compilerOptions": {"strictNullChecks": False}}
        ),
        "tsconfig.json": json.dumps(
            {
                "extends": [
                    "@tsconfig/node20/tsconfig.json",
                    "./configs/strictish.json",
                ],
                "compilerOptions": {"noImplicitAny": True, "alwaysStrict": False},
            }
        ),
    }
    repo = make_repo(files)
    link_node_modules(repo.root, typescript_modules)

    expected = effective_flags(tsc_show_config(typescript_modules, repo.root))
    resolver = Resolver(repo.root, repo.root)
    ours = resolver.options(repo.root / "tsconfig.json")
    finding = run_probe(repo.root, python, ["tsconfig.json"]).findings[0]

    assert effective_flags({k: o.value for k, o in ours.items()}) == expected
    assert expected["strictNullChecks"] is False
    assert expected["alwaysStrict"] is False
    assert expected["noImplicitAny"] is True
    assert (
        "strictNullChecks is switched off in configs/strictish.json" in finding.message
    )
    assert "alwaysStrict is switched off in tsconfig.json" in finding.message
    assert "noImplicitAny" not in finding.message


def test_tsconfig_real_package_strict(make_repo, python, typescript_modules):
    files = {
        ".gitignore": GITIGNORE,
        "tsconfig.json": '{"extends": "@tsconfig/node20"}',
    }
    repo = make_repo(files)
    link_node_modules(repo.root, typescript_modules)

    result = run_probe(repo.root, python, ["tsconfig.json"])

    assert result.findings == []
