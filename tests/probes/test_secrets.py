"""Tests of the secrets probe with real detect-secrets runs on real git repos."""

from __future__ import annotations

import codecs
import hashlib
import json
import os
import subprocess
import time

import pytest

from daw.git import tracked_files
from daw.models import MeasurementStatus, fingerprint
from daw.probes import sast
from daw.probes.base import ProbeContext
from daw.probes.sast import batches
from daw.probes.secrets import BASELINE_NAME, UNSCANNED_RULE, SecretsProbe
from daw.stages import Stage

# Built from pieces so that this file itself contains no literal secret.
AWS_KEY = "AKIA" + "IOSFODNN7EXAMPLE"
PASSWORD = "Tr0ub4dor" + "-and-3-horses"

CONFIG = f"""\
import os

AWS_ACCESS_KEY_ID = "{AWS_KEY}"
"""

SETTINGS = f"""\
DEBUG = False
password = "{PASSWORD}"
"""


def make_ctx(repo, python: str, files: list[str] | None = None) -> ProbeContext:
    listed = files if files is not None else tracked_files(repo.root)
    return ProbeContext(
        repo_root=repo.root,
        scan_root=repo.root,
        stage=Stage.MERGE,
        files=tuple(sorted(listed)),
        python=python,
    )


def write_baseline(repo, python: str) -> dict:
    """Record the repository's current secrets with the real detect-secrets."""
    proc = subprocess.run(
        [python, "-m", "detect_secrets", "scan", "--no-verify"],
        cwd=repo.root,
        capture_output=True,
        text=True,
        check=True,
    )
    repo.write(BASELINE_NAME, proc.stdout)
    return json.loads(proc.stdout)


def by_rule(result) -> dict[str, object]:
    return {finding.rule_id: finding for finding in result.findings}


def test_secrets_aws_key_and_keyword(make_repo, python):
    repo = make_repo({"app/config.py": CONFIG, "settings.py": SETTINGS})

    result = SecretsProbe().run(make_ctx(repo, python))

    measurement = result.measurements[0]
    assert measurement.status is MeasurementStatus.OK
    assert measurement.metric == "secret"
    assert measurement.value == 2
    assert measurement.tool_version.startswith("1.")
    found = by_rule(result)
    aws = found["AWS Access Key"]
    assert aws.category == "secret"
    assert aws.severity == "high"
    assert aws.path == "app/config.py"
    assert aws.line == 3
    keyword = found["Secret Keyword"]
    assert keyword.path == "settings.py"
    assert keyword.line == 2


def test_secrets_values_never_stored(make_repo, python):
    repo = make_repo({"app/config.py": CONFIG, "settings.py": SETTINGS})

    result = SecretsProbe().run(make_ctx(repo, python))

    dumped = result.model_dump_json()
    assert len(result.findings) == 2
    assert AWS_KEY not in dumped
    assert PASSWORD not in dumped
    assert "AWS_ACCESS_KEY_ID" not in dumped
    for value in (AWS_KEY, PASSWORD):
        digest = hashlib.sha1(value.encode(), usedforsecurity=False).hexdigest()
        assert digest not in dumped


def test_secrets_message_names_type_only(make_repo, python):
    repo = make_repo({"settings.py": SETTINGS})

    result = SecretsProbe().run(make_ctx(repo, python))

    assert [f.message for f in result.findings] == [
        "possible secret of type 'Secret Keyword'"
    ]


def test_secrets_baseline_suppresses_known(make_repo, python):
    repo = make_repo({"app/config.py": CONFIG})
    write_baseline(repo, python)
    repo.write("settings.py", SETTINGS)
    repo.commit("add settings")

    result = SecretsProbe().run(make_ctx(repo, python))

    measurement = result.measurements[0]
    assert [f.rule_id for f in result.findings] == ["Secret Keyword"]
    assert measurement.value == 1
    assert measurement.details["suppressed_by_baseline"] == 1
    assert measurement.details["baseline"] is True


