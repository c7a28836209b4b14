"""Benchmark: tools run one after another, a cold ``daw check`` and a warm one.

Generates a Python repository of at least 20,000 lines with at least 300 tests,
then measures, in one run and interleaved over several rounds, the wall time of
1. the same tools DAW runs, invoked sequentially as a hand-written CI script would,
2. ``daw check --stage merge`` with an empty cache (cold),
3. the same check again with the cache filled (warm).
It prints medians and the ratios cold/sequential and warm/cold, and with
``--markdown FILE`` appends a dated section to that file.

Usage:
    python benchmarks/bench_check.py [--rounds 3] [--modules 120]
        [--markdown docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OSV_DB = HERE.parent / "tests" / "data" / "osv"

MODULE_TEMPLATE = '''"""Generated module {index}: arithmetic helpers with branches."""

from __future__ import annotations


def scale_{index}(values: list[int], factor: int) -> list[int]:
    result = []
    for value in values:
        if value % 2 == 0:
            result.append(value * factor)
        else:
            result.append(value + factor)
    return result


def clamp_{index}(value: int, low: int, high: int) -> int:
    if value < low:
        return low
    if value > high:
        return high
    return value


class Account{index}:
    """A small stateful object."""

    def __init__(self, owner: str, balance: int = 0) -> None:
        self.owner = owner
        self.balance = balance
        self.history: list[int] = []

    def deposit(self, amount: int) -> int:
        if amount <= 0:
            raise ValueError("amount must be positive")
        self.balance += amount
        self.history.append(amount)
        return self.balance

    def withdraw(self, amount: int) -> int:
        if amount > self.balance:
            raise ValueError("insufficient funds")
        self.balance -= amount
        self.history.append(-amount)
        return self.balance

    def summary(self) -> str:
        return f"{{self.owner}}: {{self.balance}} after {{len(self.history)}} moves"
'''

FILLER = """

def table_{index}_{n}(size: int) -> dict[int, int]:
    table = {{}}
    for key in range(size):
        table[key] = (key * {n} + {index}) % 97
    return table
"""

TEST_TEMPLATE = """from app.mod{index} import Account{index}
from app.mod{index} import clamp_{index}, scale_{index}


def test_scale_{index}():
    assert scale_{index}([1, 2, 3], 2) == [3, 4, 5]


def test_clamp_{index}():
    assert clamp_{index}(5, 0, 3) == 3
    assert clamp_{index}(-1, 0, 3) == 0


def test_account_{index}():
    account = Account{index}("ana")
    assert account.deposit(5) == 5
    assert account.withdraw(2) == 3
"""


def generate(root: Path, modules: int) -> tuple[int, int]:
    """Write the repository under ``root``; return (lines of code, number of tests)."""
    (root / "app").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "app" / "__init__.py").write_text("")
    lines = 0
    for index in range(modules):
        text = MODULE_TEMPLATE.format(index=index)
        text += "".join(FILLER.format(index=index, n=n) for n in range(22))
        (root / "app" / f"mod{index}.py").write_text(text)
        (root / "tests" / f"test_mod{index}.py").write_text(
            TEST_TEMPLATE.format(index=index)
        )
        lines += text.count("\n")
    (root / "pyproject.toml").write_text(
        '[project]\nname = "bench-app"\nversion = "0"\ndependencies = []\n\n'
        '[tool.ruff]\nline-length = 100\n\n[tool.coverage.run]\nsource = ["app"]\n'
    )
    (root / "requirements.txt").write_text("pyyaml==6.0.1\nrequests==2.32.3\n")
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid"]
    subprocess.run([*git, "init", "-q", "-b", "main"], cwd=root, check=True)
    subprocess.run([*git, "add", "-A"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-qm", "base"], cwd=root, check=True)
    return lines, modules * 3


def _timed(args: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(
        args,
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    return time.perf_counter() - started


def sequential(root: Path, env: dict[str, str]) -> float:
    """Run the tools one after another, as a hand-written CI script would."""
    python = sys.executable
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*.py"))
    data = Path(tempfile.mkdtemp(prefix="bench-cov-"))
    steps = [
        [python, "-m", "ruff", "check", "--output-format", "json", *files],
        [python, "-m", "bandit", "-f", "json", "-q", *files],
        [python, "-m", "detect_secrets", "scan", *files],
        [
            python,
            "-m",
            "coverage",
            "run",
            f"--data-file={data}/.coverage",
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--junitxml={data}/junit.xml",
        ],
        [
            python,
            "-m",
            "coverage",
            "json",
            f"--data-file={data}/.coverage",
            "-o",
            f"{data}/c.json",
        ],
    ]
    total = sum(_timed(step, root, env) for step in steps)
    shutil.rmtree(data, ignore_errors=True)
    return total


def daw_check(root: Path, env: dict[str, str], cache: Path, store: Path) -> float:
    args = [
        sys.executable,
        "-m",
        "daw",
        "check",
        "--stage",
        "merge",
        "--quiet",
        "--osv-db",
        str(OSV_DB),
        "--index-url",
        "http://127.0.0.1:9/pypi",
        "--store",
        str(store),
        "--format",
        "json",
    ]
    return _timed(args, root, {**env, "DAW_CACHE_DIR": str(cache)})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rounds", type=int, default=3, help="Interleaved rounds (default 3)."
    )
    parser.add_argument(
        "--modules", type=int, default=120, help="Generated modules (default 120)."
    )
    parser.add_argument(
        "--markdown", type=Path, help="Append the results to this Markdown file."
    )
    options = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="daw-bench-"))
    root = work / "repo"
    lines, tests = generate(root, options.modules)
    env = dict(os.environ)
    print(f"generated {lines} lines, {tests} tests in {root}", file=sys.stderr)

    rows: dict[str, list[float]] = {"sequential": [], "cold": [], "warm": []}
    for round_number in range(options.rounds):
        cache = work / f"cache{round_number}"
        store = work / f"runs{round_number}.db"
        rows["sequential"].append(sequential(root, env))
        rows["cold"].append(daw_check(root, env, cache, store))
        rows["warm"].append(daw_check(root, env, cache, store))
        print(
            f"round {round_number + 1}: "
            + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in rows.items()),
            file=sys.stderr,
        )

    medians = {name: statistics.median(values) for name, values in rows.items()}
    report = _report(medians, rows, lines, tests, options.rounds)
    print(report)
    if options.markdown:
        with options.markdown.open("a", encoding="utf-8") as out:
            out.write(report)
    shutil.rmtree(work, ignore_errors=True)
    return 0


def _machine() -> str:
    return (
        f"{platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, {platform.platform()}"
    )


def _report(medians, rows, lines, tests, rounds) -> str:
    cold_ratio = medians["cold"] / medians["sequential"]
    warm_ratio = medians["warm"] / medians["cold"]
    today = dt.date.today().isoformat()
    out = [
        f"\n## daw check --stage merge, {today}\n",
        f"Machine: {_machine()}. Repository: {lines} generated lines, "
        f"{tests} tests; {rounds} interleaved rounds.\n",
        "| measurement | median (s) | all rounds (s) |",
        "|---|---|---|",
    ]
    for name, values in rows.items():
        rounds_text = ", ".join(f"{value:.2f}" for value in values)
        out.append(f"| {name} | {medians[name]:.2f} | {rounds_text} |")
    out.append("")
    out.append(
        f"cold / sequential = {cold_ratio:.2f} (target <= 0.8); "
        f"warm / cold = {warm_ratio:.3f} (target <= 0.1)\n"
    )
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
