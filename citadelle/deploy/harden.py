"""`citadelle harden`: run the ANSSI-BP-028 hardening playbooks through ansible-runner.

Each run gets its own folder (``runs/harden-<UTC time>/`` unless given): ansible-runner's
private data dir with the events, the stdout and the per-host stats, so an auditor can replay
what was changed. The summary prints ok/changed/failed per host and every failure's message;
the exit code is 0 only when no host failed or was unreachable.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ansible_runner

from citadelle.environment.toolchain import quiet_env
from citadelle.errors import CitadelleError
from citadelle.paths import PLAYBOOKS_DIR, REPO_ROOT, ROLES_DIR, RUNS_DIR

ANSIBLE_CONFIG = REPO_ROOT / "ansible.cfg"
PLAYBOOKS = ("site", "bastion", "gateway", "node")
# The Ansible of the interpreter running citadelle (the project's venv) comes first on PATH.
VENV_BIN = Path(sys.executable).parent
# One Python per host for the whole run instead of one per task (ansible.cfg explains why).
_MITOGEN = importlib.util.find_spec("ansible_mitogen")
MITOGEN_STRATEGIES = Path(str(_MITOGEN and _MITOGEN.origin)).parent / "plugins" / "strategy"


# The repository root is the citadelle.hardening collection (galaxy.yml): Ansible finds it, and
# the roles their filter plugin, through a collections path where it is this very checkout.
COLLECTIONS_DIR = REPO_ROOT / ".ansible-collections"


def collections_dir(base: Path = COLLECTIONS_DIR) -> Path:
    """``base`` holding ``ansible_collections/citadelle/hardening`` -> the repository root."""
    link = base / "ansible_collections" / "citadelle" / "hardening"
    target = Path(os.path.relpath(REPO_ROOT, link.parent))
    if not (link.is_symlink() and Path(os.readlink(link)) == target):
        link.parent.mkdir(parents=True, exist_ok=True)
        link.unlink(missing_ok=True)
        link.symlink_to(target, target_is_directory=True)
    return base


def ansible_env() -> dict[str, str]:
    """Environment of every Ansible run: project config, no colour, nothing sent outside."""
    quiet = quiet_env({})
    return {
        # The quiet, sovereign tool-chain settings shared by every citadelle subprocess
        # (docs/sovereignty.md), collections from the pinned ansible package included.
        **quiet,
        "ANSIBLE_COLLECTIONS_PATH": os.pathsep.join(
            [str(collections_dir()), quiet["ANSIBLE_COLLECTIONS_PATH"]]),
        "ANSIBLE_CONFIG": str(ANSIBLE_CONFIG),
        "ANSIBLE_ROLES_PATH": str(ROLES_DIR),
        "ANSIBLE_STRATEGY_PLUGINS": str(MITOGEN_STRATEGIES),
        "ANSIBLE_STRATEGY": "mitogen_linear",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_DEPRECATION_WARNINGS": "0",
        "ANSIBLE_SYSTEM_WARNINGS": "0",
        "PATH": os.pathsep.join([str(VENV_BIN), os.environ.get("PATH", os.defpath)]),
    }


@dataclass
class HostStats:
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0


@dataclass
class Failure:
    host: str
    task: str
    message: str


@dataclass
class HardenResult:
    run_dir: Path
    status: str
    rc: int
    elapsed: float
    hosts: dict[str, HostStats] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    # Facts the roles computed with set_fact (e.g. the recommendations applied), per host.
    facts: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.rc == 0 and not any(s.failed or s.unreachable for s in self.hosts.values())

    @property
    def changed(self) -> int:
        return sum(s.changed for s in self.hosts.values())

    def summary(self) -> str:
        lines = [f"run folder: {self.run_dir}",
                 f"status: {self.status} (rc {self.rc}) in {self.elapsed:.0f} s"]
        for host, s in sorted(self.hosts.items()):
            lines.append(f"  {host}: ok={s.ok} changed={s.changed} failed={s.failed} "
                         f"unreachable={s.unreachable} skipped={s.skipped}")
        lines += [f"  FAILED {f.host} | {f.task}: {f.message}" for f in self.failures]
        return "\n".join(lines)


def _failure_message(result: Mapping[str, Any]) -> str:
    parts = [str(result.get("msg", "")).strip()]
    for key in ("stderr", "module_stderr"):
        text = str(result.get(key, "")).strip()
        if text and text not in parts[0]:
            parts.append(text)
    return " | ".join(p for p in parts if p).replace("\n", " ")[:600]


def _collect(runner: Any) -> tuple[dict[str, HostStats], list[Failure], dict[str, dict[str, Any]]]:
    stats: dict[str, Any] = runner.stats or {}
    hosts: dict[str, HostStats] = {}
    for key, attr in (("ok", "ok"), ("changed", "changed"), ("failures", "failed"),
                      ("dark", "unreachable"), ("skipped", "skipped")):
        for host, count in (stats.get(key) or {}).items():
            setattr(hosts.setdefault(host, HostStats()), attr, int(count))
    failures = []
    facts: dict[str, dict[str, Any]] = {}
    for event in runner.events:
        data = event.get("event_data", {})
        if event.get("event") == "runner_on_ok" and data.get("task_action", "").endswith(
                "set_fact"):
            facts.setdefault(str(data.get("host")), {}).update(
                data.get("res", {}).get("ansible_facts", {}))
        if event.get("event") not in ("runner_on_failed", "runner_on_unreachable"):
            continue
        if data.get("ignore_errors"):
            continue
        failures.append(Failure(host=str(data.get("host", "?")), task=str(data.get("task", "?")),
                                message=_failure_message(data.get("res", {}))))
    return hosts, failures, facts


def new_run_dir(base: Path = RUNS_DIR) -> Path:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = base / f"harden-{stamp}"
    path.mkdir(parents=True)
    return path


def run_playbook(
    playbook: str | Path,
    inventory: Path,
    *,
    limit: str | None = None,
    tags: str | None = None,
    check: bool = False,
    extravars: Mapping[str, Any] | None = None,
    run_dir: Path | None = None,
    forks: int | None = None,
    quiet: bool = True,
    envvars: Mapping[str, str] | None = None,
) -> HardenResult:
    """Run one playbook (a name from PLAYBOOKS or a path) and summarise it per host."""
    path = PLAYBOOKS_DIR / f"{playbook}.yml" if str(playbook) in PLAYBOOKS else Path(playbook)
    if not path.is_file():
        raise CitadelleError(f"harden: playbook {playbook!r} not found "
                             f"(choose one of {', '.join(PLAYBOOKS)} or give a path)")
    if not inventory.is_file():
        raise CitadelleError(f"harden: inventory {inventory} not found "
                             "(citadelle lab up writes .lab/inventory.yml)")
    directory = run_dir or new_run_dir()
    directory.mkdir(parents=True, exist_ok=True)
    cmdline = "--check --diff" if check else None
    start = time.monotonic()
    try:
        runner = ansible_runner.run(
            private_data_dir=str(directory),
            playbook=str(path.resolve()),
            inventory=str(inventory.resolve()),
            # In memory (suppress_env_files): nothing of it is written to env/.
            envvars={**ansible_env(), **(envvars or {})},
            extravars=dict(extravars or {}),
            limit=limit,
            tags=tags,
            forks=forks,
            cmdline=cmdline,
            quiet=quiet,
            suppress_env_files=True,
        )
    finally:
        # ansible-runner records the whole process environment (the operator's credentials,
        # the transfer engine's keys) in artifacts/<ident>/command: it never outlives the run.
        for record in directory.glob("artifacts/*/command"):
            record.unlink()
    elapsed = time.monotonic() - start
    hosts, failures, facts = _collect(runner)
    return HardenResult(run_dir=directory, status=str(runner.status), rc=int(runner.rc or 0),
                        elapsed=elapsed, hosts=hosts, failures=failures, facts=facts)


def harden(args: argparse.Namespace) -> int:
    """Run the options' playbook over ``args.inventory`` and print the summary."""
    if args.inventory is None:
        raise CitadelleError("harden: --inventory FILE is required (`citadelle inventory ENV` "
                             "writes one; the lab's: `citadelle lab harden`)")
    extravars: dict[str, Any] = {}
    if args.aide_rebaseline:
        extravars["bp028_integrity_aide_rebaseline"] = True
    result = run_playbook(args.playbook, args.inventory, limit=args.limit, tags=args.tags,
                          check=args.check, extravars=extravars, run_dir=args.run_dir,
                          forks=args.forks, quiet=not args.verbose)
    print(result.summary())
    return 0 if result.ok else 1


