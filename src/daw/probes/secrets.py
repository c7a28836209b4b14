"""Secrets probe: detect-secrets over the in-scope files, minus the project's baseline.

A finding keeps the detector type, the path and the line. The secret's value and
the text of its line are never kept: detect-secrets reports only a SHA-1 of the
value (``hashed_secret``), and that goes into the fingerprint hash alone.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from daw.errors import ConfigError
from daw.models import Finding, Measurement, ProbeResult, disambiguate, fingerprint
from daw.probes.base import ProbeContext, digest_files, error_result, files_with_suffix
from daw.probes.sast import (
    MAX_FILE_BYTES,
    SAFE_PATH_ENV,
    FileSelection,
    batches,
    count,
    describe,
    name_some,
    select_files,
    tool_version,
)
from daw.process import Completed, ToolError, run_tool

log = logging.getLogger(__name__)

SECRETS_TOOL = "detect-secrets"
BASELINE_NAME = ".secrets.baseline"

# --no-verify because detect-secrets otherwise sends some secrets it finds to
# their services (AWS, Slack, Stripe ...) to check whether they are live.
_SCAN_FLAGS = ("scan", "--no-verify")

# detect-secrets opens files with the locale's encoding. UTF-8 mode makes that
# UTF-8 whatever the locale, which matches the check in _split_not_utf8.
_TOOL_ENV = {**SAFE_PATH_ENV, "PYTHONUTF8": "1"}


@dataclass(frozen=True)
class Baseline:
    """The secrets a ``.secrets.baseline`` accepts, as (filename, hashed_secret, type).

    ``confirmed`` counts entries that ``detect-secrets audit`` marked as real
    secrets (``is_secret: true``). Those are not accepted, so they stay findings.
    """

    accepted: frozenset[tuple[str, str, str]] = frozenset()
    confirmed: int = 0
    present: bool = False


@dataclass
class _Scan:
    results: list[dict[str, Any]] = field(default_factory=list)
    suppressed: int = 0


class SecretsProbe:
    """Run detect-secrets on the in-scope files and report each secret as a finding.

    Secrets recorded in ``.secrets.baseline`` at the scan root (same filename,
    hashed_secret and type) are not findings, unless the baseline marks them
    ``is_secret: true``. Files over ``max_file_bytes``, paths that are not
    regular files and files that are not UTF-8 (which detect-secrets ignores)
    are not scanned. They are counted in the measurement's details and named in
    its reason.
    """

    name = "detect-secrets"
    metrics = ("secret",)

    def __init__(self, max_file_bytes: int = MAX_FILE_BYTES) -> None:
        self.max_file_bytes = max_file_bytes

    def cache_key(self, ctx: ProbeContext) -> str | None:
        """Return a digest of the scanned files, the baseline and the tool version.

        Skipped files count by name and size only, so that a huge file is not
        read. Returns None when detect-secrets cannot run.
        """
        try:
            version = tool_version(ctx, "detect_secrets", SECRETS_TOOL)
        except ToolError:
            return None
        selection = select_files(ctx.scan_root, _candidates(ctx), self.max_file_bytes)
        return self._digest(ctx, selection, version)

    def _digest(self, ctx: ProbeContext, selection: FileSelection, version: str) -> str:
        sizes = [f"{rel}:{_size(ctx.scan_root / rel)}" for rel in selection.too_large]
        return digest_files(
            ctx.scan_root,
            [*selection.scanned, BASELINE_NAME],
            SECRETS_TOOL,
            version,
            *_SCAN_FLAGS,
            f"max_file_bytes={self.max_file_bytes}",
            *sizes,
            *selection.not_regular,
        )

    def run(self, ctx: ProbeContext) -> ProbeResult:
        """Scan for secrets and return the ``secret`` count with one finding each."""
        started = time.monotonic()
        try:
            version = tool_version(ctx, "detect_secrets", SECRETS_TOOL)
            baseline = read_baseline(ctx.scan_root / BASELINE_NAME)
        except (ToolError, ConfigError) as exc:
            log.warning("secrets probe failed: %s", exc)
            return error_result(self.name, self.metrics, SECRETS_TOOL, describe(exc))

        selection = select_files(ctx.scan_root, _candidates(ctx), self.max_file_bytes)
        readable, not_utf8 = _split_not_utf8(ctx.scan_root, selection.scanned)
        try:
            scan = _scan(ctx, readable, baseline)
        except ToolError as exc:
            log.warning("secrets probe failed: %s", exc)
            return error_result(self.name, self.metrics, SECRETS_TOOL, str(exc))

        findings = disambiguate([_finding(result) for result in scan.results])
        details, reason = self._coverage(selection, readable, not_utf8, scan, baseline)
        measurement = Measurement(
            metric="secret",
            value=float(len(findings)),
            unit="findings",
            tool=SECRETS_TOOL,
            tool_version=version,
            inputs_digest=self._digest(ctx, selection, version),
            reason=reason,
            details=details,
        )
        return ProbeResult(
            probe=self.name,
            measurements=[measurement],
            findings=findings,
            duration_s=time.monotonic() - started,
        )

    def _coverage(
        self,
        selection: FileSelection,
        readable: list[str],
        not_utf8: list[str],
        scan: _Scan,
        baseline: Baseline,
    ) -> tuple[dict[str, str | int | float | bool | None], str]:
        """Return the details and reason that describe which files were scanned."""
        details: dict[str, str | int | float | bool | None] = {
            **selection.details(),
            "files": len(readable),
            "skipped_not_utf8": len(not_utf8),
            "suppressed_by_baseline": scan.suppressed,
            "baseline": baseline.present,
            "baseline_confirmed": baseline.confirmed,
        }
        reasons = selection.skip_reasons(self.max_file_bytes)
        if not_utf8:
            reasons.append(
                f"skipped {count(not_utf8, 'file')} that are not UTF-8 text: "
                + name_some(not_utf8)
            )
        return details, "; ".join(reasons)


def read_baseline(path: Path) -> Baseline:
    """Return the secrets the detect-secrets baseline at ``path`` accepts.

    A missing file accepts nothing. Raises ConfigError naming the file when it
    is not JSON or not shaped like a baseline (``results`` mapping each
    filename to a list of entries with string ``type`` and ``hashed_secret``).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Baseline()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"could not be read: {exc}", path=path.name) from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            path=path.name,
            hint="regenerate it with `detect-secrets scan > .secrets.baseline`",
        ) from exc

    results = data.get("results") if isinstance(data, dict) else None
    if not isinstance(results, dict):
        raise ConfigError("missing the 'results' object", path=path.name)
    accepted: set[tuple[str, str, str]] = set()
    confirmed = 0
    for filename, entries in results.items():
        for index, entry in enumerate(_baseline_entries(path, filename, entries)):
            hashed, secret_type = entry.get("hashed_secret"), entry.get("type")
            if not isinstance(hashed, str) or not isinstance(secret_type, str):
                raise ConfigError(
                    f"results[{filename!r}][{index}]: missing 'hashed_secret' or "
                    "'type'",
                    path=path.name,
                )
            if entry.get("is_secret") is True:
                confirmed += 1
                continue
            accepted.add((_relative(filename), hashed, secret_type))
    return Baseline(accepted=frozenset(accepted), confirmed=confirmed, present=True)


