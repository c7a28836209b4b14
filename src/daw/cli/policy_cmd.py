"""``daw policy show`` and ``daw policy validate``."""

from __future__ import annotations

import json
from pathlib import Path

import typer
import yaml

from daw import git
from daw.cli.common import REPO_OPTION
from daw.policy.loading import PROJECT_POLICY, load_policy
from daw.stages import ENVIRONMENTS, Stage

policy_app = typer.Typer(
    help="Show or validate the quality-gate policy.", no_args_is_help=True
)


def _stage_effect(action_value: str, stage: Stage) -> str:
    from daw.stages import Action

    action = Action(action_value)
    if action.blocks_at(stage):
        return "blocks"
    return "warns"


@policy_app.command("show")
def show(
    stage: Stage = typer.Option(
        Stage.MERGE, "--stage", "-s", help="Stage to describe."
    ),
    environment: str = typer.Option(
        "development",
        "--env",
        "-e",
        metavar="ENV",
        help="Environment: development, staging or production.",
    ),
    policy: Path | None = typer.Option(
        None,
        "--policy",
        metavar="FILE",
        help="Policy file [default: .daw/policy.yaml].",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of YAML."),
    repo: Path = REPO_OPTION,
) -> None:
    """Print the effective policy for a stage and environment, with its digest."""
    root = _root(repo)
    effective, sources = load_policy(
        root, policy.resolve() if policy else None, environment
    )
    data = effective.canonical()
    for gate in data["gates"].values():
        for criterion in gate.values():
            enabled = criterion["enabled"]
            criterion[f"at_{stage.value}"] = (
                _stage_effect(criterion["action"], stage) if enabled else "disabled"
            )
    document = {
        "stage": stage.value,
        "environment": environment,
        "policy_digest": effective.digest(),
        "sources": [source.path for source in sources],
        **data,
    }
    if as_json:
        typer.echo(json.dumps(document, indent=2, sort_keys=True))
    else:
        typer.echo(
            yaml.safe_dump(document, sort_keys=False, allow_unicode=True), nl=False
        )


@policy_app.command("validate")
def validate(
    path: Path | None = typer.Argument(
        None, help="Policy file [default: .daw/policy.yaml]."
    ),
    repo: Path = REPO_OPTION,
) -> None:
    """Check a policy file and each environment override; exit 2 when invalid."""
    root = _root(repo) if path is None else path.resolve().parent
    target = path.resolve() if path else root / PROJECT_POLICY
    for environment in ENVIRONMENTS:
        load_policy(root, target, environment)
    typer.echo(f"{target}: valid")


def _root(repo: Path) -> Path:
    return git.find_root(repo.resolve())