def add_harden_options(parser: argparse.ArgumentParser, *, inventory: Path | None = None) \
        -> None:
    parser.add_argument("--inventory", type=Path, default=inventory, metavar="FILE",
                        help="Ansible inventory" + (f" (default: {inventory})" if inventory
                                                    else " (from citadelle inventory ENV)"))
    parser.add_argument("--playbook", default="site", metavar="NAME|PATH",
                        help=f"{', '.join(PLAYBOOKS)} or a playbook path (default: %(default)s)")
    parser.add_argument("--limit", default=None, metavar="PATTERN", help="Ansible host pattern")
    parser.add_argument("--tags", default=None, metavar="TAGS",
                        help="only these concerns, e.g. bp028_ssh,bp028_firewall_nftables")
    parser.add_argument("--check", action="store_true", help="dry run (--check --diff)")
    parser.add_argument("--forks", type=int, default=None, help="parallel hosts")
    parser.add_argument("--run-dir", type=Path, default=None, metavar="DIR",
                        help="run folder (default: runs/harden-<UTC time>)")
    parser.add_argument("--aide-rebaseline", action="store_true",
                        help="rebuild the AIDE database from the nodes as they are now, after "
                        "a legitimate change (BP-028 R76)")
    parser.add_argument("--verbose", action="store_true", help="stream Ansible's output")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "harden", help="harden nodes to ANSSI-BP-028 with the project's playbooks",
        description="Run the ANSSI-BP-028 hardening playbooks through ansible-runner.")
    add_harden_options(parser)
    parser.set_defaults(func=harden)
