"""Helpers for the lint, type-check and tsconfig probe tests: npm tools, bare venvs."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import venv
from pathlib import Path

from daw.probes.base import ProbeContext
from daw.stages import Stage

NPM_CACHE = Path(tempfile.gettempdir()) / "daw-test-npm"
NPM_TIMEOUT_S = 300


def npm_tools(*packages: str) -> Path:
    """Return a node_modules folder with ``packages`` installed from the npm registry.

    The folder is kept under the system temp folder, keyed by the package specs,
    so later test sessions reuse it. It is built in a scratch folder and renamed
    into place, so an interrupted install leaves nothing half-made behind.
    """
    key = hashlib.sha256(json.dumps(sorted(packages)).encode()).hexdigest()[:12]
    final = NPM_CACHE / f"{'-'.join(p.replace('/', '_') for p in packages)}-{key}"
    if final.is_dir():
        return final / "node_modules"

    NPM_CACHE.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=NPM_CACHE, prefix="install-"))
    (scratch / "package.json").write_text('{"name": "daw-test-tools", "private": true}')
    subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", *packages],
        cwd=scratch,
        check=True,
        capture_output=True,
        timeout=NPM_TIMEOUT_S,
    )
    try:
        scratch.rename(final)
    except OSError:
        # Another session finished the same install first; its folder is as good.
        shutil.rmtree(scratch, ignore_errors=True)
    return final / "node_modules"


def link_node_modules(root: Path, node_modules: Path) -> None:
    """Make ``node_modules`` appear at ``root``/node_modules as a symlink."""
    os.symlink(node_modules, root / "node_modules", target_is_directory=True)


def bare_python(folder: Path) -> str:
    """Create a virtual environment without packages and return its interpreter."""
    venv.create(folder, with_pip=False)
    return str(folder / "bin" / "python")


def context(
    root: Path,
    python: str,
    files: list[str] | None = None,
    *,
    scan_root: Path | None = None,
    stage: Stage = Stage.MERGE,
) -> ProbeContext:
    """Return a ProbeContext for ``root``; ``files`` defaults to every regular file."""
    scan = scan_root or root
    if files is None:
        files = sorted(
            path.relative_to(scan).as_posix()
            for path in scan.rglob("*")
            if path.is_file()
            and not path.is_symlink()
            and ".git" not in path.relative_to(scan).parts
            and "node_modules" not in path.relative_to(scan).parts
        )
    return ProbeContext(
        repo_root=root,
        scan_root=scan,
        stage=stage,
        files=tuple(files),
        python=python,
    )