def test_secrets_baseline_other_file_not_suppressed(make_repo, python):
    repo = make_repo({"app/config.py": CONFIG})
    write_baseline(repo, python)
    repo.write("app/copy.py", CONFIG)
    repo.commit("copy the key")

    result = SecretsProbe().run(make_ctx(repo, python))

    assert [f.path for f in result.findings] == ["app/copy.py"]


def test_secrets_baseline_audit_flags(make_repo, python):
    repo = make_repo({"app/config.py": CONFIG, "settings.py": SETTINGS})
    baseline = write_baseline(repo, python)
    baseline["results"]["app/config.py"][0]["is_secret"] = False
    baseline["results"]["settings.py"][0]["is_secret"] = True
    repo.write(BASELINE_NAME, json.dumps(baseline))

    result = SecretsProbe().run(make_ctx(repo, python))

    measurement = result.measurements[0]
    assert [f.path for f in result.findings] == ["settings.py"]
    assert measurement.details["suppressed_by_baseline"] == 1
    assert measurement.details["baseline_confirmed"] == 1


def test_secrets_baseline_file_not_scanned(make_repo, python):
    repo = make_repo({"app/config.py": CONFIG})
    write_baseline(repo, python)
    repo.commit("add baseline")

    result = SecretsProbe().run(make_ctx(repo, python))

    assert result.findings == []
    assert result.measurements[0].details["files"] == 1


@pytest.mark.parametrize(
    "text",
    ["{not json", '{"version": "1.5.0"}', '{"results": {"a.py": [{"type": "x"}]}}'],
    ids=["invalid-json", "no-results", "entry-without-hash"],
)
def test_secrets_corrupt_baseline_is_error(make_repo, python, text):
    repo = make_repo({"settings.py": SETTINGS, BASELINE_NAME: text})

    result = SecretsProbe().run(make_ctx(repo, python))

    measurement = result.measurements[0]
    assert measurement.status is MeasurementStatus.ERROR
    assert BASELINE_NAME in measurement.reason
    assert result.findings == []


def test_secrets_fingerprint_survives_move(make_repo, python):
    repo = make_repo({"settings.py": SETTINGS})
    before = SecretsProbe().run(make_ctx(repo, python)).findings[0]
    repo.write("settings.py", "import os\n\n\n" + SETTINGS)
    repo.commit("move")

    after = SecretsProbe().run(make_ctx(repo, python)).findings[0]

    assert after.line == before.line + 3
    assert after.fingerprint == before.fingerprint


def test_secrets_fingerprint_differs_per_file(make_repo, python):
    repo = make_repo({"a.py": SETTINGS, "b.py": SETTINGS})

    result = SecretsProbe().run(make_ctx(repo, python))

    prints = {f.fingerprint for f in result.findings}
    assert len(result.findings) == 2
    assert len(prints) == 2


def test_secrets_tool_missing_is_error(make_repo, tmp_path):
    repo = make_repo({"settings.py": SETTINGS})
    missing = str(tmp_path / "no-such-python")

    result = SecretsProbe().run(make_ctx(repo, missing))

    measurement = result.measurements[0]
    assert measurement.status is MeasurementStatus.ERROR
    assert "no-such-python" in measurement.reason
    assert SecretsProbe().cache_key(make_ctx(repo, missing)) is None


