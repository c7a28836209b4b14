"""The registry of probes that ``daw check`` runs, in a fixed order."""

from __future__ import annotations

from daw.probes.base import Probe


def all_probes() -> list[Probe]:
    """Return one instance of every probe, sorted by name.

    The modules are imported here rather than at the top, so that importing the
    registry stays cheap for commands that run no probe.
    """
    from daw.probes.coverage import TestCoverageProbe
    from daw.probes.depage import DependencyAgeProbe
    from daw.probes.lint import EslintProbe, RuffProbe
    from daw.probes.sast import BanditProbe, SarifImportProbe
    from daw.probes.sca import ScaProbe
    from daw.probes.secrets import SecretsProbe
    from daw.probes.tsconfig import TsconfigProbe
    from daw.probes.typecheck import TypeCheckProbe

    probes: list[Probe] = [
        BanditProbe(),
        DependencyAgeProbe(),
        EslintProbe(),
        RuffProbe(),
        SarifImportProbe(),
        ScaProbe(),
        SecretsProbe(),
        TestCoverageProbe(),
        TsconfigProbe(),
        TypeCheckProbe(),
    ]
    return sorted(probes, key=lambda probe: probe.name)


# Rough relative run time of the slow probes on a typical repository. Probes start
# in descending order, so the long single-process ones (the test run, bandit,
# mypy) overlap, and detect-secrets, which starts one worker per CPU itself, runs
# last. The values only order the work; results are sorted by name regardless.
LAUNCH_COST = {"tests": 30, "bandit": 20, "typecheck": 20, "eslint": 10}


def launch_order(probes: list[Probe]) -> list[Probe]:
    """Return ``probes`` in the order they should start: slowest first, then by name."""
    return sorted(
        probes, key=lambda probe: (-LAUNCH_COST.get(probe.name, 0), probe.name)
    )
