"""Tests of OSV advisory loading and matching on real advisories from tests/data/osv."""

from __future__ import annotations

import copy
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from _http import LocalServer, Request, Response, json_response, unused_url

from daw.probes.osv import AdvisoryData, AdvisoryError, load_database, query_api

OSV_DATA = Path(__file__).parent.parent / "data" / "osv"
PYYAML_GHSA = "GHSA-8q59-q68h-6hv4"
PYYAML_PYSEC = "PYSEC-2021-142"
DJANGO_GHSA = "GHSA-p64x-8rxx-wf6q"
SETUPTOOLS_GHSA = "GHSA-cx63-2mw6-8hw5"
REQUESTS_GHSA = "GHSA-x84v-xcm2-53pg"


def record(vuln_id: str) -> dict[str, Any]:
    return json.loads((OSV_DATA / f"{vuln_id}.json").read_text(encoding="utf-8"))


def write_db(folder: Path, records: list[dict[str, Any]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for item in records:
        (folder / f"{item['id']}.json").write_text(json.dumps(item), encoding="utf-8")
    return folder


def write_zip(path: Path, records: list[dict[str, Any]]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for item in records:
            archive.writestr(f"{item['id']}.json", json.dumps(item))
    return path


def with_ranges(base: dict[str, Any], ranges: list[Any], **extra: Any) -> dict:
    """Return a copy of a real advisory with other ranges for its first package."""
    changed = copy.deepcopy(base)
    changed["id"] = "TEST-" + base["id"]
    changed["aliases"] = []
    changed["affected"] = [{**changed["affected"][0], "ranges": ranges, **extra}]
    if "versions" not in extra:
        changed["affected"][0].pop("versions", None)
    return changed


@pytest.fixture(scope="module")
def sample() -> AdvisoryData:
    return load_database(OSV_DATA)


def ids(data: AdvisoryData, name: str, version: str) -> list[str]:
    return [vuln.id for vuln in data.vulnerabilities(name, version)]


def test_match_name_normalised(sample: AdvisoryData) -> None:
    assert ids(sample, "pyyaml", "5.3.1") == [PYYAML_GHSA]
    assert ids(sample, "PyYAML", "5.3.1") == [PYYAML_GHSA]
    assert ids(sample, "py_yaml", "5.3.1") == []
    assert ids(sample, "pyyaml", "5.4") == []


def test_match_alias_merge(sample: AdvisoryData) -> None:
    (vuln,) = sample.vulnerabilities("pyyaml", "5.3.1")
    assert vuln.id == PYYAML_GHSA
    assert vuln.aliases == ("CVE-2020-14343", PYYAML_PYSEC)
    assert vuln.severity == "critical"
    assert vuln.score == 9.8
    assert vuln.fixed == ("5.4",)


def test_match_severity_from_alias_record(tmp_path: Path) -> None:
    # The GHSA record rates the flaw but does not match by itself, because its
    # ranges were removed; the PYSEC record that matches gets its severity.
    ghsa = record(PYYAML_GHSA)
    ghsa["affected"][0]["ranges"] = []
    data = load_database(write_db(tmp_path / "db", [ghsa, record(PYYAML_PYSEC)]))

    (vuln,) = data.vulnerabilities("pyyaml", "5.3.1")
    assert vuln.id == PYYAML_PYSEC
    assert PYYAML_GHSA in vuln.aliases
    assert vuln.severity == "critical"
    assert vuln.score == 9.8


def test_match_missing_severity_unknown(tmp_path: Path) -> None:
    data = load_database(write_db(tmp_path / "db", [record(PYYAML_PYSEC)]))

    (vuln,) = data.vulnerabilities("pyyaml", "5.3.1")
    assert vuln.id == PYYAML_PYSEC
    assert vuln.severity == "unknown"
    assert vuln.score is None
    assert vuln.aliases == ("CVE-2020-14343", PYYAML_GHSA)


@pytest.mark.parametrize(
    ("version", "affected"),
    [
        ("3.1.14", False),
        ("3.2", True),
        ("3.2.13", True),
        ("3.2.14", False),
        ("4.0", True),
        ("4.0.5", True),
        ("4.0.6", False),
        ("4.1", False),
    ],
)
def test_match_django_split_ranges(
    sample: AdvisoryData, version: str, affected: bool
) -> None:
    assert (ids(sample, "django", version) == [DJANGO_GHSA]) is affected


def test_match_django_fixed_in_own_range(sample: AdvisoryData) -> None:
    (old,) = sample.vulnerabilities("django", "3.2.13")
    (new,) = sample.vulnerabilities("django", "4.0.5")
    assert old.fixed == ("3.2.14",)
    assert new.fixed == ("4.0.6",)


@pytest.mark.parametrize(
    ("version", "affected"),
    [("69.5.1", True), ("70.0", False), ("70.0.0", False), ("70.0.0rc1", True)],
)
def test_match_setuptools_fixed_spelling(
    sample: AdvisoryData, version: str, affected: bool
) -> None:
    assert (ids(sample, "setuptools", version) == [SETUPTOOLS_GHSA]) is affected


def test_match_requests_high_not_critical(sample: AdvisoryData) -> None:
    (vuln,) = sample.vulnerabilities("requests", "2.19.0")
    assert vuln.severity == "high"
    assert vuln.score == 7.5
    assert vuln.fixed == ("2.20.0",)


def test_match_versions_list_only(tmp_path: Path) -> None:
    listed = with_ranges(record(PYYAML_PYSEC), [], versions=["5.3.1", "5.4b2"])
    data = load_database(write_db(tmp_path / "db", [listed]))

    assert ids(data, "pyyaml", "5.3.1") == [listed["id"]]
    assert ids(data, "pyyaml", "5.4b2") == [listed["id"]]
    assert ids(data, "pyyaml", "5.3") == []


def test_match_last_affected_inclusive(tmp_path: Path) -> None:
    events = [{"introduced": "2.0"}, {"last_affected": "2.19.1"}]
    rng = {"type": "ECOSYSTEM", "events": events}
    data = load_database(
        write_db(tmp_path / "db", [with_ranges(record(REQUESTS_GHSA), [rng])])
    )

    assert ids(data, "requests", "1.9") == []
    assert ids(data, "requests", "2.0") != []
    assert ids(data, "requests", "2.19.1") != []
    assert ids(data, "requests", "2.19.2") == []


def test_match_limit_event(tmp_path: Path) -> None:
    events = [{"introduced": "0"}, {"limit": "2.5"}]
    rng = {"type": "ECOSYSTEM", "events": events}
    data = load_database(
        write_db(tmp_path / "db", [with_ranges(record(REQUESTS_GHSA), [rng])])
    )

    assert ids(data, "requests", "2.4.9") != []
    assert ids(data, "requests", "2.5") == []


def test_match_semver_range(tmp_path: Path) -> None:
    events = [{"introduced": "1.2.0-beta.2"}, {"fixed": "1.10.0"}]
    rng = {"type": "SEMVER", "events": events}
    data = load_database(
        write_db(tmp_path / "db", [with_ranges(record(REQUESTS_GHSA), [rng])])
    )

    assert ids(data, "requests", "1.2.0-beta.1") == []
    assert ids(data, "requests", "1.2.0-beta.11") != []
    assert ids(data, "requests", "1.9.0") != []
    assert ids(data, "requests", "1.10.0") == []


def test_match_reintroduced_in_one_range(tmp_path: Path) -> None:
    events = [
        {"introduced": "0"},
        {"fixed": "1.0"},
        {"introduced": "2.0"},
        {"fixed": "2.1"},
    ]
    rng = {"type": "ECOSYSTEM", "events": events}
    data = load_database(
        write_db(tmp_path / "db", [with_ranges(record(REQUESTS_GHSA), [rng])])
    )

    assert ids(data, "requests", "0.9") != []
    assert ids(data, "requests", "1.5") == []
    assert ids(data, "requests", "2.0.1") != []
    assert ids(data, "requests", "2.1") == []


def test_match_withdrawn_ignored(tmp_path: Path) -> None:
    withdrawn = record(REQUESTS_GHSA)
    withdrawn["withdrawn"] = "2022-01-01T00:00:00Z"
    data = load_database(write_db(tmp_path / "db", [withdrawn]))
    assert ids(data, "requests", "2.19.0") == []


def test_match_other_ecosystem_ignored(tmp_path: Path) -> None:
    npm = record(REQUESTS_GHSA)
    npm["affected"][0]["package"]["ecosystem"] = "npm"
    data = load_database(write_db(tmp_path / "db", [npm]))
    assert ids(data, "requests", "2.19.0") == []


def test_load_zip_same_digest(tmp_path: Path, sample: AdvisoryData) -> None:
    records = [record(p.stem) for p in sorted(OSV_DATA.glob("*.json"))]
    data = load_database(write_zip(tmp_path / "all.zip", records))

    assert data.source == f"osv-db:{tmp_path / 'all.zip'}"
    assert len(data.advisories) == 5
    assert data.digest == sample.digest
    assert ids(data, "pyyaml", "5.3.1") == [PYYAML_GHSA]


def test_load_folder_with_zip_inside(tmp_path: Path) -> None:
    folder = tmp_path / "cache" / "PyPI"
    folder.mkdir(parents=True)
    write_zip(folder / "all.zip", [record(DJANGO_GHSA)])
    write_db(tmp_path / "cache" / "extra", [record(REQUESTS_GHSA)])

    data = load_database(tmp_path / "cache")
    assert ids(data, "django", "4.0.5") == [DJANGO_GHSA]
    assert ids(data, "requests", "2.19.0") == [REQUESTS_GHSA]


def test_load_modified_and_digest(sample: AdvisoryData, tmp_path: Path) -> None:
    changed = record(REQUESTS_GHSA)
    changed["summary"] = "changed"
    others = [
        record(p.stem) for p in OSV_DATA.glob("*.json") if p.stem != REQUESTS_GHSA
    ]
    data = load_database(write_db(tmp_path / "db", [*others, changed]))

    assert sample.modified == "2024-07-15T16:25:39Z"
    assert len(sample.digest) == 64
    assert data.digest != sample.digest


def test_load_duplicate_id_newest_kept(tmp_path: Path) -> None:
    old = record(REQUESTS_GHSA)
    new = copy.deepcopy(old)
    new["modified"] = "2030-01-01T00:00:00Z"
    new["withdrawn"] = "2030-01-01T00:00:00Z"
    write_db(tmp_path / "db" / "a", [old])
    write_db(tmp_path / "db" / "b", [new])

    data = load_database(tmp_path / "db")
    assert len(data.advisories) == 1
    assert ids(data, "requests", "2.19.0") == []


def test_load_missing_path(tmp_path: Path) -> None:
    with pytest.raises(AdvisoryError, match="not found"):
        load_database(tmp_path / "nothing")


def test_load_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "db").mkdir()
    with pytest.raises(AdvisoryError, match="no OSV advisories"):
        load_database(tmp_path / "db")


def test_load_invalid_json(tmp_path: Path) -> None:
    folder = write_db(tmp_path / "db", [record(REQUESTS_GHSA)])
    (folder / "broken.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(AdvisoryError, match="broken.json"):
        load_database(folder)


def test_load_record_without_id(tmp_path: Path) -> None:
    folder = tmp_path / "db"
    folder.mkdir()
    (folder / "x.json").write_text('{"affected": []}', encoding="utf-8")
    with pytest.raises(AdvisoryError, match="no string id"):
        load_database(folder)


def test_load_bad_zip(tmp_path: Path) -> None:
    (tmp_path / "all.zip").write_bytes(b"not a zip")
    with pytest.raises(AdvisoryError, match="cannot read OSV zip"):
        load_database(tmp_path / "all.zip")


# --- the OSV API ------------------------------------------------------------------


class FakeOsv:
    """Serves /v1/querybatch and /v1/vulns/{id} from real records, in the API's format.

    ``matches`` maps (name, version) to the ids the API would return: the test
    states them, so that the server does not reuse the matcher under test.
    """

    def __init__(self, matches: dict[tuple[str, str], list[str]], page_size: int = 10):
        self.matches = matches
        self.page_size = page_size

    def __call__(self, request: Request) -> Response:
        if request.method == "POST" and request.path == "/v1/querybatch":
            return json_response(
                {"results": [self._result(q) for q in request.json()["queries"]]}
            )
        if request.method == "GET" and request.path.startswith("/v1/vulns/"):
            vuln_id = request.path.removeprefix("/v1/vulns/")
            path = OSV_DATA / f"{vuln_id}.json"
            if path.is_file():
                return Response(body=path.read_bytes())
            return json_response({"code": 5, "message": "Bug not found."}, status=404)
        return json_response({"code": 5, "message": "Not found"}, status=404)

    def _result(self, query: dict[str, Any]) -> dict[str, Any]:
        key = (query["package"]["name"], query["version"])
        found = self.matches.get(key, [])
        start = int(query.get("page_token") or 0)
        page = found[start : start + self.page_size]
        result: dict[str, Any] = {}
        if page:
            result["vulns"] = [
                {"id": i, "modified": "2024-01-01T00:00:00Z"} for i in page
            ]
        if start + self.page_size < len(found):
            result["next_page_token"] = str(start + self.page_size)
        return result


API_MATCHES = {
    ("pyyaml", "5.3.1"): [PYYAML_GHSA, PYYAML_PYSEC],
    ("django", "3.2.13"): [DJANGO_GHSA],
}


def test_api_queries_and_merges() -> None:
    with LocalServer(FakeOsv(API_MATCHES)) as server:
        packages = [("pyyaml", "5.3.1"), ("django", "3.2.13"), ("requests", "2.32.3")]
        data = query_api(server.url, packages, timeout_s=5)
        posts = [r for r in server.requests if r.method == "POST"]

    assert data.source == f"osv-api:{server.url}"
    assert [v.id for v in data.vulnerabilities("PyYAML", "5.3.1")] == [PYYAML_GHSA]
    assert data.vulnerabilities("pyyaml", "5.3.1")[0].severity == "critical"
    assert [v.id for v in data.vulnerabilities("django", "3.2.13")] == [DJANGO_GHSA]
    assert data.vulnerabilities("requests", "2.32.3") == []
    assert len(posts) == 1
    assert posts[0].json()["queries"][0] == {
        "package": {"name": "django", "ecosystem": "PyPI"},
        "version": "3.2.13",
    }


def test_api_fetches_each_vuln_once() -> None:
    with LocalServer(FakeOsv(API_MATCHES)) as server:
        query_api(server.url, [("pyyaml", "5.3.1"), ("django", "3.2.13")], timeout_s=5)
        gets = sorted(r.path for r in server.requests if r.method == "GET")

    assert gets == [
        f"/v1/vulns/{PYYAML_GHSA}",
        f"/v1/vulns/{DJANGO_GHSA}",
        f"/v1/vulns/{PYYAML_PYSEC}",
    ]


def test_api_follows_page_tokens() -> None:
    with LocalServer(FakeOsv(API_MATCHES, page_size=1)) as server:
        data = query_api(server.url, [("pyyaml", "5.3.1")], timeout_s=5)
        posts = [r.json() for r in server.requests if r.method == "POST"]

    assert len(posts) == 2
    assert posts[1]["queries"][0]["page_token"] == "1"
    assert sorted(a.id for a in data.advisories) == [PYYAML_GHSA, PYYAML_PYSEC]


def test_api_digest_matches_database(tmp_path: Path) -> None:
    records = [record(PYYAML_GHSA), record(PYYAML_PYSEC)]
    offline = load_database(write_db(tmp_path / "db", records))
    with LocalServer(FakeOsv(API_MATCHES)) as server:
        online = query_api(server.url, [("pyyaml", "5.3.1")], timeout_s=5)

    assert online.digest == offline.digest
    assert online.modified == "2021-09-28T19:04:49Z"


def test_api_unreachable() -> None:
    with pytest.raises(AdvisoryError, match="unreachable"):
        query_api(unused_url(), [("pyyaml", "5.3.1")], timeout_s=2)


def test_api_server_error() -> None:
    handler = lambda request: json_response({"message": "boom"}, status=500)  # noqa: E731
    with LocalServer(handler) as server, pytest.raises(AdvisoryError, match="HTTP 500"):
        query_api(server.url, [("pyyaml", "5.3.1")], timeout_s=5)


def test_api_timeout() -> None:
    handler = lambda request: Response(body=b"{}", delay_s=2.0)  # noqa: E731
    with (
        LocalServer(handler) as server,
        pytest.raises(AdvisoryError, match="unreachable"),
    ):
        query_api(server.url, [("pyyaml", "5.3.1")], timeout_s=0.2)


def test_api_malformed_json() -> None:
    handler = lambda request: Response(body=b"<html>")  # noqa: E731
    with (
        LocalServer(handler) as server,
        pytest.raises(AdvisoryError, match="invalid JSON"),
    ):
        query_api(server.url, [("pyyaml", "5.3.1")], timeout_s=5)


def test_api_wrong_result_count() -> None:
    handler = lambda request: json_response({"results": []})  # noqa: E731
    with (
        LocalServer(handler) as server,
        pytest.raises(AdvisoryError, match="0 results"),
    ):
        query_api(server.url, [("pyyaml", "5.3.1")], timeout_s=5)


def test_api_missing_vuln_record() -> None:
    matches = {("pyyaml", "5.3.1"): ["GHSA-0000-0000-0000"]}
    with (
        LocalServer(FakeOsv(matches)) as server,
        pytest.raises(AdvisoryError, match="404"),
    ):
        query_api(server.url, [("pyyaml", "5.3.1")], timeout_s=5)


def test_api_no_packages_sends_nothing() -> None:
    with LocalServer(FakeOsv(API_MATCHES)) as server:
        data = query_api(server.url, [], timeout_s=5)
        count = len(server.requests)

    assert count == 0
    assert data.advisories == []