def test_secrets_odd_files_do_not_crash(make_repo, python):
    repo = make_repo({"settings.py": SETTINGS})
    repo.write("blob.bin", b"\x00\xff\xfe\x89PNG\x00" + AWS_KEY.encode() + b"\x00")
    repo.write("latin1.txt", f"caf\xe9 = '{AWS_KEY}'\n".encode("latin-1"))
    with open(repo.root / "huge.log", "wb") as handle:
        handle.truncate(50 * 1024 * 1024)
    os.symlink("loop_b", repo.root / "loop_a")
    os.symlink("loop_a", repo.root / "loop_b")
    files = ["blob.bin", "huge.log", "latin1.txt", "loop_a", "loop_b", "settings.py"]

    started = time.monotonic()
    result = SecretsProbe().run(make_ctx(repo, python, files))
    elapsed = time.monotonic() - started

    measurement = result.measurements[0]
    assert elapsed < 30
    assert measurement.status is MeasurementStatus.OK
    assert [f.path for f in result.findings] == ["latin1.txt", "settings.py"]
    assert measurement.details["files"] == 2
    assert measurement.details["transcoded_not_utf8"] == 1
    assert measurement.details["skipped_binary"] == 2
    assert measurement.details["skipped_not_regular"] == 2
    assert measurement.details["unscanned_text"] == 0
    assert "huge.log" in measurement.reason
    assert "binary" in measurement.reason
    assert "latin1.txt" in measurement.reason
    assert "loop_a" in measurement.reason


def test_secrets_size_limit_reported(make_repo, python):
    repo = make_repo({"settings.py": SETTINGS})

    result = SecretsProbe(max_file_bytes=10).run(make_ctx(repo, python))

    measurement = result.measurements[0]
    assert [f.rule_id for f in result.findings] == [UNSCANNED_RULE]
    assert measurement.value == 1
    assert measurement.details["unscanned_text"] == 1
    assert "settings.py" in measurement.reason
    assert result.findings[0].message == (
        "settings.py was not scanned for secrets: larger than 10 bytes"
    )


def test_secrets_large_text_is_finding(make_repo, python):
    padding = "# padding line\n" * 80_000
    text = CONFIG + padding
    repo = make_repo({"big_cfg.py": text, "app.py": "x = 1\n"})

    result = SecretsProbe().run(make_ctx(repo, python))

    measurement = result.measurements[0]
    assert len(text) > 1024 * 1024
    assert measurement.status is MeasurementStatus.OK
    assert measurement.value == 1
    finding = result.findings[0]
    assert finding.category == "secret"
    assert finding.rule_id == UNSCANNED_RULE
    assert finding.severity == "high"
    assert finding.path == "big_cfg.py"
    assert finding.line is None
    assert finding.message == (
        "big_cfg.py was not scanned for secrets: larger than 1 MiB"
    )
    content_hash = hashlib.sha256(text.encode()).hexdigest()
    expected = fingerprint("detect-secrets", UNSCANNED_RULE, "big_cfg.py", content_hash)
    assert finding.fingerprint == expected
    assert AWS_KEY not in result.model_dump_json()


def test_secrets_large_text_fingerprint_tracks_content(make_repo, python):
    padding = "# padding line\n" * 80_000
    repo = make_repo({"big_cfg.py": CONFIG + padding})
    probe = SecretsProbe()
    before = probe.run(make_ctx(repo, python)).findings[0].fingerprint
    key_before = probe.cache_key(make_ctx(repo, python))
    same_size = CONFIG.replace("AKIA", "AKIB") + padding
    repo.write("big_cfg.py", same_size)

    after = probe.run(make_ctx(repo, python)).findings[0].fingerprint
    key_after = probe.cache_key(make_ctx(repo, python))

    assert len(same_size) == len(CONFIG + padding)
    assert before != after
    assert key_before != key_after


def test_secrets_latin1_scanned_at_line(make_repo, python):
    text = f"# caf\xe9 \x85 \x81\n\nAWS_ACCESS_KEY_ID = '{AWS_KEY}'\n"
    repo = make_repo({"legacy.py": text.encode("latin-1")})

    result = SecretsProbe().run(make_ctx(repo, python))

    measurement = result.measurements[0]
    assert [f.rule_id for f in result.findings] == ["AWS Access Key"]
    assert result.findings[0].path == "legacy.py"
    assert result.findings[0].line == 3
    assert measurement.details["transcoded_not_utf8"] == 1
    assert measurement.details["unscanned_text"] == 0
    assert AWS_KEY not in result.model_dump_json()


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32"])
def test_secrets_utf16_scanned(make_repo, python, encoding):
    text = f"name = 'x'\nAWS_ACCESS_KEY_ID = '{AWS_KEY}'\n"
    data = text.encode(encoding)
    if encoding == "utf-16-be":
        data = codecs.BOM_UTF16_BE + data
    repo = make_repo({"wide.txt": data})

    result = SecretsProbe().run(make_ctx(repo, python))

    assert [f.rule_id for f in result.findings] == ["AWS Access Key"]
    assert result.findings[0].line == 2
    assert result.measurements[0].details["skipped_binary"] == 0
    assert AWS_KEY not in result.model_dump_json()


