"""Secrets probe: detect-secrets over the in-scope files, minus the project's baseline.

A finding keeps the detector type, the path and the line. The secret's value and
the text of its line are never kept: detect-secrets reports only a SHA-1 of the
value (``hashed_secret``), and that goes into the fingerprint hash alone.

A text file that cannot be scanned is itself a finding (``unscanned-file``), so
that a secret in it cannot pass unseen.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from daw.errors import ConfigError
from daw.models import Finding, Measurement, ProbeResult, disambiguate, fingerprint
from daw.probes.base import (
    MAX_FILE_BYTES,
    ProbeContext,
    digest_files,
    error_result,
    files_with_suffix,
)
from daw.probes.sast import (
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
UNSCANNED_RULE = "unscanned-file"

# A NUL byte among the first 8 KiB marks a file as binary, unless the file starts
# with a UTF-16 or UTF-32 byte-order mark. Other text encodings contain no NUL byte.
_SNIFF_BYTES = 8 * 1024
_MIB = 1024 * 1024

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


@dataclass
class _Sorted:
    """The selected files split by how the probe treats them.

    ``transcoded`` are text files that are not UTF-8, scanned as a UTF-8 copy
    decoded as cp1252 (or latin-1). ``unscanned`` maps each text file that is
    not scanned to the reason, and each becomes an ``unscanned-file`` finding.
    ``binary`` files are skipped without a finding.
    """

    selection: FileSelection
    readable: list[str] = field(default_factory=list)
    transcoded: list[str] = field(default_factory=list)
    unscanned: dict[str, str] = field(default_factory=dict)
    binary: list[str] = field(default_factory=list)


class SecretsProbe:
    """Run detect-secrets on the in-scope files and report each secret as a finding.

    Secrets recorded in ``.secrets.baseline`` at the scan root (same filename,
    hashed_secret and type) are not findings, unless the baseline marks them
    ``is_secret: true``. Text files that are not UTF-8 (which detect-secrets
    ignores) are scanned as a transcoded copy. Text files over
    ``max_file_bytes`` are not scanned and each is an ``unscanned-file``
    finding. Binary files (a NUL byte in the first 8 KiB) and paths that are not
    regular files are skipped without a finding. Skipped paths are counted in
    the measurement's details and named in its reason.
    """

    name = "detect-secrets"
    metrics = ("secret",)

    def __init__(self, max_file_bytes: int = MAX_FILE_BYTES) -> None:
        self.max_file_bytes = max_file_bytes

    def cache_key(self, ctx: ProbeContext) -> str | None:
        """Return a digest of the scanned files, the baseline and the tool version.

        Files over the size limit count by name, size and content hash, and the
        hash is computed in 1 MiB blocks. Returns None when detect-secrets
        cannot run.
        """
        try:
            version = tool_version(ctx, "detect_secrets", SECRETS_TOOL)
        except ToolError:
            return None
        selection = select_files(ctx.scan_root, _candidates(ctx), self.max_file_bytes)
        return self._digest(ctx, selection, version)

    def _digest(self, ctx: ProbeContext, selection: FileSelection, version: str) -> str:
        # A file over the limit counts by name, size and content hash, because an
        # unscanned-file finding's fingerprint contains that hash.
        sizes = [
            f"{rel}:{_size(ctx.scan_root / rel)}:{_content_id(ctx.scan_root / rel)}"
            for rel in selection.too_large
        ]
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
        files = self._sort_files(ctx.scan_root, selection)
        try:
            scan = _scan(ctx, files.readable, baseline, ctx.scan_root)
            _scan_transcoded(ctx, files, baseline, scan)
        except ToolError as exc:
            log.warning("secrets probe failed: %s", exc)
            return error_result(self.name, self.metrics, SECRETS_TOOL, str(exc))

        findings = [_finding(result) for result in scan.results]
        findings += [
            _unscanned_finding(ctx.scan_root, rel, skip_reason)
            for rel, skip_reason in files.unscanned.items()
        ]
        findings = disambiguate(findings)
        details, reason = self._coverage(files, scan, baseline)
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

    def _sort_files(self, root: Path, selection: FileSelection) -> _Sorted:
        files = _Sorted(selection=selection)
        too_large = f"larger than {_format_limit(self.max_file_bytes)}"
        for rel in selection.too_large:
            if _is_binary(root / rel):
                files.binary.append(rel)
            else:
                files.unscanned[rel] = too_large

        readable, not_utf8 = _split_not_utf8(root, selection.scanned)
        files.readable = readable
        for rel in not_utf8:
            if _is_binary(root / rel):
                files.binary.append(rel)
            else:
                files.transcoded.append(rel)
        files.binary.sort()
        return files

    def _coverage(
        self, files: _Sorted, scan: _Scan, baseline: Baseline
    ) -> tuple[dict[str, str | int | float | bool | None], str]:
        """Return the details and reason that describe which files were scanned."""
        not_regular = files.selection.not_regular
        unscanned = sorted(files.unscanned)
        details: dict[str, str | int | float | bool | None] = {
            "files": len(files.readable) + len(files.transcoded),
            "transcoded_not_utf8": len(files.transcoded),
            "unscanned_text": len(unscanned),
            "skipped_binary": len(files.binary),
            "skipped_not_regular": len(not_regular),
            "suppressed_by_baseline": scan.suppressed,
            "baseline": baseline.present,
            "baseline_confirmed": baseline.confirmed,
        }
        reasons = []
        if unscanned:
            reasons.append(
                f"did not scan {count(unscanned, 'text file')}, each reported as an "
                f"{UNSCANNED_RULE} finding: {name_some(unscanned)}"
            )
        if files.transcoded:
            reasons.append(
                f"scanned {count(files.transcoded, 'file')} that are not UTF-8 as "
                f"cp1252 or latin-1 text: {name_some(files.transcoded)}"
            )
        if files.binary:
            reasons.append(
                f"skipped {count(files.binary, 'binary file')}: "
                + name_some(files.binary)
            )
        if not_regular:
            reasons.append(
                f"skipped {count(not_regular, 'path')} that are not regular files: "
                + name_some(not_regular)
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


def _format_limit(max_bytes: int) -> str:
    if max_bytes % _MIB == 0:
        return f"{max_bytes // _MIB} MiB"
    return f"{max_bytes} bytes"


def _is_binary(path: Path) -> bool:
    """Return whether the file has a NUL byte in its first 8 KiB.

    An unreadable file counts as text, so that it is reported rather than skipped.
    """
    try:
        with path.open("rb") as handle:
            head = handle.read(_SNIFF_BYTES)
    except OSError:
        return False
    if _bom_encoding(head) is not None:
        return False
    return b"\0" in head


# UTF-32 first: its little-endian BOM starts with the UTF-16 one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def _bom_encoding(head: bytes) -> str | None:
    """Return the UTF-16 or UTF-32 codec that a byte-order mark names, if any."""
    for bom, encoding in _BOMS:
        if head.startswith(bom):
            return encoding
    return None


def _sha256(path: Path) -> str:
    """Return the file's sha256 in hex, or "unreadable" when it cannot be read."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(_MIB), b""):
                digest.update(block)
    except OSError:
        return "unreadable"
    return digest.hexdigest()


