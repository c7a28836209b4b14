"""The one way DAW runs an external tool: argument list, timeout, both streams kept."""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from daw.redact import redact

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 600.0


class ToolError(Exception):
    """A tool could not be started, timed out or failed in a way its probe cannot read.

    Probes turn this into a measurement with status ``error``; it never reaches the
    user as a traceback.
    """


@dataclass(frozen=True)
class Completed:
    """The outcome of one tool run: exit code, output streams, duration in seconds."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    duration_s: float

    def describe(self, limit: int = 2000) -> str:
        """Return the command, exit code and end of stderr, with secrets redacted."""
        tail = self.stderr.strip()[-limit:] or self.stdout.strip()[-limit:]
        return redact(
            f"`{shlex.join(self.args)}` exited with {self.returncode}: {tail}"
        )


def run_tool(
    args: list[str],
    *,
    cwd: Path,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
) -> Completed:
    """Run ``args`` in ``cwd`` and return its result whatever the exit code.

    PYTHONSAFEPATH=1 is set unless ``env`` overrides it, so that ``python -m TOOL``
    imports the installed tool and not a ``TOOL.py`` in the repository under check.
    Callers that must import the project's own code, such as its test run, pass
    ``{"PYTHONSAFEPATH": ""}``.

    Raises ToolError when the program is missing or does not finish in ``timeout_s``.
    """
    merged_env = {**os.environ, "PYTHONSAFEPATH": "1", **(env or {})}
    started = time.monotonic()
    log.debug("running %s in %s", redact(shlex.join(args)), cwd)
    try:
        proc = subprocess.run(  # noqa: S603 - an argument list, never a shell
            args,
            cwd=cwd,
            env=merged_env,
            input=stdin,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout_s,
            check=False,
        )
    except FileNotFoundError as exc:
        raise ToolError(f"{args[0]} is not installed or not on PATH") from exc
    except subprocess.TimeoutExpired as exc:
        raise ToolError(
            f"`{shlex.join(args)}` timed out after {timeout_s:g} s"
        ) from exc
    except OSError as exc:
        raise ToolError(f"`{shlex.join(args)}` could not start: {exc}") from exc
    return Completed(
        args=tuple(args),
        returncode=proc.returncode,
        stdout=proc.stdout,
        stderr=proc.stderr,
        duration_s=time.monotonic() - started,
    )
