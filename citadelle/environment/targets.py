"""Where a deployed environment is: the target that supplies its stack outputs and access.

A target answers three questions for every post-deploy stage, so that no stage asks which
target it runs against: the stack outputs (:class:`~citadelle.environment.outputs.StackOutputs`),
how to log in (identity, sudo password file), and which role variables the place itself
imposes over the ones derived from the stack config (the lab's clones, for instance, reach
their host's mirror and collector instead of the platform's). ``prepare`` starts whatever the
target serves its hosts before they are hardened (the lab's log collector).

:class:`CloudTarget` is the deployed environment on its OpenStack cloud, read through the
Pulumi CLI or from saved outputs; the VM lab's target is ``citadelle.lab.target.LabTarget``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import shutil
import stat
import subprocess
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import yaml

from citadelle import paths
from citadelle.environment.outputs import StackOutputs
from citadelle.errors import CitadelleError

if TYPE_CHECKING:
    from citadelle.environment import Environment


@dataclass(frozen=True)
class Access:
    """How Ansible and the checks log in, and what the target imposes on the roles."""

    identity_file: Path | None = None
    become_password_file: Path | None = None
    role_vars: Mapping[str, Any] = field(default_factory=dict)


# The migration source's account key: from the operators' environment, never a file or option.
SOURCE_KEY_ENV = "CITADELLE_MIGRATION_SOURCE_KEY"


@dataclass(frozen=True)
class TransferEndpoints:
    """Where a migration reads and writes (``citadelle.migrate``), as the target serves them."""

    source_url: str
    account: str
    key: str = field(repr=False)
    source_ca: Path | None
    cloud: str
    clouds_yaml: Path | None
    gateways: tuple[str, ...]  # where the shard plan puts the copy
    loopback: bool = False  # endpoints on this machine's loopback (the lab's), allowed as such


class Target(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def label(self) -> str:
        """Where the outputs came from, for generated files' headers."""
        ...

    def up(self, env: Environment, log: Path) -> tuple[StackOutputs, str]:
        """Deploy (or stand in for deploying) ``env``; its outputs and a one-line summary."""
        ...

    def outputs(self, env: Environment) -> StackOutputs: ...

    def access(self, env: Environment) -> Access: ...

    def require_hardening_secrets(self) -> None:
        """Refuse, before anything is touched, what a hardening run would lack."""
        ...

    def prepare(self, env: Environment) -> list[str]:
        """Start what the target serves its hosts; lines saying what was started."""
        ...

    def baseline(self, env: Environment, out: Path) -> AbstractContextManager[Path | None]:
        """An inventory of one unhardened host of the platform's image, for the time of the
        context: the checks that pass there prove nothing of the roles. None if the target
        has none to offer."""
        ...

    def transfer_endpoints(self, env: Environment, cloud: str | None) -> TransferEndpoints:
        """The migration's source and destination cloud (``cloud``: a clouds.yaml entry)."""
        ...

    def gateway_inventory(self, env: Environment, names: Sequence[str],
                          inventory: Path | None) -> Path | None:
        """An inventory whose gateway group runs the copy's shards (only ``names`` when some
        are given); None where the copy runs on this machine."""
        ...

    def gateway_url(self, url: str) -> str:
        """``url`` as the gateways reach it."""
        ...

    def gateway_label(self, name: str) -> str:
        """How the evidence names gateway ``name``."""
        ...


def pulumi_cli(environment: Mapping[str, str]) -> str:
    """The Pulumi CLI's path, or a clear refusal: stack outputs and `up` need the real CLI."""
    executable = shutil.which("pulumi", path=environment.get("PATH"))
    if executable is None:
        raise CitadelleError(
            "the Pulumi CLI is not on PATH (needed to read the stack outputs); install it from "
            "the in-region mirror (docs/sovereignty.md) or pass saved outputs with --from FILE "
            "(or use --target lab)")
    return executable


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CitadelleError(f"{path}: file not found") from None
    except json.JSONDecodeError as err:
        raise CitadelleError(f"{path}: not JSON ({err.msg} at line {err.lineno})") from None


# The environment's GRUB superuser password hash (BP-028 R5): a file of the operators', given by
# --grub-password-hash-file or this variable, read by Ansible on the controller, never copied.
GRUB_HASH_ENV = "CITADELLE_GRUB_PASSWORD_HASH_FILE"


def grub_hash_pattern() -> re.Pattern[str]:
    """The form bp028_kernel's preflight accepts: its own variable, one definition."""
    role_vars = yaml.safe_load((paths.ROLES_DIR / "bp028_kernel" / "vars" / "main.yml")
                               .read_text(encoding="utf-8"))
    return re.compile(str(role_vars["bp028_kernel_grub_hash_pattern"]))


