"""Dependency age: how many days the versions in use lag behind the latest releases."""

from __future__ import annotations

import hashlib
import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from packaging.version import InvalidVersion, Version

from daw.models import (
    Finding,
    Measurement,
    MeasurementStatus,
    ProbeResult,
    disambiguate,
    fingerprint,
)
from daw.probes.base import ProbeContext, error_result, not_applicable
from daw.probes.deps import Dependency, DependencyError, discover_dependencies
from daw.probes.sca import matcher_version
from daw.redact import redact

log = logging.getLogger(__name__)

TOOL = "pypi"
METRIC = "dependency_age"
_WORKERS = 8


class PackageIndexError(Exception):
    """A package index request for one package failed, for the reason in the message."""


@dataclass(frozen=True)
class Lag:
    """The latest release of a dependency and the whole days between the uploads."""

    latest: str
    days: int


class DependencyAgeProbe:
    """Report each direct dependency that is behind its latest release.

    The latest release excludes yanked releases, and pre-releases unless the
    version in use is one. The lag is the number of whole days between the first
    upload of the version in use and the first upload of the latest release, so it
    never depends on today's date. Data comes from the PyPI JSON API at
    ``settings.pypi_index_url`` (``GET {index}/{name}/json``). If any direct
    dependency cannot be checked, the measurement is ``error`` and its details
    name the failures.

    ``cache_key`` returns None: the latest release changes on the index without any
    local input changing, so results are never cached.
    """

    name = "dependency-age"
    metrics = (METRIC,)

    def cache_key(self, ctx: ProbeContext) -> str | None:
        """Return a digest of the direct dependencies, the index and today's UTC date.

        The index gains releases over time, so a cached result is reused for the
        rest of the day it was taken on and looked up again the next day. A
        failed lookup is never cached.
        """
        try:
            report = discover_dependencies(ctx)
        except DependencyError:
            return None
        pins = sorted(
            f"{dep.name}=={dep.version}" for dep in report.dependencies if dep.direct
        )
        today = datetime.now(UTC).date().isoformat()
        digest = hashlib.sha256()
        for part in (TOOL, ctx.settings.pypi_index_url or "", today, *pins):
            digest.update(part.encode() + b"\0")
        return digest.hexdigest()

    def run(self, ctx: ProbeContext) -> ProbeResult:
        """Look up each direct dependency on the index and compare upload dates."""
        try:
            report = discover_dependencies(ctx)
        except DependencyError as exc:
            return error_result(self.name, self.metrics, TOOL, redact(str(exc)))
        direct = [dep for dep in report.dependencies if dep.direct]
        if not direct:
            reason = "no direct Python dependencies with a known version found"
            return ProbeResult(
                probe=self.name, measurements=[not_applicable(METRIC, TOOL, reason)]
            )
        index = ctx.settings.pypi_index_url
        if not index:
            reason = "no package index configured: set pypi_index_url"
            return error_result(self.name, self.metrics, TOOL, reason)

        timeout_s = ctx.settings.network_timeout_s
        with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
            outcomes = list(pool.map(lambda d: _check(index, d, timeout_s), direct))

        failures = {
            f"{dep.name} {dep.version}": str(outcome)
            for dep, outcome in zip(direct, outcomes, strict=True)
            if isinstance(outcome, PackageIndexError)
        }
        if failures:
            return _failed(self.name, direct, failures, len(report.unresolved))

        findings = [
            _finding(dep, outcome)
            for dep, outcome in zip(direct, outcomes, strict=True)
            if isinstance(outcome, Lag)
        ]
        measurement = Measurement(
            metric=METRIC,
            value=float(len(findings)),
            unit="findings",
            tool=TOOL,
            tool_version=matcher_version(),
            details={
                "index": redact(index),
                "checked": len(direct),
                "unresolved": len(report.unresolved),
            },
        )
        return ProbeResult(
            probe=self.name, measurements=[measurement], findings=disambiguate(findings)
        )


def _failed(
    probe: str, direct: list[Dependency], failures: dict[str, str], unresolved: int
) -> ProbeResult:
    checked = len(direct) - len(failures)
    reason = (
        f"{len(failures)} of {len(direct)} direct dependencies could not be checked "
        f"on the package index: " + "; ".join(f"{k}: {v}" for k, v in failures.items())
    )
    details: dict[str, str | int | float | bool | None] = {
        "checked": checked,
        "failed": len(failures),
        "unresolved": unresolved,
    }
    details.update({f"failure:{name}": text for name, text in failures.items()})
    measurement = Measurement(
        metric=METRIC,
        status=MeasurementStatus.ERROR,
        tool=TOOL,
        tool_version=matcher_version(),
        reason=redact(reason),
        details=details,
    )
    return ProbeResult(probe=probe, measurements=[measurement])


