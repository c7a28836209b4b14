"""Tests of the dependency-age probe against a local server in the PyPI JSON format."""

from __future__ import annotations

import hashlib
from typing import Any

from _http import LocalServer, Request, Response, json_response, unused_url

from daw.models import MeasurementStatus
from daw.probes.base import ProbeContext, ProbeSettings
from daw.probes.depage import DependencyAgeProbe
from daw.stages import Stage

# (version, upload time, yanked) for each release, as PyPI lists them.
RELEASES: dict[str, list[tuple[str, str, bool]]] = {
    "requests": [
        ("2.19.0", "2018-06-12T14:46:05.203658Z", False),
        ("2.31.0", "2023-05-22T15:12:42.313790Z", False),
        ("2.32.0", "2024-05-20T13:51:27.412011Z", True),
        ("2.32.3", "2024-05-29T15:37:47.146954Z", False),
        ("2.33.0", "2024-06-10T09:00:00.000000Z", True),
        ("3.0.0b1", "2025-01-10T12:00:00.000000Z", False),
    ],
    "pyyaml": [
        ("5.3.1", "2020-03-18T21:04:52.712309Z", False),
        ("6.0.2", "2024-08-06T20:31:40.491201Z", False),
    ],
    "django": [
        ("5.0.6", "2024-05-07T13:29:04.014385Z", False),
        ("5.1a1", "2024-05-22T15:05:14.562921Z", False),
        ("5.1rc1", "2024-07-22T10:00:22.901436Z", False),
    ],
}


def release_file(name: str, version: str, uploaded: str, yanked: bool) -> dict:
    filename = f"{name}-{version}-py3-none-any.whl"
    digest = hashlib.sha256(filename.encode()).hexdigest()
    return {
        "comment_text": "",
        "digests": {"blake2b_256": digest, "md5": digest[:32], "sha256": digest},
        "downloads": -1,
        "filename": filename,
        "has_sig": False,
        "md5_digest": digest[:32],
        "packagetype": "bdist_wheel",
        "python_version": "py3",
        "requires_python": ">=3.8",
        "size": 64928,
        "upload_time": uploaded[:19],
        "upload_time_iso_8601": uploaded,
        "url": f"https://files.pythonhosted.org/packages/{digest[:2]}/{filename}",
        "yanked": yanked,
        "yanked_reason": "regression" if yanked else None,
    }


def pypi_document(name: str) -> dict[str, Any]:
    releases = {
        version: [release_file(name, version, uploaded, yanked)]
        for version, uploaded, yanked in RELEASES[name]
    }
    latest = RELEASES[name][-1][0]
    return {
        "info": {"name": name, "version": latest, "summary": f"The {name} package"},
        "last_serial": 24046548,
        "releases": releases,
        "urls": releases[latest],
        "vulnerabilities": [],
    }


def pypi(request: Request) -> Response:
    parts = request.path.strip("/").split("/")
    known = len(parts) == 3 and parts[0] == "pypi" and parts[1] in RELEASES
    if known and parts[2] == "json":
        return json_response(pypi_document(parts[1]))
    return json_response({"message": "Not Found"}, status=404)


def context(repo, python: str, index: str | None) -> ProbeContext:
    files = tuple(sorted(repo.git("ls-files").split()))
    return ProbeContext(
        repo_root=repo.root,
        scan_root=repo.root,
        stage=Stage.COMMIT,
        files=files,
        python=python,
        settings=ProbeSettings(
            osv_api_url=None, pypi_index_url=index, network_timeout_s=5
        ),
    )


def run(repo, python: str, handler=pypi):
    with LocalServer(handler) as server:
        result = DependencyAgeProbe().run(context(repo, python, f"{server.url}/pypi"))
        paths = sorted(r.path for r in server.requests)
    return result, paths


def test_depage_outdated_finding(make_repo, python) -> None:
    repo = make_repo({"requirements.txt": "requests==2.19.0\nPyYAML==6.0.2\n"})
    result, paths = run(repo, python)

    (measurement,) = result.measurements
    assert measurement.status is MeasurementStatus.OK
    assert measurement.value == 1
    assert measurement.details["checked"] == 2
    (finding,) = result.findings
    assert finding.message == "requests 2.19.0 is 2,178 days behind 2.32.3"
    assert finding.value == 2178.0
    assert (finding.category, finding.rule_id) == (
        "dependency_age",
        "outdated-dependency",
    )
    assert (finding.severity, finding.path, finding.line) == (
        "low",
        "requirements.txt",
        1,
    )
    assert paths == ["/pypi/pyyaml/json", "/pypi/requests/json"]


def test_depage_current_no_finding(make_repo, python) -> None:
    repo = make_repo({"requirements.txt": "PyYAML==6.0.2\nrequests==2.32.3\n"})
    result, _ = run(repo, python)

    assert result.measurements[0].status is MeasurementStatus.OK
    assert result.measurements[0].value == 0
    assert result.findings == []


def test_depage_prerelease_in_use(make_repo, python) -> None:
    repo = make_repo({"requirements.txt": "django==5.1a1\n"})
    result, _ = run(repo, python)

    (finding,) = result.findings
    assert finding.message == "django 5.1a1 is 60 days behind 5.1rc1"
    assert finding.value == 60.0