def grub_hash_vars(path: Path) -> dict[str, str]:
    """The role variable reading the hash from ``path``, once the file is checked."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8").strip()
    except OSError as err:
        raise CitadelleError(f"GRUB password hash file {path}: {err.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise CitadelleError(f"GRUB password hash file {path}: readable by others (mode "
                             f"{stat.S_IMODE(mode):04o}); chmod 600 it")
    if not grub_hash_pattern().match(text):
        raise CitadelleError(f"GRUB password hash file {path}: not the output of "
                             "grub-mkpasswd-pbkdf2 (grub.pbkdf2.sha512.ITERATIONS.SALT.HASH)")
    return {"bp028_kernel_grub_password_hash":
            "{{ lookup('ansible.builtin.file', " + json.dumps(str(path.resolve())) + ") }}"}


@dataclass(frozen=True)
class CloudTarget:
    """The environment deployed on its cloud: outputs from the Pulumi CLI or a saved file."""

    outputs_file: Path | None = None
    become_password_file: Path | None = None
    grub_password_hash_file: Path | None = None
    name: str = "cloud"

    @property
    def label(self) -> str:
        return str(self.outputs_file) if self.outputs_file else "`pulumi stack output --json`"

    def outputs(self, env: Environment) -> StackOutputs:
        if self.outputs_file is not None:
            raw = read_json(self.outputs_file)
        else:
            # Imported here: the backend policy is only needed when the CLI is asked.
            from citadelle.sovereignty.backend import pulumi_environment  # noqa: PLC0415

            environment = pulumi_environment(env)
            proc = subprocess.run(
                [pulumi_cli(environment), "stack", "output", "--json", "--stack", env.name],
                capture_output=True, text=True, check=False, env=environment,
                cwd=env.project_file.parent)
            if proc.returncode != 0:
                last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                raise CitadelleError(f"pulumi stack output -s {env.name} failed: {last}")
            raw = json.loads(proc.stdout)
        return StackOutputs.parse(raw).for_environment(env.name)

    def up(self, env: Environment, log: Path) -> tuple[StackOutputs, str]:
        """``pulumi up`` through the Automation API (which drives the CLI), pack attached."""
        # Imported here: the backend policy and the Automation API are only needed for `up`.
        from pulumi import automation  # noqa: PLC0415

        from citadelle.deploy.pulumi import pack_arguments  # noqa: PLC0415
        from citadelle.sovereignty.backend import pulumi_environment  # noqa: PLC0415

        environment = pulumi_environment(env)
        try:
            pulumi_cli(environment)
        except CitadelleError:
            raise CitadelleError(
                "the Pulumi CLI is not on PATH: `pulumi up` runs through the Automation API, "
                "which drives the CLI. Install it from the in-region mirror "
                f"(docs/sovereignty.md), or run `citadelle deploy {env.name} --target lab`, or "
                f"continue after an up made elsewhere with `citadelle deploy {env.name} "
                "--from-step inventory --outputs FILE`", exit_code=2) from None
        # The engine runs the same policy pack as the offline gate, with the same config.
        policy_args = pack_arguments(env, ["up"], log.with_name("policy-config.json"))[1:]
        try:
            with log.open("w", encoding="utf-8") as handle:
                stack = automation.select_stack(
                    stack_name=env.name, work_dir=str(env.project_file.parent),
                    opts=automation.LocalWorkspaceOptions(env_vars=environment))
                result = stack.up(on_output=lambda line: handle.write(line + "\n"),
                                  policy_packs=[policy_args[1]],
                                  policy_pack_configs=[policy_args[3]])
        except automation.errors.CommandError as err:
            # The engine's own words (a policy violation, a refused credential...), one line.
            lines = [line.strip() for line in str(err).splitlines() if line.strip()]
            last = next((line for line in reversed(lines) if "error" in line.lower()),
                        lines[-1] if lines else "no output").removeprefix("stderr: ")
            raise CitadelleError(f"pulumi up -s {env.name} failed: {last} (see {log})",
                                 exit_code=1) from None
        except json.JSONDecodeError as err:
            raise CitadelleError(f"pulumi up -s {env.name}: the engine's answer is not JSON "
                                 f"({err.msg}); is the CLI on PATH the Pulumi CLI?") from None
        outputs = StackOutputs.parse(
            {key: value.value for key, value in result.outputs.items()}).for_environment(env.name)
        summary = result.summary.resource_changes or {}
        return outputs, "pulumi up: " + ", ".join(f"{k} {v}" for k, v in sorted(summary.items()))

    def access(self, env: Environment) -> Access:
        # Operators log in with their own agent-held keys; the only role variable the target
        # adds is the GRUB password hash, from the operators' file.
        hashed = self.grub_password_hash_file
        return Access(become_password_file=self.become_password_file,
                      role_vars=grub_hash_vars(hashed) if hashed else {})

    def require_hardening_secrets(self) -> None:
        """Refuse, before anything is touched, a hardening run that would lack the hash."""
        if self.grub_password_hash_file is None:
            raise CitadelleError(
                "hardening a cloud environment needs its GRUB superuser password hash (BP-028 "
                "R5): pass --grub-password-hash-file FILE or set "
                f"{GRUB_HASH_ENV} (FILE: the output of grub-mkpasswd-pbkdf2, mode 600)")
        grub_hash_vars(self.grub_password_hash_file)

    def prepare(self, env: Environment) -> list[str]:
        return []

    def baseline(self, env: Environment, out: Path) -> AbstractContextManager[Path | None]:
        # A deployed environment has no pristine host to spare: reports say so.
        return nullcontext(None)

    def transfer_endpoints(self, env: Environment, cloud: str | None) -> TransferEndpoints:
        """The declared source (its key from ``$CITADELLE_MIGRATION_SOURCE_KEY``) and the
        operators' cloud entry; the shards go to the environment's transfer gateways."""
        migration = env.settings.migration
        if migration is None:
            raise CitadelleError(f"environment {env.name}: no migration source declared")
        key = os.environ.get(SOURCE_KEY_ENV, "")
        if not key:
            raise CitadelleError(f"source {migration.source.url}: no credential "
                                 f"({SOURCE_KEY_ENV} is not set)")
        if not cloud:
            raise CitadelleError("no destination cloud selected: pass --os-cloud NAME")
        return TransferEndpoints(
            source_url=migration.source.url, account=migration.source.account, key=key,
            source_ca=None, cloud=cloud, clouds_yaml=None,
            gateways=tuple(f"{env.prefix}-gateway-{i}"
                           for i in range(env.settings.compute.gateway.count)))

    def gateway_inventory(self, env: Environment, names: Sequence[str],
                          inventory: Path | None) -> Path:
        """The environment's inventory, as `citadelle inventory ENV` wrote it."""
        path = inventory or paths.inventory_path(env.name)
        if not path.is_file():
            raise CitadelleError(f"inventory {path} not found: the shards run on the "
                                 f"environment's transfer gateways (`citadelle inventory "
                                 f"{env.name}` writes it, or pass --inventory FILE)")
        return path

    def gateway_url(self, url: str) -> str:
        return url

    def gateway_label(self, name: str) -> str:
        return name


