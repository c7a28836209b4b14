"""Git queries: the files in scope, the changed lines since a base, the staged tree."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from daw.errors import GitError

_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(?P<start>\d+)(?:,(?P<count>\d+))? @@")
GIT_TIMEOUT_S = 120.0


def _git(root: Path, *args: str, check: bool = True) -> str:
    command = ["git", "-c", "core.quotepath=false", *args]
    try:
        proc = subprocess.run(  # noqa: S603 - an argument list, never a shell
            command,
            cwd=root,
            capture_output=True,
            text=True,
            errors="surrogateescape",
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except FileNotFoundError as exc:
        raise GitError("git is not installed or not on PATH") from exc
    except subprocess.TimeoutExpired as exc:
        raise GitError(
            f"`git {' '.join(args)}` timed out after {GIT_TIMEOUT_S:g} s"
        ) from exc
    if check and proc.returncode != 0:
        raise GitError(f"`git {' '.join(args)}` failed: {proc.stderr.strip()}")
    return proc.stdout


def find_root(path: Path) -> Path:
    """Return the top of the working tree that contains ``path``.

    Raises GitError when ``path`` is not a folder inside a git repository.
    """
    if not path.is_dir():
        raise GitError(
            f"{path} is not a folder",
            hint="pass --repo the repository folder, or run daw inside it",
        )
    try:
        out = _git(path, "rev-parse", "--show-toplevel")
    except GitError as exc:
        raise GitError(
            f"{path} is not inside a git repository",
            hint="run daw inside a git checkout, or pass --repo PATH",
        ) from exc
    return Path(out.strip())


def head_commit(root: Path) -> str | None:
    """Return the commit id of HEAD, or None in a repository with no commits yet."""
    out = _git(root, "rev-parse", "--verify", "--quiet", "HEAD^{commit}", check=False)
    return out.strip() or None


def merge_base(root: Path, base_ref: str) -> str:
    """Return the merge-base of HEAD and ``base_ref``; GitError for an unknown ref."""
    resolved = _git(
        root, "rev-parse", "--verify", "--quiet", f"{base_ref}^{{commit}}", check=False
    )
    if not resolved.strip():
        raise GitError(
            f"unknown base ref {base_ref!r}",
            hint="pass a branch, tag or commit that exists, e.g. --base origin/main",
        )
    out = _git(root, "merge-base", "HEAD", resolved.strip(), check=False)
    return out.strip() or resolved.strip()


def _split_z(out: str) -> list[str]:
    return sorted(part for part in out.split("\0") if part)


def tracked_files(root: Path) -> list[str]:
    """Return the paths git tracks in the working tree, sorted."""
    return _split_z(_git(root, "ls-files", "-z", "--cached"))


def staged_files(root: Path) -> list[str]:
    """Return the paths added, copied, modified or renamed in the index against HEAD."""
    against = "HEAD" if head_commit(root) else _empty_tree(root)
    out = _git(
        root,
        "diff",
        "--cached",
        "--name-only",
        "-z",
        "-M",
        "--diff-filter=ACMR",
        against,
    )
    return _split_z(out)


def _empty_tree(root: Path) -> str:
    return _git(root, "hash-object", "-t", "tree", "/dev/null").strip()


def changed_lines(
    root: Path, base: str | None, *, staged: bool = False, head: bool = False
) -> dict[str, frozenset[int]]:
    """Return, per path, the line numbers added or changed since ``base``.

    ``base`` defaults to HEAD. With ``staged`` the index is compared with it, with
    ``head`` the HEAD commit, and otherwise the working tree. Renames are followed,
    so a moved file counts only its edited lines. Paths are relative to ``root``.
    """
    against = base or (head_commit(root) or _empty_tree(root))
    args = ["diff", "--no-color", "--no-ext-diff", "-M", "--unified=0"]
    args.append("--diff-filter=ACMR")
    if staged:
        args.append("--cached")
    args.append(against)
    if head and not staged:
        args.append("HEAD")
    return _parse_diff(_git(root, *args))


def _parse_diff(out: str) -> dict[str, frozenset[int]]:
    result: dict[str, set[int]] = {}
    current: str | None = None
    for line in out.splitlines():
        if line.startswith("+++ "):
            target = line[4:]
            current = target[2:] if target.startswith("b/") else None
            if current is not None:
                result.setdefault(current, set())
            continue
        match = _HUNK.match(line)
        if match and current is not None:
            start = int(match["start"])
            count = int(match["count"]) if match["count"] is not None else 1
            result[current].update(range(start, start + count))
    return {path: frozenset(lines) for path, lines in sorted(result.items())}


def export_index(root: Path, destination: Path) -> None:
    """Write every file of the git index, as staged, under ``destination``."""
    destination.mkdir(parents=True, exist_ok=True)
    _git(root, "checkout-index", "--all", "--force", f"--prefix={destination}/")


def is_dirty(root: Path) -> bool:
    """Return whether tracked files differ from HEAD in the index or work tree."""
    out = _git(root, "status", "--porcelain", "--untracked-files=no")
    return bool(out.strip())