def _baseline_entries(path: Path, filename: str, entries: Any) -> list[dict[str, Any]]:
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ConfigError(
            f"results[{filename!r}]: expected a list of objects", path=path.name
        )
    return entries


def _candidates(ctx: ProbeContext) -> list[str]:
    """Return the in-scope paths outside vendored folders, without the baseline.

    The baseline contains only hashes, and detect-secrets flags those as
    high-entropy strings.
    """
    every_suffix = ""
    return [rel for rel in files_with_suffix(ctx, every_suffix) if rel != BASELINE_NAME]


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1


def _split_not_utf8(root: Path, paths: list[str]) -> tuple[list[str], list[str]]:
    """Split ``paths`` into files readable as UTF-8 text and the rest.

    detect-secrets 1.5 drops a whole file at the first byte that does not decode,
    without saying so, so such files are reported here as not scanned.
    """
    readable: list[str] = []
    not_utf8: list[str] = []
    for rel in paths:
        try:
            (root / rel).read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError):
            not_utf8.append(rel)
        else:
            readable.append(rel)
    return readable, not_utf8


def _scan(ctx: ProbeContext, files: list[str], baseline: Baseline) -> _Scan:
    """Run detect-secrets over ``files`` in batches and drop baseline secrets."""
    scan = _Scan()
    for batch in batches(files):
        completed = run_tool(
            [ctx.python, "-m", "detect_secrets", *_SCAN_FLAGS, "--", *batch],
            cwd=ctx.scan_root,
            timeout_s=ctx.settings.tool_timeout_s,
            env=_TOOL_ENV,
        )
        for result in _parse_scan(completed):
            key = (result["filename"], result["hashed_secret"], result["type"])
            if key in baseline.accepted:
                scan.suppressed += 1
            else:
                scan.results.append(result)
    return scan


def _parse_scan(completed: Completed) -> list[dict[str, Any]]:
    """Return detect-secrets' results, each reduced to the fields DAW keeps.

    Only type, filename, line number and hashed_secret are kept, so nothing else
    the tool writes can carry a secret further. Raises ToolError on a failed run.
    """
    if completed.returncode != 0:
        raise ToolError(f"detect-secrets failed: {completed.describe()}")
    try:
        data = json.loads(completed.stdout)
    except json.JSONDecodeError as exc:
        raise ToolError(
            f"detect-secrets wrote output that is not JSON ({exc.msg})"
        ) from exc
    results = data.get("results") if isinstance(data, dict) else None
    if not isinstance(results, dict):
        raise ToolError("detect-secrets wrote JSON without a 'results' object")

    kept: list[dict[str, Any]] = []
    for entries in results.values():
        if not isinstance(entries, list):
            raise ToolError("detect-secrets wrote results that are not lists")
        kept.extend(_kept_fields(entry) for entry in entries)
    return kept


def _kept_fields(entry: Any) -> dict[str, Any]:
    fields = ("type", "filename", "hashed_secret")
    if not isinstance(entry, dict) or not all(
        isinstance(entry.get(name), str) for name in fields
    ):
        raise ToolError(
            "detect-secrets wrote a result without type, filename or hashed_secret"
        )
    line = entry.get("line_number")
    return {
        "type": entry["type"],
        "filename": _relative(entry["filename"]),
        "hashed_secret": entry["hashed_secret"],
        "line_number": line if isinstance(line, int) and line > 0 else None,
    }


def _relative(reported: str) -> str:
    return PurePosixPath(reported).as_posix().removeprefix("./")


def _finding(result: dict[str, Any]) -> Finding:
    secret_type = result["type"]
    path = result["filename"]
    return Finding(
        category="secret",
        tool=SECRETS_TOOL,
        rule_id=secret_type,
        message=f"possible secret of type {secret_type!r}",
        path=path,
        line=result["line_number"],
        severity="high",
        fingerprint=fingerprint(
            SECRETS_TOOL, secret_type, path, result["hashed_secret"]
        ),
    )
