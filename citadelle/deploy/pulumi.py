"""`citadelle pulumi ENV -- ...`: the Pulumi CLI on the environment's sovereign backend, quietly."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from citadelle import paths
from citadelle.environment import Environment, env_command
from citadelle.environment.projections import policy_config
from citadelle.errors import CitadelleError
from citadelle.sovereignty.backend import pulumi_environment

# The engine runs the pack on these commands: the same policies as the offline gate.
GATED_COMMANDS = frozenset({"preview", "up", "update"})


def write_policy_config(config: Mapping[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def pack_arguments(env: Environment, args: Sequence[str], config_file: Path,
                   pack_config: Mapping[str, Any] | None = None) -> list[str]:
    """``args`` with the policy pack attached when the command deploys or previews.

    An operator's own ``--policy-pack`` is kept and the project's pack is added beside it.
    """
    if not args or args[0] not in GATED_COMMANDS:
        return list(args)
    write_policy_config(pack_config if pack_config is not None else policy_config(env.settings),
                        config_file)
    return [*args, "--policy-pack", str(paths.POLICY_DIR),
            "--policy-pack-config", str(config_file)]


def run_pulumi(env: Environment, args: Sequence[str],
               pack_config: Mapping[str, Any] | None = None) -> int:
    """Run ``pulumi ARGS -s ENV`` in the project directory, only on a sovereign backend,
    with the policy pack attached to ``preview`` and ``up``."""
    environment = pulumi_environment(env)
    executable = shutil.which("pulumi", path=environment.get("PATH"))
    if executable is None:
        raise CitadelleError(
            "the Pulumi CLI is not on PATH; install it from the in-region mirror "
            "(docs/sovereignty.md) or use the offline commands (citadelle plan)"
        )
    with tempfile.TemporaryDirectory(prefix="citadelle-pulumi-") as tmp:
        gated = pack_arguments(env, args, Path(tmp) / "policy-config.json", pack_config)
        command = [executable, *gated, "--stack", env.name]
        return subprocess.run(command, env=environment, cwd=env.project_file.parent,
                              check=False).returncode


def _pulumi(args: argparse.Namespace) -> int:
    pulumi_args = [a for a in args.pulumi_args if a != "--"]
    if not pulumi_args:
        raise CitadelleError("nothing to run: give the pulumi command, e.g. "
                             f"`citadelle pulumi {args.env} -- preview`")
    return run_pulumi(Environment.load(args.env, project_file=Path(args.project)), pulumi_args)


def register(subparsers: Any) -> None:
    pulumi = env_command(
        subparsers, "pulumi",
        "run a pulumi command for an environment on its sovereign backend, quietly",
    )
    pulumi.add_argument("--project", default=str(paths.PROJECT_FILE), help=argparse.SUPPRESS)
    pulumi.add_argument("pulumi_args", nargs=argparse.REMAINDER,
                        help="the pulumi command and its options, after --")
    pulumi.set_defaults(func=_pulumi)
