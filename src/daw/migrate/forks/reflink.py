"""Detection of copy-on-write (reflink) copies with ``cp --reflink=always``."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from daw.process import ToolError, run_tool

PROBE_TIMEOUT_S = 30.0


def filesystem_type(path: Path) -> str:
    """Return the filesystem type of the mount holding ``path``, from /proc/mounts."""
    target = path.resolve()
    best, kind = "", "unknown"
    try:
        lines = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return kind
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        mount = fields[1].replace("\\040", " ")
        inside = target == Path(mount) or Path(mount) in target.parents
        if inside and len(mount) > len(best):
            best, kind = mount, fields[2]
    return kind


def reflink_problem(folder: Path) -> str | None:
    """Return None when ``cp --reflink=always`` works in ``folder``, else the reason.

    The probe writes and clones a small file in ``folder`` and deletes both.
    """
    if not folder.is_dir():
        return f"the folder {folder} does not exist"
    token = secrets.token_hex(4)
    probe = folder / f".daw_reflink_probe_{token}"
    clone = folder / f".daw_reflink_probe_{token}.clone"
    try:
        probe.write_bytes(b"daw reflink probe\n")
        completed = run_tool(
            ["cp", "--reflink=always", str(probe), str(clone)],
            cwd=folder,
            timeout_s=PROBE_TIMEOUT_S,
        )
    except (OSError, ToolError) as exc:
        return f"cannot probe reflink support in {folder}: {exc}"
    finally:
        for path in (probe, clone):
            if os.path.lexists(path):
                path.unlink()
    if completed.returncode == 0:
        return None
    kind = filesystem_type(folder)
    return (
        f"the filesystem at {folder} does not support reflink copies ({kind}); use "
        "a btrfs or XFS (reflink=1) volume or another strategy"
    )
