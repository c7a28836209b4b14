"""Tests of the OSV probe on git repositories, offline databases and a local API."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

from _http import LocalServer, Request, Response, json_response, unused_url

from daw.models import MeasurementStatus
from daw.probes.base import ProbeContext, ProbeSettings
from daw.probes.osv import load_database
from daw.probes.sca import ScaProbe
from daw.stages import Stage

OSV_DATA = Path(__file__).parent.parent / "data" / "osv"

REQUIREMENTS = """\
PyYAML==5.3.1
requests==2.19.0
django==3.2.13
setuptools==70.0
"""


def context(repo, python: str, **settings) -> ProbeContext:
    files = tuple(sorted(repo.git("ls-files").split()))
    defaults = {"osv_api_url": None, "pypi_index_url": None}
    return ProbeContext(
        repo_root=repo.root,
        scan_root=repo.root,
        stage=Stage.COMMIT,
        files=files,
        python=python,
        settings=ProbeSettings(**{**defaults, **settings}),
    )


def osv_db(tmp_path: Path) -> Path:
    target = tmp_path / "osv-db"
    shutil.copytree(OSV_DATA, target)
    return target


def test_sca_findings_from_folder(make_repo, python, tmp_path) -> None:
    repo = make_repo({"requirements.txt": REQUIREMENTS})
    result = ScaProbe().run(context(repo, python, osv_db=osv_db(tmp_path)))
    findings = {f.rule_id: f for f in result.findings}

    (measurement,) = result.measurements
    assert measurement.status is MeasurementStatus.OK
    assert measurement.value == 3
    assert sorted(findings) == [
        "GHSA-8q59-q68h-6hv4",
        "GHSA-p64x-8rxx-wf6q",
        "GHSA-x84v-xcm2-53pg",
    ]
    pyyaml = findings["GHSA-8q59-q68h-6hv4"]
    assert pyyaml.message == (
        "pyyaml 5.3.1: GHSA-8q59-q68h-6hv4 (CVE-2020-14343, PYSEC-2021-142) "
        "fixed in 5.4"
    )
    assert (pyyaml.severity, pyyaml.score) == ("critical", 9.8)
    assert (pyyaml.path, pyyaml.line, pyyaml.category) == ("requirements.txt", 1, "sca")
    assert findings["GHSA-x84v-xcm2-53pg"].severity == "high"
    assert findings["GHSA-p64x-8rxx-wf6q"].message.endswith("fixed in 3.2.14")


def test_sca_details_carry_digest(make_repo, python, tmp_path) -> None:
    db = osv_db(tmp_path)
    repo = make_repo({"requirements.txt": REQUIREMENTS})
    probe = ScaProbe()
    ctx = context(repo, python, osv_db=db)
    (measurement,) = probe.run(ctx).measurements

    assert measurement.details["advisory_source"] == f"osv-db:{db}"
    assert measurement.details["advisory_modified"] == "2024-07-15T16:25:39Z"
    assert measurement.details["advisory_digest"] == load_database(db).digest
    assert measurement.details["dependencies"] == 4
    assert measurement.inputs_digest == probe.cache_key(ctx)
    assert measurement.tool == "osv"
    assert measurement.tool_version != ""


def test_sca_zip_database(make_repo, python, tmp_path) -> None:
    archive = tmp_path / "all.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in sorted(OSV_DATA.glob("*.json")):
            zipped.write(path, arcname=path.name)
    repo = make_repo({"requirements.txt": REQUIREMENTS})
    result = ScaProbe().run(context(repo, python, osv_db=archive))

    assert result.measurements[0].value == 3
    assert result.measurements[0].details["advisory_source"] == f"osv-db:{archive}"


def test_sca_fingerprint_ignores_line(make_repo, python, tmp_path) -> None:
    db = osv_db(tmp_path)
    first = make_repo({"requirements.txt": "PyYAML==5.3.1\n"})
    moved = make_repo({"requirements.txt": "# moved down\n\npyyaml==5.3.1\n"})
    (before,) = ScaProbe().run(context(first, python, osv_db=db)).findings
    (after,) = ScaProbe().run(context(moved, python, osv_db=db)).findings

    assert before.line == 1
    assert after.line == 3
    assert before.fingerprint == after.fingerprint


def test_sca_unresolved_is_finding(make_repo, python, tmp_path) -> None:
    requirements = (
        "requests==2.32.3\n"
        "-e git+https://user:s3cret@example.invalid/x.git#egg=x\n"
        "daw-not-installed-package>=1\n"
    )
    repo = make_repo({"requirements.txt": requirements})
    result = ScaProbe().run(context(repo, python, osv_db=osv_db(tmp_path)))
    findings = sorted(result.findings, key=lambda f: f.line or 0)

    assert result.measurements[0].status is MeasurementStatus.OK
    assert result.measurements[0].value == 2
    assert [f.rule_id for f in findings] == ["unresolved-dependency"] * 2
    assert [f.severity for f in findings] == ["unknown", "unknown"]
    assert "requirements.txt:2" in findings[0].message
    assert "s3cret" not in findings[0].message
    assert "daw-not-installed-package>=1 (requirements.txt:3)" in findings[1].message


def test_sca_unpinned_from_environment(make_repo, python, tmp_path) -> None:
    repo = make_repo({"requirements.txt": "packaging\n"})
    result = ScaProbe().run(context(repo, python, osv_db=osv_db(tmp_path)))

    (measurement,) = result.measurements
    assert measurement.status is MeasurementStatus.OK
    assert measurement.details["dependencies"] == 1
    assert measurement.details["unresolved"] == 0
    assert result.findings == []


def test_sca_no_dependencies_na(make_repo, python, tmp_path) -> None:
    repo = make_repo({"app.py": "print('hello')\n"})
    result = ScaProbe().run(context(repo, python, osv_db=osv_db(tmp_path)))

    (measurement,) = result.measurements
    assert measurement.status is MeasurementStatus.NOT_APPLICABLE
    assert measurement.reason == "no Python dependencies found"


def test_sca_invalid_manifest_error(make_repo, python, tmp_path) -> None:
    repo = make_repo({"requirements.txt": "requests==2.19.0\nfoo[bar==1\n"})
    result = ScaProbe().run(context(repo, python, osv_db=osv_db(tmp_path)))

    (measurement,) = result.measurements
    assert measurement.status is MeasurementStatus.ERROR
    assert measurement.reason.startswith("requirements.txt:2: invalid requirement")


def test_sca_no_advisory_source_error(make_repo, python) -> None:
    repo = make_repo({"requirements.txt": REQUIREMENTS})
    result = ScaProbe().run(context(repo, python))

    (measurement,) = result.measurements
    assert measurement.status is MeasurementStatus.ERROR
    assert measurement.reason.startswith("advisory data unavailable")
    assert "--osv-db PATH" in measurement.reason


def test_sca_missing_database_error(make_repo, python, tmp_path) -> None:
    repo = make_repo({"requirements.txt": REQUIREMENTS})
    result = ScaProbe().run(context(repo, python, osv_db=tmp_path / "missing"))

    (measurement,) = result.measurements
    assert measurement.status is MeasurementStatus.ERROR
    assert "not found" in measurement.reason


def osv_api(request: Request) -> Response:
    """The OSV API for the sample advisories, with matches stated by hand."""
    matches = {
        ("pyyaml", "5.3.1"): ["GHSA-8q59-q68h-6hv4", "PYSEC-2021-142"],
        ("requests", "2.19.0"): ["GHSA-x84v-xcm2-53pg"],
    }
    if request.path == "/v1/querybatch":
        results = []
        for query in request.json()["queries"]:
            found = matches.get((query["package"]["name"], query["version"]), [])
            results.append({"vulns": [{"id": i} for i in found]} if found else {})
        return json_response({"results": results})
    path = OSV_DATA / f"{request.path.removeprefix('/v1/vulns/')}.json"
    return Response(body=path.read_bytes())


def test_sca_api_findings(make_repo, python) -> None:
    repo = make_repo({"requirements.txt": REQUIREMENTS})
    with LocalServer(osv_api) as server:
        probe = ScaProbe()
        ctx = context(repo, python, osv_api_url=server.url)
        result = probe.run(ctx)
        key = probe.cache_key(ctx)

    (measurement,) = result.measurements
    assert measurement.status is MeasurementStatus.OK
    assert sorted(f.rule_id for f in result.findings) == [
        "GHSA-8q59-q68h-6hv4",
        "GHSA-x84v-xcm2-53pg",
    ]
    assert measurement.details["advisory_source"] == f"osv-api:{server.url}"
    assert measurement.details["advisory_modified"] == "2021-09-28T19:04:49Z"
    assert len(str(measurement.details["advisory_digest"])) == 64
    assert key is None


def test_sca_api_unreachable_error(make_repo, python) -> None:
    repo = make_repo({"requirements.txt": REQUIREMENTS})
    result = ScaProbe().run(context(repo, python, osv_api_url=unused_url()))

    (measurement,) = result.measurements
    assert measurement.status is MeasurementStatus.ERROR
    assert measurement.reason.startswith("advisory data unavailable: OSV API")
    assert "unreachable" in measurement.reason
    assert measurement.reason.endswith(
        "pass --osv-db PATH with an offline OSV database"
    )
    assert result.findings == []


def test_sca_database_preferred_over_api(make_repo, python, tmp_path) -> None:
    repo = make_repo({"requirements.txt": REQUIREMENTS})
    ctx = context(repo, python, osv_db=osv_db(tmp_path), osv_api_url=unused_url())
    result = ScaProbe().run(ctx)
    assert result.measurements[0].status is MeasurementStatus.OK


def test_sca_cache_key_changes(make_repo, python, tmp_path) -> None:
    db = osv_db(tmp_path)
    repo = make_repo({"requirements.txt": "PyYAML==5.3.1\n"})
    probe = ScaProbe()
    first = probe.cache_key(context(repo, python, osv_db=db))
    same = probe.cache_key(context(repo, python, osv_db=db))
    repo.write("requirements.txt", "PyYAML==5.4\n")
    repo.commit()
    bumped = probe.cache_key(context(repo, python, osv_db=db))
    record = json.loads((db / "GHSA-x84v-xcm2-53pg.json").read_text())
    record["modified"] = "2030-01-01T00:00:00Z"
    (db / "GHSA-x84v-xcm2-53pg.json").write_text(json.dumps(record))
    refreshed = probe.cache_key(context(repo, python, osv_db=db))

    assert first is not None
    assert first == same
    assert bumped != first
    assert refreshed != bumped