def _finding(dep: Dependency, lag: Lag) -> Finding:
    return Finding(
        category=METRIC,
        tool=TOOL,
        rule_id="outdated-dependency",
        message=f"{dep.name} {dep.version} is {lag.days:,} days behind {lag.latest}",
        path=dep.path,
        line=dep.line,
        severity="low",
        value=float(lag.days),
        fingerprint=fingerprint(TOOL, "outdated-dependency", dep.path, dep.name),
    )


def _check(
    index: str, dep: Dependency, timeout_s: float
) -> Lag | None | PackageIndexError:
    """Return the lag of ``dep``, None when it is current, or the failure."""
    try:
        document = _fetch(index, dep.name, timeout_s)
        return compute_lag(document, dep.version)
    except PackageIndexError as exc:
        log.warning("dependency age of %s %s: %s", dep.name, dep.version, exc)
        return exc


def compute_lag(document: Any, version: str) -> Lag | None:
    """Return how far ``version`` is behind in a PyPI JSON document, None if current.

    Raises PackageIndexError when the document is malformed or lacks ``version``.
    """
    releases = document.get("releases") if isinstance(document, dict) else None
    if not isinstance(releases, dict):
        raise PackageIndexError("malformed PyPI JSON: no releases object")
    uploads = {key: _release_upload(key, files) for key, files in releases.items()}

    current = _parse_version(version)
    in_use = next(
        (uploads[key] for key in uploads if _same_version(key, version, current)), None
    )
    if current is None or in_use is None:
        raise PackageIndexError(f"version {version} is not listed on the index")

    latest = _latest_release(uploads, allow_pre=current.is_prerelease)
    if latest is None or latest[0] <= current:
        return None

    # A backport can be uploaded after a higher version, so the lag is at least 0.
    _, key, uploaded = latest
    return Lag(latest=key, days=max(0, (uploaded - in_use[0]).days))


def _latest_release(
    uploads: dict[str, tuple[datetime, bool] | None], *, allow_pre: bool
) -> tuple[Version, str, datetime] | None:
    """Return the highest release that has files and is not yanked."""
    best: tuple[Version, str, datetime] | None = None
    for key, upload in uploads.items():
        parsed = _parse_version(key)
        if upload is None or upload[1] or parsed is None:
            continue
        if parsed.is_prerelease and not allow_pre:
            continue
        if best is None or parsed > best[0]:
            best = (parsed, key, upload[0])
    return best


def _release_upload(version: str, files: Any) -> tuple[datetime, bool] | None:
    """Return (first upload time, yanked) of a release, or None if it has no files.

    A release is yanked when all its files are.
    """
    if not isinstance(files, list):
        raise PackageIndexError(f"malformed PyPI JSON: release {version} is not a list")
    if not files:
        return None
    times = []
    for file in files:
        stamp = file.get("upload_time_iso_8601") if isinstance(file, dict) else None
        if not isinstance(stamp, str):
            raise PackageIndexError(
                f"malformed PyPI JSON: {version} file without upload time"
            )
        try:
            times.append(datetime.fromisoformat(stamp))
        except ValueError as exc:
            raise PackageIndexError(
                f"malformed upload time {stamp!r} of {version}"
            ) from exc
    yanked = all(isinstance(f, dict) and f.get("yanked") is True for f in files)
    return min(times), yanked


def _same_version(key: str, version: str, parsed: Version | None) -> bool:
    return key == version or (parsed is not None and _parse_version(key) == parsed)


def _parse_version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def _fetch(index: str, name: str, timeout_s: float) -> Any:
    url = f"{index.rstrip('/')}/{urllib.parse.quote(name)}/json"
    if not url.startswith(("http://", "https://")):
        raise PackageIndexError(f"invalid index URL {redact(index)}: use http or https")
    request = urllib.request.Request(
        url, headers={"Accept": "application/json", "User-Agent": "daw-dependency-age"}
    )
    try:
        # The scheme was checked above, so urlopen cannot read a local file.
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310  # nosec B310
            raw = response.read()
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 404:
            raise PackageIndexError(f"{name} not found on {redact(index)}") from exc
        raise PackageIndexError(
            f"{redact(url)} responded with HTTP {exc.code}"
        ) from exc
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise PackageIndexError(f"{redact(url)} unreachable: {reason}") from exc
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PackageIndexError(f"{redact(url)} returned invalid JSON: {exc}") from exc
