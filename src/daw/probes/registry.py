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