def test_depage_stable_ignores_prerelease(make_repo, python) -> None:
    repo = make_repo({"requirements.txt": "django==5.0.6\n"})
    result, _ = run(repo, python)

    assert result.measurements[0].status is MeasurementStatus.OK
    assert result.findings == []


def test_depage_version_spelling(make_repo, python) -> None:
    # 2.32.3.0 is the same PEP 440 version as 2.32.3, so it is current.
    repo = make_repo({"requirements.txt": "requests==2.32.3.0\n"})
    result, _ = run(repo, python)

    assert result.measurements[0].status is MeasurementStatus.OK
    assert result.findings == []


def test_depage_fingerprint_ignores_line(make_repo, python) -> None:
    first = make_repo({"requirements.txt": "requests==2.19.0\n"})
    moved = make_repo({"requirements.txt": "PyYAML==6.0.2\nrequests==2.19.0\n"})
    (before,) = run(first, python)[0].findings
    (after,) = run(moved, python)[0].findings

    assert (before.line, after.line) == (1, 2)
    assert before.fingerprint == after.fingerprint


def test_depage_transitive_not_checked(make_repo, python) -> None:
    lock = """\
version = 1
requires-python = ">=3.11"

[[package]]
name = "urllib3"
version = "1.23"
source = { registry = "https://pypi.org/simple" }
"""
    pyproject = (
        '[project]\nname = "demo"\nversion = "0.1"\n'
        'dependencies = ["requests==2.32.3"]\n'
    )
    repo = make_repo({"pyproject.toml": pyproject, "uv.lock": lock})
    result, paths = run(repo, python)

    assert result.measurements[0].status is MeasurementStatus.OK
    assert paths == ["/pypi/requests/json"]


def test_depage_not_found_error(make_repo, python) -> None:
    repo = make_repo({"requirements.txt": "requests==2.19.0\ndaw-private-lib==1.0\n"})
    result, _ = run(repo, python)

    (measurement,) = result.measurements
    assert measurement.status is MeasurementStatus.ERROR
    assert measurement.reason.startswith(
        "1 of 2 direct dependencies could not be checked"
    )
    assert "daw-private-lib not found" in measurement.reason
    assert measurement.details["checked"] == 1
    assert measurement.details["failed"] == 1
    assert "failure:daw-private-lib 1.0" in measurement.details
    assert result.findings == []


def test_depage_version_not_listed_error(make_repo, python) -> None:
    repo = make_repo({"requirements.txt": "requests==9.9.9\n"})
    result, _ = run(repo, python)

    (measurement,) = result.measurements
    assert measurement.status is MeasurementStatus.ERROR
    assert "version 9.9.9 is not listed" in measurement.reason


def test_depage_malformed_json_error(make_repo, python) -> None:
    repo = make_repo({"requirements.txt": "requests==2.19.0\n"})
    result, _ = run(repo, python, lambda request: Response(body=b"<html>oops</html>"))

    (measurement,) = result.measurements
    assert measurement.status is MeasurementStatus.ERROR
    assert "invalid JSON" in measurement.reason


def test_depage_missing_releases_error(make_repo, python) -> None:
    repo = make_repo({"requirements.txt": "requests==2.19.0\n"})
    result, _ = run(repo, python, lambda request: json_response({"info": {}}))

    (measurement,) = result.measurements
    assert measurement.status is MeasurementStatus.ERROR
    assert "no releases object" in measurement.reason


def test_depage_unreachable_error(make_repo, python) -> None:
    repo = make_repo({"requirements.txt": "requests==2.19.0\n"})
    result = DependencyAgeProbe().run(context(repo, python, unused_url()))

    (measurement,) = result.measurements
    assert measurement.status is MeasurementStatus.ERROR
    assert "unreachable" in measurement.reason


def test_depage_no_index_error(make_repo, python) -> None:
    repo = make_repo({"requirements.txt": "requests==2.19.0\n"})
    result = DependencyAgeProbe().run(context(repo, python, None))

    (measurement,) = result.measurements
    assert measurement.status is MeasurementStatus.ERROR
    assert "no package index configured" in measurement.reason


def test_depage_no_direct_na(make_repo, python) -> None:
    repo = make_repo({"app.py": "print('hello')\n"})
    result = DependencyAgeProbe().run(context(repo, python, unused_url()))

    (measurement,) = result.measurements
    assert measurement.status is MeasurementStatus.NOT_APPLICABLE


def test_depage_cache_key_per_day(make_repo, python) -> None:
    repo = make_repo({"requirements.txt": "requests==2.19.0\n"})
    probe = DependencyAgeProbe()
    index = "http://127.0.0.1:8/pypi"
    first = probe.cache_key(context(repo, python, index))
    again = probe.cache_key(context(repo, python, index))
    repo.write("requirements.txt", "requests==2.20.0\n")
    changed = probe.cache_key(context(repo, python, index))
    other_index = probe.cache_key(context(repo, python, "http://127.0.0.1:9/pypi"))
    assert first is not None
    assert first == again
    assert changed != first
    assert other_index != changed