def _content_id(path: Path) -> str:
    return "binary" if _is_binary(path) else _sha256(path)


def _split_not_utf8(root: Path, paths: list[str]) -> tuple[list[str], list[str]]:
    """Split ``paths`` into files readable as UTF-8 text and the rest.

    detect-secrets 1.5 drops a whole file at the first byte that does not decode,
    without saying so, so the rest is scanned as a transcoded copy instead.
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


def _scan(
    ctx: ProbeContext,
    files: list[str],
    baseline: Baseline,
    cwd: Path,
    scan: _Scan | None = None,
) -> _Scan:
    """Run detect-secrets over ``files`` in ``cwd`` in batches, minus baseline secrets.

    Results are added to ``scan`` (a new one when None) and it is returned.
    """
    scan = scan if scan is not None else _Scan()
    for batch in batches(files):
        completed = run_tool(
            [ctx.python, "-m", "detect_secrets", *_SCAN_FLAGS, "--", *batch],
            cwd=cwd,
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


def _scan_transcoded(
    ctx: ProbeContext, files: _Sorted, baseline: Baseline, scan: _Scan
) -> None:
    """Scan UTF-8 copies of the ``transcoded`` files and add results to ``scan``.

    Each copy has the original's relative path in a temporary folder, so results
    name the original file. Decoding keeps every line break byte as it is, so
    line numbers match the original. A copy that cannot be written moves its
    file to ``unscanned``.
    """
    if not files.transcoded:
        return
    with tempfile.TemporaryDirectory(prefix="daw-secrets-") as folder:
        copies = Path(folder)
        written = []
        for rel in files.transcoded:
            try:
                _write_utf8_copy(ctx.scan_root / rel, copies / rel)
            except OSError as exc:
                log.warning("could not transcode %s: %s", rel, exc.strerror)
                files.unscanned[rel] = "not UTF-8 text"
                continue
            written.append(rel)
        files.transcoded = written
        _scan(ctx, written, baseline, copies, scan)


def _write_utf8_copy(source: Path, target: Path) -> None:
    data = source.read_bytes()
    encoding = _bom_encoding(data)
    try:
        text = data.decode(encoding or "cp1252")
    except UnicodeDecodeError:
        # cp1252 leaves five bytes undefined, and latin-1 decodes every byte.
        text = data.decode("latin-1")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(text.encode("utf-8"))


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


def _unscanned_finding(root: Path, path: str, skip_reason: str) -> Finding:
    return Finding(
        category="secret",
        tool=SECRETS_TOOL,
        rule_id=UNSCANNED_RULE,
        message=f"{path} was not scanned for secrets: {skip_reason}",
        path=path,
        line=None,
        severity="high",
        fingerprint=fingerprint(
            SECRETS_TOOL, UNSCANNED_RULE, path, _sha256(root / path)
        ),
    )