# Every target by name, imported on use: only the lab's own commands import the lab.
TARGETS: dict[str, str] = {
    "cloud": "citadelle.environment.targets:CloudTarget",
    "lab": "citadelle.lab.target:LabTarget",
}


def add_target_choice(parser: argparse.ArgumentParser, cloud: str) -> None:
    """``--target`` and ``--lab-run-dir``: where the environment is (``cloud`` says what the
    cloud target means to the command)."""
    parser.add_argument("--target", choices=sorted(TARGETS), default="cloud",
                        help=f"cloud: {cloud}; lab: the local VM lab standing in for it "
                        "(default: %(default)s)")
    parser.add_argument("--lab-run-dir", metavar="DIR", type=Path, default=None,
                        help="with --target lab: folder of the clones (default: .lab/)")


def add_target_options(parser: argparse.ArgumentParser) -> None:
    """The options every post-deploy command takes to say where the environment is."""
    add_target_choice(parser, "the deployed environment (Pulumi CLI or --from FILE)")
    parser.add_argument("--from", dest="from_file", metavar="FILE", type=Path, default=None,
                        help="with --target cloud: saved `pulumi stack output --json`")
    parser.add_argument("--become-password-file", metavar="FILE", type=Path, default=None,
                        help="with --target cloud: file holding the admin's sudo password "
                        "(referenced, never copied)")
    parser.add_argument("--grub-password-hash-file", metavar="FILE", type=Path, default=None,
                        help="with --target cloud: file holding the GRUB superuser's "
                        f"grub-mkpasswd-pbkdf2 hash, mode 600 (default: ${GRUB_HASH_ENV}; "
                        "referenced, never copied)")


def make_target(name: str, *, from_file: Path | None = None,
                become_password_file: Path | None = None,
                grub_password_hash_file: Path | None = None,
                lab_run_dir: Path | None = None) -> Target:
    """The target called ``name``, with the options that apply to it (the GRUB hash file
    defaults to ``$CITADELLE_GRUB_PASSWORD_HASH_FILE`` for the cloud)."""
    if name not in TARGETS:
        raise CitadelleError(f"unknown target {name!r} (known: {', '.join(sorted(TARGETS))})",
                             exit_code=2)
    module, _, attribute = TARGETS[name].partition(":")
    factory = getattr(importlib.import_module(module), attribute)
    if name == "cloud":
        from_env = os.environ.get(GRUB_HASH_ENV)
        target: Target = factory(
            outputs_file=from_file, become_password_file=become_password_file,
            grub_password_hash_file=grub_password_hash_file or (
                Path(from_env) if from_env else None))
    else:
        if from_file is not None or become_password_file is not None or \
                grub_password_hash_file is not None:
            raise CitadelleError("--from, --become-password-file and --grub-password-hash-file "
                                 "are for --target cloud; the lab supplies its own outputs and "
                                 "credentials", exit_code=2)
        target = factory(run_dir=lab_run_dir)
    return target


def target_from_args(args: argparse.Namespace) -> Target:
    return make_target(args.target, from_file=args.from_file,
                       become_password_file=args.become_password_file,
                       grub_password_hash_file=args.grub_password_hash_file,
                       lab_run_dir=args.lab_run_dir)
