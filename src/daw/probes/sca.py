"""Software composition analysis: known vulnerabilities of Python dependencies."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict
from importlib import metadata
from pathlib import Path

from daw.models import (
    Finding,
    Measurement,
    ProbeResult,
    disambiguate,
    fingerprint,
    normalise_snippet,
)
from daw.probes.base import ProbeContext, error_result, not_applicable
from daw.probes.deps import (
    Dependency,
    DependencyError,
    DependencyReport,
    UnresolvedDependency,
    discover_dependencies,
)
from daw.probes.osv import (
    AdvisoryData,
    AdvisoryError,
    Vulnerability,
    load_database,
    query_api,
)
from daw.redact import redact

log = logging.getLogger(__name__)

TOOL = "osv"
METRIC = "sca"


def matcher_version() -> str:
    """Return the version of DAW, whose code does the OSV matching."""
    try:
        return metadata.version("daw")
    except metadata.PackageNotFoundError:
        return "unknown"


class ScaProbe:
    """Report each known vulnerability of each dependency as an ``sca`` finding.

    Advisories come from ``settings.osv_db`` when it is set, else from the OSV API
    at ``settings.osv_api_url``. Without either the measurement is ``error``.
    Dependencies whose version cannot be determined are findings with rule
    ``unresolved-dependency`` and severity ``unknown``.
    """

    name = "osv"
    metrics = (METRIC,)

    def cache_key(self, ctx: ProbeContext) -> str | None:
        """Return a digest of the dependencies and the offline database.

        Returns None when advisories come from the API, whose responses change without
        any local input changing, or when the dependencies cannot be read.
        """
        if ctx.settings.osv_db is None:
            return None
        try:
            report = discover_dependencies(ctx)
        except DependencyError:
            return None
        return _inputs_digest(report, _database_digest(ctx.settings.osv_db))

    def run(self, ctx: ProbeContext) -> ProbeResult:
        """Find the dependencies, load advisories for them and match them."""
        try:
            report = discover_dependencies(ctx)
        except DependencyError as exc:
            return error_result(self.name, self.metrics, TOOL, redact(str(exc)))
        if not report.dependencies and not report.unresolved:
            reason = "no Python dependencies found"
            return ProbeResult(
                probe=self.name, measurements=[not_applicable(METRIC, TOOL, reason)]
            )

        try:
            data, source_digest = _load_advisories(ctx, report)
        except AdvisoryError as exc:
            reason = (
                f"advisory data unavailable: {redact(str(exc))}; "
                "pass --osv-db PATH with an offline OSV database"
            )
            return error_result(self.name, self.metrics, TOOL, reason)

        findings = _vulnerability_findings(report, data)
        findings += [_unresolved_finding(item) for item in report.unresolved]
        findings = disambiguate(findings)
        measurement = Measurement(
            metric=METRIC,
            value=float(len(findings)),
            unit="findings",
            tool=TOOL,
            tool_version=matcher_version(),
            inputs_digest=_inputs_digest(report, source_digest),
            details={
                "advisory_source": data.source,
                "advisory_modified": data.modified,
                "advisory_digest": data.digest,
                "advisories": len(data.advisories),
                "dependencies": len(report.dependencies),
                "unresolved": len(report.unresolved),
            },
        )
        return ProbeResult(
            probe=self.name, measurements=[measurement], findings=findings
        )


def _load_advisories(
    ctx: ProbeContext, report: DependencyReport
) -> tuple[AdvisoryData, str]:
    """Return the advisory data and a digest of its source for the inputs digest."""
    settings = ctx.settings
    if settings.osv_db is not None:
        data = load_database(settings.osv_db)
        return data, _database_digest(settings.osv_db)
    if not settings.osv_api_url:
        raise AdvisoryError("no OSV database and no OSV API URL is configured")

    packages = {(dep.name, dep.version) for dep in report.dependencies}
    data = query_api(settings.osv_api_url, packages, settings.network_timeout_s)
    return data, data.digest


def _vulnerability_findings(
    report: DependencyReport, data: AdvisoryData
) -> list[Finding]:
    findings = []
    for dep in report.dependencies:
        for vuln in data.vulnerabilities(dep.name, dep.version):
            findings.append(_vulnerability_finding(dep, vuln))
    return findings


def _vulnerability_finding(dep: Dependency, vuln: Vulnerability) -> Finding:
    aliases = f" ({', '.join(vuln.aliases)})" if vuln.aliases else ""
    fix = f"fixed in {', '.join(vuln.fixed)}" if vuln.fixed else "no fixed version"
    return Finding(
        category=METRIC,
        tool=TOOL,
        rule_id=vuln.id,
        message=f"{dep.name} {dep.version}: {vuln.id}{aliases} {fix}",
        path=dep.path,
        line=dep.line,
        severity=vuln.severity,
        score=vuln.score,
        fingerprint=fingerprint(TOOL, vuln.id, dep.name, dep.version),
    )


def _unresolved_finding(item: UnresolvedDependency) -> Finding:
    # A requirement may carry a URL with credentials, so the text is redacted.
    requirement = redact(item.requirement)
    where = f"{item.path}:{item.line}" if item.line is not None else item.path
    return Finding(
        category=METRIC,
        tool=TOOL,
        rule_id="unresolved-dependency",
        message=(
            f"cannot check {requirement} ({where}) for vulnerabilities: "
            f"{redact(item.reason)}"
        ),
        path=item.path,
        line=item.line,
        severity="unknown",
        fingerprint=fingerprint(
            TOOL, "unresolved-dependency", item.path, normalise_snippet(requirement)
        ),
    )


def _inputs_digest(report: DependencyReport, source_digest: str) -> str:
    payload = {
        "matcher": matcher_version(),
        "advisories": source_digest,
        "dependencies": [asdict(dep) for dep in report.dependencies],
        "unresolved": [asdict(item) for item in report.unresolved],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _database_digest(path: Path) -> str:
    """Return a sha256 over the names and bytes of the database's JSON and zip files."""
    digest = hashlib.sha256(str(path).encode() + b"\0")
    files = sorted(path.rglob("*")) if path.is_dir() else [path]
    for file in files:
        if file.suffix not in (".json", ".zip") or not file.is_file():
            continue
        digest.update(str(file).encode() + b"\0")
        try:
            digest.update(hashlib.sha256(file.read_bytes()).digest())
        except OSError:
            digest.update(b"<unreadable>")
    return digest.hexdigest()