def test_secrets_latin1_baseline_applies(make_repo, python):
    text = f"caf\xe9 = '{AWS_KEY}'\n".encode("latin-1")
    repo = make_repo({"legacy.py": text})
    baseline = SecretsProbe().run(make_ctx(repo, python))
    hashed = hashlib.sha1(AWS_KEY.encode(), usedforsecurity=False).hexdigest()
    entry = {"type": baseline.findings[0].rule_id, "hashed_secret": hashed}
    repo.write(BASELINE_NAME, json.dumps({"results": {"legacy.py": [entry]}}))

    result = SecretsProbe().run(make_ctx(repo, python))

    assert result.findings == []
    assert result.measurements[0].details["suppressed_by_baseline"] == 1


def test_secrets_binary_skipped_without_finding(make_repo, python):
    large = b"\x00" + AWS_KEY.encode() + b"\n" * (2 * 1024 * 1024)
    small = b"\xff\x00" + AWS_KEY.encode()
    repo = make_repo({"data.bin": large, "icon.bin": small})

    result = SecretsProbe().run(make_ctx(repo, python))

    measurement = result.measurements[0]
    assert result.findings == []
    assert measurement.details["skipped_binary"] == 2
    assert "skipped 2 binary files" in measurement.reason


def test_secrets_many_batches(make_repo, python, monkeypatch):
    files = {f"pkg/mod{n:02}.py": f'password = "{PASSWORD}{n}"\n' for n in range(12)}
    repo = make_repo(files)
    monkeypatch.setattr(sast, "MAX_ARGUMENT_CHARS", 40)

    result = SecretsProbe().run(make_ctx(repo, python))

    assert len(result.findings) == 12
    assert sorted(f.path for f in result.findings) == sorted(files)


def test_secrets_cache_key_tracks_content(make_repo, python):
    repo = make_repo({"settings.py": SETTINGS})
    probe = SecretsProbe()
    first = probe.cache_key(make_ctx(repo, python))
    same = probe.cache_key(make_ctx(repo, python))
    repo.write("settings.py", SETTINGS + "x = 1\n")

    changed = probe.cache_key(make_ctx(repo, python))

    assert first == same
    assert first != changed
    assert SecretsProbe().run(make_ctx(repo, python)).measurements[0].inputs_digest


def test_batches_bounded_by_characters():
    paths = [f"folder/file{n:04}.py" for n in range(1000)]

    chunks = list(batches(paths, max_chars=2000))

    assert [p for chunk in chunks for p in chunk] == paths
    assert len(chunks) > 1
    assert all(sum(len(p) + 1 for p in chunk) <= 2000 for chunk in chunks)


def test_batches_long_path_alone():
    long_path = "x" * 50

    assert list(batches([long_path, "a"], max_chars=10)) == [[long_path], ["a"]]


def test_secrets_repo_module_not_run(make_repo, python):
    spoof = 'print("{}")\n'
    repo = make_repo(
        {
            "detect_secrets/__init__.py": "",
            "detect_secrets/__main__.py": spoof,
            "settings.py": SETTINGS,
        }
    )

    result = SecretsProbe().run(make_ctx(repo, python))

    assert result.measurements[0].status is MeasurementStatus.OK
    assert [f.path for f in result.findings] == ["settings.py"]
