"""OSV advisories: loading from an offline database or the osv.dev API, and matching.

Matching follows the OSV schema (https://ossf.github.io/osv-schema/): a version is
affected when an ``affected`` entry for its package lists it in ``versions`` or
one of its ECOSYSTEM or SEMVER ranges contains it. GIT ranges are not evaluated.
Advisories that alias each other are merged into one vulnerability.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from daw.probes.cvss import CvssError, base_score
from daw.redact import redact

log = logging.getLogger(__name__)

ECOSYSTEM = "PyPI"

SEVERITY_RANK = {"unknown": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}

# database_specific.severity labels: GitHub writes MODERATE, other databases MEDIUM.
_LABELS = {
    "CRITICAL": "critical",
    "HIGH": "high",
    "MODERATE": "medium",
    "MEDIUM": "medium",
    "LOW": "low",
}

# NOTE: 1000 queries per querybatch request is a guess at osv.dev's batch limit,
# not checked against its documentation. A smaller value only costs more requests.
_API_BATCH_SIZE = 1000
_API_MAX_PAGES = 100
_API_WORKERS = 8

_SEMVER = re.compile(
    r"^v?(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)\.(?P<patch>0|[1-9]\d*)"
    r"(?:-(?P<pre>[0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$"
)


class AdvisoryError(Exception):
    """Advisory data could not be loaded from a database or the API."""


@dataclass(frozen=True)
class Advisory:
    """One OSV record: its id, aliases, ``modified`` timestamp and the full JSON."""

    id: str
    aliases: tuple[str, ...]
    modified: str
    record: dict[str, Any]

    @property
    def withdrawn(self) -> bool:
        return bool(self.record.get("withdrawn"))

    def entries_for(self, name: str) -> list[dict[str, Any]]:
        """Return the ``affected`` entries for PyPI package ``name`` (normalised)."""
        return [
            entry
            for entry in self.record.get("affected") or []
            if isinstance(entry, dict) and _package_name(entry) == name
        ]


@dataclass(frozen=True)
class Vulnerability:
    """Advisories about one flaw in one package, merged through their aliases.

    ``id`` is the preferred id among the matched records: GHSA, then PYSEC, then
    any other, CVE last. ``aliases`` are the other ids and aliases of the group.
    ``score`` is the highest CVSS base score among the records. ``fixed`` are the
    versions that fix the version in use, lowest first.
    """

    id: str
    aliases: tuple[str, ...]
    severity: str
    score: float | None
    fixed: tuple[str, ...]


@dataclass
class AdvisoryData:
    """The advisories loaded from one source, indexed by package name.

    ``source`` is ``osv-db:<path>`` or ``osv-api:<url>``. ``api_matches`` maps
    (name, version) to the ids the API returned; it is None for a database, whose
    advisories are matched here.
    """

    source: str
    advisories: list[Advisory]
    api_matches: dict[tuple[str, str], list[str]] | None = None
    _by_id: dict[str, Advisory] = field(default_factory=dict, init=False)
    _by_name: dict[str, list[Advisory]] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        for advisory in self.advisories:
            self._by_id[advisory.id] = advisory
            for name in {
                _package_name(e) for e in advisory.record.get("affected") or []
            }:
                if name:
                    self._by_name.setdefault(name, []).append(advisory)

    @property
    def modified(self) -> str | None:
        """The newest ``modified`` timestamp among the advisories, as written."""
        stamps = [a.modified for a in self.advisories if a.modified]
        return max(stamps, key=_timestamp_key) if stamps else None

    @property
    def digest(self) -> str:
        """A sha256 over the canonical JSON of every advisory, in id order."""
        digest = hashlib.sha256()
        for advisory in sorted(self.advisories, key=lambda a: a.id):
            canonical = json.dumps(
                advisory.record,
                sort_keys=True,
                separators=(",", ":"),
                ensure_ascii=False,
            )
            digest.update(advisory.id.encode() + b"\0" + canonical.encode() + b"\0")
        return digest.hexdigest()

    def vulnerabilities(self, name: str, version: str) -> list[Vulnerability]:
        """Return the merged vulnerabilities of ``name`` at ``version``, by id."""
        name = canonicalize_name(name)
        if self.api_matches is None:
            candidates = self._by_name.get(name, [])
            matched = [a for a in candidates if is_affected(a, name, version)]
        else:
            ids = self.api_matches.get((name, version), [])
            matched = [self._by_id[i] for i in ids if i in self._by_id]
        matched = [a for a in matched if not a.withdrawn]
        groups = _alias_groups(matched)
        merged = [self._merge(name, version, group) for group in groups]
        return sorted(merged, key=lambda v: v.id)

    def _merge(self, name: str, version: str, group: list[Advisory]) -> Vulnerability:
        ids = {a.id for a in group} | {alias for a in group for alias in a.aliases}
        primary = min((a.id for a in group), key=_id_preference)
        # Severity may sit on an alias record that did not match by itself.
        rated = group + [self._by_id[i] for i in sorted(ids) if i in self._by_id]
        severity, score = _severity(rated, name)
        return Vulnerability(
            id=primary,
            aliases=tuple(sorted(ids - {primary})),
            severity=severity,
            score=score,
            fixed=_fixed_versions(group, name, version),
        )


# --- loading ----------------------------------------------------------------------


def load_database(path: Path) -> AdvisoryData:
    """Load every OSV JSON file under folder ``path``, or in the zip file ``path``.

    A folder is searched recursively for ``*.json`` files and ``*.zip`` archives
    such as the ``PyPI/all.zip`` that osv.dev publishes. Raises AdvisoryError when
    the path is missing, a file is not an OSV record, or no advisory is found.
    """
    if not path.exists():
        raise AdvisoryError(f"OSV database {path} not found")

    records: list[tuple[str, bytes]] = []
    if path.is_dir():
        for file in sorted(path.rglob("*")):
            if file.suffix == ".json" and file.is_file():
                records.append((str(file), _read_bytes(file)))
            elif file.suffix == ".zip" and file.is_file():
                records.extend(_read_zip(file))
    else:
        records.extend(_read_zip(path))

    advisories = _unique([_parse_record(label, raw) for label, raw in records])
    if not advisories:
        raise AdvisoryError(f"no OSV advisories found in {path}")
    log.info("loaded %d advisories from %s", len(advisories), path)
    return AdvisoryData(source=f"osv-db:{path}", advisories=advisories)


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise AdvisoryError(f"cannot read OSV record {path}: {exc.strerror}") from exc


def _read_zip(path: Path) -> list[tuple[str, bytes]]:
    try:
        with zipfile.ZipFile(path) as archive:
            names = sorted(n for n in archive.namelist() if n.endswith(".json"))
            return [(f"{path}:{name}", archive.read(name)) for name in names]
    except (zipfile.BadZipFile, OSError) as exc:
        raise AdvisoryError(f"cannot read OSV zip {path}: {exc}") from exc


def _parse_record(label: str, raw: bytes) -> Advisory:
    try:
        record = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AdvisoryError(f"invalid JSON in OSV record {label}: {exc}") from exc
    if not isinstance(record, dict) or not isinstance(record.get("id"), str):
        raise AdvisoryError(f"{label} is not an OSV record: it has no string id")

    aliases = record.get("aliases") or []
    modified = record.get("modified")
    return Advisory(
        id=record["id"],
        aliases=tuple(a for a in aliases if isinstance(a, str)),
        modified=modified if isinstance(modified, str) else "",
        record=record,
    )


def _unique(advisories: list[Advisory]) -> list[Advisory]:
    """Keep one record per id: the most recently modified, else the first read."""
    chosen: dict[str, Advisory] = {}
    for advisory in advisories:
        known = chosen.get(advisory.id)
        newer = known is None or (
            _timestamp_key(advisory.modified) > _timestamp_key(known.modified)
        )
        if newer:
            chosen[advisory.id] = advisory
    return list(chosen.values())


def query_api(
    url: str, packages: Iterable[tuple[str, str]], timeout_s: float
) -> AdvisoryData:
    """Ask the OSV API at ``url`` which advisories affect each (name, version).

    Sends POST /v1/querybatch, then GET /v1/vulns/{id} for each advisory found.
    Raises AdvisoryError when the API is unreachable, times out, responds with an
    HTTP error status or returns malformed JSON.
    """
    base = url.rstrip("/")
    wanted = sorted(set(packages))
    matches: dict[tuple[str, str], list[str]] = {}
    for start in range(0, len(wanted), _API_BATCH_SIZE):
        chunk = wanted[start : start + _API_BATCH_SIZE]
        matches.update(_query_batch(base, chunk, timeout_s))

    ids = sorted({i for found in matches.values() for i in found})
    with ThreadPoolExecutor(max_workers=_API_WORKERS) as pool:
        raws = list(pool.map(lambda i: _fetch_vuln(base, i, timeout_s), ids))
    advisories = [
        _parse_record(f"{base}/v1/vulns/{i}", raw)
        for i, raw in zip(ids, raws, strict=True)
    ]
    return AdvisoryData(
        source=f"osv-api:{redact(base)}", advisories=advisories, api_matches=matches
    )


def _query_batch(
    base: str, packages: list[tuple[str, str]], timeout_s: float
) -> dict[tuple[str, str], list[str]]:
    found: dict[tuple[str, str], list[str]] = {pkg: [] for pkg in packages}
    tokens: dict[tuple[str, str], str | None] = {pkg: None for pkg in packages}
    for _ in range(_API_MAX_PAGES):
        pending = list(tokens)
        queries = [
            _query(name, version, tokens[(name, version)]) for name, version in pending
        ]
        body = json.dumps({"queries": queries}).encode()
        response = _json_request(f"{base}/v1/querybatch", timeout_s, body)
        results = response.get("results") if isinstance(response, dict) else None
        if not isinstance(results, list) or len(results) != len(pending):
            raise AdvisoryError(
                f"OSV API {redact(base)} returned a querybatch response with "
                f"{len(results) if isinstance(results, list) else 'no'} results "
                f"for {len(pending)} queries"
            )
        tokens = {}
        for pkg, result in zip(pending, results, strict=True):
            found[pkg].extend(_result_ids(result, base))
            token = result.get("next_page_token") if isinstance(result, dict) else None
            if token:
                tokens[pkg] = token
        if not tokens:
            return {pkg: sorted(set(ids)) for pkg, ids in found.items()}
    raise AdvisoryError(
        f"OSV API {redact(base)} returned more than {_API_MAX_PAGES} pages"
    )


def _query(name: str, version: str, token: str | None) -> dict[str, Any]:
    query: dict[str, Any] = {
        "package": {"name": name, "ecosystem": ECOSYSTEM},
        "version": version,
    }
    if token:
        query["page_token"] = token
    return query


def _result_ids(result: Any, base: str) -> list[str]:
    vulns = result.get("vulns", []) if isinstance(result, dict) else None
    if not isinstance(vulns, list):
        raise AdvisoryError(f"OSV API {redact(base)} returned a malformed result")
    ids = [v.get("id") for v in vulns if isinstance(v, dict)]
    if not all(isinstance(i, str) for i in ids):
        raise AdvisoryError(f"OSV API {redact(base)} returned a result without ids")
    return ids


def _fetch_vuln(base: str, vuln_id: str, timeout_s: float) -> bytes:
    url = f"{base}/v1/vulns/{urllib.parse.quote(vuln_id, safe='')}"
    return _request(url, timeout_s, None)


def _json_request(url: str, timeout_s: float, body: bytes | None) -> Any:
    raw = _request(url, timeout_s, body)
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AdvisoryError(
            f"OSV API {redact(url)} returned invalid JSON: {exc}"
        ) from exc


def _request(url: str, timeout_s: float, body: bytes | None) -> bytes:
    headers = {"Accept": "application/json", "User-Agent": "daw-osv"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    if not url.startswith(("http://", "https://")):
        raise AdvisoryError(f"invalid OSV API URL {redact(url)}: use http or https")
    request = urllib.request.Request(url, data=body, headers=headers)
    try:
        # The scheme was checked above, so urlopen cannot read a local file.
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310  # nosec B310
            return response.read()
    except urllib.error.HTTPError as exc:
        exc.close()
        raise AdvisoryError(
            f"OSV API {redact(url)} responded with HTTP {exc.code}"
        ) from exc
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise AdvisoryError(f"OSV API {redact(url)} unreachable: {reason}") from exc


# --- matching ---------------------------------------------------------------------


def is_affected(advisory: Advisory, name: str, version: str) -> bool:
    """Return whether ``advisory`` affects PyPI package ``name`` at ``version``.

    ``name`` must be PEP 503 normalised.

    Withdrawn advisories are not filtered here.
    """
    for entry in advisory.entries_for(name):
        if _listed(entry, version):
            return True
        for rng in entry.get("ranges") or []:
            if _in_range(rng, version):
                return True
    return False


def _listed(entry: dict[str, Any], version: str) -> bool:
    parsed = _pep440(version)
    for listed in entry.get("versions") or []:
        if not isinstance(listed, str):
            continue
        if listed == version or (parsed is not None and _pep440(listed) == parsed):
            return True
    return False


def _in_range(rng: dict[str, Any], version: str) -> bool:
    """Evaluate one ECOSYSTEM or SEMVER range with the algorithm of the OSV schema."""
    key = _key_function(rng.get("type"))
    if key is None:
        return False
    current = key(version)
    events = _sorted_events(rng.get("events") or [], key)
    if current is None or events is None:
        log.debug("cannot compare %s with range %s", version, rng)
        return False

    affected = False
    limits = []
    for kind, bound in events:
        if kind == "limit":
            limits.append(bound)
        elif kind == "introduced":
            affected = affected or _at_least(current, bound)
        elif _closes(kind, current, bound):
            affected = False
    return affected and (not limits or any(not _at_least(current, b) for b in limits))


_EVENT_ORDER = {"introduced": 0, "fixed": 1, "last_affected": 2, "limit": 3}

# A bound is (rank, version key): rank 0 is ``introduced: "0"``, lower than every
# version, rank 2 is ``limit: "*"``, higher than every version, rank 1 all others.
_Bound = tuple[int, Any]


def _sorted_events(events: list[Any], key: Any) -> list[tuple[str, _Bound]] | None:
    """Return (kind, bound) sorted by bound, or None if an event is invalid."""
    parsed: list[tuple[str, _Bound]] = []
    for event in events:
        if not isinstance(event, dict) or len(event) != 1:
            return None
        ((kind, raw),) = event.items()
        if kind not in _EVENT_ORDER or not isinstance(raw, str):
            return None
        if raw == "0" and kind == "introduced":
            parsed.append((kind, (0, None)))
        elif raw == "*" and kind == "limit":
            parsed.append((kind, (2, None)))
        elif (value := key(raw)) is not None:
            parsed.append((kind, (1, value)))
        else:
            return None
    return sorted(parsed, key=_event_sort_key)


def _event_sort_key(event: tuple[str, _Bound]) -> tuple[int, Any, int]:
    kind, (rank, value) = event
    # Ranks 0 and 2 have no value, so the event kind alone orders them.
    return (rank, value if rank == 1 else 0, _EVENT_ORDER[kind])


def _closes(kind: str, current: Any, bound: _Bound) -> bool:
    """Return whether a ``fixed`` or ``last_affected`` event excludes ``current``."""
    if kind == "fixed":
        return _at_least(current, bound)
    return not _at_most(current, bound)


def _at_least(current: Any, bound: _Bound) -> bool:
    rank, value = bound
    return rank == 0 or (rank == 1 and current >= value)


def _at_most(current: Any, bound: _Bound) -> bool:
    rank, value = bound
    return rank == 2 or (rank == 1 and current <= value)


def _key_function(range_type: Any) -> Any:
    if range_type == "ECOSYSTEM":
        return _pep440
    if range_type == "SEMVER":
        return _semver
    return None


def _pep440(version: str) -> Version | None:
    try:
        return Version(version)
    except InvalidVersion:
        return None


def _semver(version: str) -> tuple[Any, ...] | None:
    """Return a key ordering versions by SemVer 2.0 precedence, or None if invalid."""
    match = _SEMVER.match(version)
    if match is None:
        return None
    core = (int(match["major"]), int(match["minor"]), int(match["patch"]))
    pre = match["pre"]
    if pre is None:
        return (core, 1, ())
    # Numeric identifiers sort before alphanumeric ones, and numerically.
    identifiers = tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part)
        for part in pre.split(".")
    )
    return (core, 0, identifiers)


def _fixed_versions(group: list[Advisory], name: str, version: str) -> tuple[str, ...]:
    """Return the ``fixed`` versions above ``version``, lowest first.

    Ranges that contain ``version`` are used first, so that django 3.2.13 is fixed
    in 3.2.14 and not also in 4.0.6. Every range is used when none contains it.
    """
    ranges = [
        rng
        for advisory in group
        for entry in advisory.entries_for(name)
        for rng in entry.get("ranges") or []
        if isinstance(rng, dict) and rng.get("type") == "ECOSYSTEM"
    ]
    containing = [rng for rng in ranges if _in_range(rng, version)]
    return _fixes_above(containing or ranges, version)


def _fixes_above(ranges: list[dict[str, Any]], version: str) -> tuple[str, ...]:
    current = _pep440(version)
    fixes: dict[Version, str] = {}
    for rng in ranges:
        for event in rng.get("events") or []:
            if not isinstance(event, dict) or not isinstance(event.get("fixed"), str):
                continue
            fixed = _pep440(event["fixed"])
            if fixed is not None and (current is None or fixed > current):
                fixes.setdefault(fixed, event["fixed"])
    return tuple(fixes[v] for v in sorted(fixes))


# --- aliases and severity ---------------------------------------------------------


def _alias_groups(advisories: list[Advisory]) -> list[list[Advisory]]:
    """Group advisories that share an id or alias (union-find over the ids)."""
    parent: dict[str, str] = {}

    def root(item: str) -> str:
        while parent.setdefault(item, item) != item:
            parent[item] = parent[parent[item]]
            item = parent[item]
        return item

    for advisory in advisories:
        for alias in advisory.aliases:
            parent[root(alias)] = root(advisory.id)

    groups: dict[str, list[Advisory]] = {}
    for advisory in sorted(advisories, key=lambda a: a.id):
        groups.setdefault(root(advisory.id), []).append(advisory)
    return list(groups.values())


def _id_preference(vuln_id: str) -> tuple[int, str]:
    for rank, prefix in enumerate(("GHSA-", "PYSEC-")):
        if vuln_id.startswith(prefix):
            return rank, vuln_id
    return (3 if vuln_id.startswith("CVE-") else 2), vuln_id


def _severity(records: list[Advisory], name: str) -> tuple[str, float | None]:
    """Return the highest severity among CVSS scores and labels, and the best score.

    ``unknown`` means no record has a score or a label; it is never taken as low.
    """
    scores: list[float] = []
    labels: list[str] = []
    for advisory in records:
        scores.extend(_cvss_scores(advisory, name))
        specific = advisory.record.get("database_specific")
        label = specific.get("severity") if isinstance(specific, dict) else None
        if isinstance(label, str) and label.upper() in _LABELS:
            labels.append(_LABELS[label.upper()])

    score = max(scores) if scores else None
    candidates = labels + ([score_severity(score)] if score is not None else [])
    if not candidates:
        return "unknown", None
    return max(candidates, key=SEVERITY_RANK.__getitem__), score


def _cvss_scores(advisory: Advisory, name: str) -> list[float]:
    entries = list(advisory.record.get("severity") or [])
    for entry in advisory.entries_for(name):
        entries.extend(entry.get("severity") or [])

    scores = []
    for item in entries:
        if not isinstance(item, dict) or item.get("type") != "CVSS_V3":
            # NOTE: CVSS_V4 and CVSS_V2 vectors are not scored, so a record that has
            # only those is rated from its database_specific.severity label alone.
            continue
        try:
            scores.append(base_score(str(item.get("score", ""))))
        except CvssError as exc:
            log.warning("%s: %s", advisory.id, exc)
    return scores


def score_severity(score: float) -> str:
    """Return the CVSS 3.x qualitative rating of ``score``, with None (0.0) as low."""
    if score >= 9.0:
        return "critical"
    if score >= 7.0:
        return "high"
    if score >= 4.0:
        return "medium"
    return "low"


def _package_name(entry: Any) -> str:
    package = entry.get("package") if isinstance(entry, dict) else None
    if not isinstance(package, dict):
        return ""
    if str(package.get("ecosystem", "")).lower() != ECOSYSTEM.lower():
        return ""
    name = package.get("name")
    return canonicalize_name(name) if isinstance(name, str) else ""


def _timestamp_key(stamp: str) -> tuple[int, datetime | str]:
    try:
        return 1, datetime.fromisoformat(stamp)
    except ValueError:
        return 0, stamp
