"""`citadelle lab ...`: the VM lab's command group, every lab subcommand registered here.

:func:`lab_from_args` builds the :class:`~citadelle.lab.Lab` from the group's shared options
(``--lab-dir``, ``--memory``), so every subcommand targets the same lab.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

from citadelle.deploy.harden import add_harden_options, harden
from citadelle.errors import CitadelleError
from citadelle.lab import ntp, source_command
from citadelle.lab.cloud import command as cloud
from citadelle.lab.collector import GUEST_ADDRESS, LISTEN, PORT, Collector
from citadelle.lab.core import Lab
from citadelle.lab.ntp import TimeServer
from citadelle.lab.outputs import ROLES
from citadelle.lab.target import LabTarget
from citadelle.paths import LAB_DIR

DEFAULT_CLONES = "bastion=bastion,gw=gateway,node1=node"


def lab_from_args(args: argparse.Namespace) -> Lab:
    return Lab(root=args.lab_dir, memory_mib=args.memory)


def parse_clones(text: str) -> dict[str, str]:
    """``name=role,...`` to a mapping; roles are checked by the lab."""
    clones: dict[str, str] = {}
    for item in text.split(","):
        name, sep, role = item.strip().partition("=")
        if not sep or not name or not role:
            raise CitadelleError(f"lab up --clones: {item!r} is not NAME=ROLE "
                                 f"(roles: {', '.join(ROLES)}; example: {DEFAULT_CLONES})")
        if name in clones:
            raise CitadelleError(f"lab up --clones: clone {name!r} given twice")
        clones[name] = role
    return clones


def _up(args: argparse.Namespace) -> int:
    clones = parse_clones(args.clones)
    inventory = lab_from_args(args).up(clones)
    for clone in inventory.clones:
        print(f"{clone.name}\t{clone.role}\t127.0.0.1:{clone.port}\tpid {clone.pid}")
    print(f"ssh_config: {inventory.ssh_config}")
    print(f"inventory: {inventory.inventory}")
    return 0


def _down(args: argparse.Namespace) -> int:
    removed = lab_from_args(args).down(args.names or None)
    print("removed: " + (", ".join(removed) or "nothing"))
    if not args.names and Collector(args.lab_dir).stop():
        print("log collector stopped (received journals kept)")
    if not args.names and TimeServer(args.lab_dir).stop():
        print("NTP server stopped")
    return 0


def _ntp(args: argparse.Namespace) -> int:
    server = TimeServer(args.lab_dir)
    if args.action == "up":
        print(f"serving time on 127.0.0.1:{ntp.PORT} (clones: {GUEST_ADDRESS}:{ntp.PORT}), "
              f"pid {server.start()}")
    elif args.action == "down":
        print("stopped" if server.stop() else "not running")
    else:
        pid = server.pid()
        print(f"NTP server: up, pid {pid}" if pid else "NTP server: down")
    return 0


def _collector(args: argparse.Namespace) -> int:
    log = Collector(args.lab_dir)
    if args.action == "up":
        pids = log.start()
        print(f"listening on {LISTEN} (clones: https://{GUEST_ADDRESS}:{PORT}), mutual TLS; "
              + ", ".join(f"{name} pid {pid}" for name, pid in pids.items()))
        return 0
    if args.action == "down":
        print(("stopped " + ", ".join(log.stop())) if log.running() else "not running")
        return 0
    pids = log.pids()
    print(f"collector: {'up' if log.running() else 'down'}"
          + "".join(f", {name} pid {pid}" for name, pid in pids.items()))
    accepted = sorted(log.accepted_clients())
    print(f"client certificates accepted: {', '.join(accepted) or 'none yet'}")
    for host, count in log.received().items():
        print(f"{host}\t{count} entries")
    return 0


def _status(args: argparse.Namespace) -> int:
    rows = lab_from_args(args).status()
    if args.json:
        print(json.dumps([row.__dict__ for row in rows], indent=2))
        return 0
    for row in rows:
        state = f"up, {row.rss_mib} MiB RSS" if row.alive else "dead (run lab down)"
        print(f"{row.name}\t{row.role}\t127.0.0.1:{row.port}\tpid {row.pid}\t{state}")
    if not rows:
        print("no clones")
    return 0


def _ssh(args: argparse.Namespace) -> int:
    lab = lab_from_args(args)
    target = lab.target(args.name)
    command = target.command(" ".join(args.command) if args.command else None)
    return subprocess.run(command, check=False).returncode


def _harden(args: argparse.Namespace) -> int:
    for line in LabTarget(args.lab_dir).prepare_lines():
        print(line + "; `citadelle lab collector` shows receipts")
    # The lab's inventory carries what the clones impose (citadelle.lab.outputs.lab_role_vars).
    return harden(args)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    lab = subparsers.add_parser("lab", help="local Debian 12 VMs standing in for the servers",
                                description="Local Debian 12 VMs under qemu standing in for "
                                "the bastion, transfer gateway and nodes.")
    lab.add_argument("--lab-dir", type=Path, default=LAB_DIR,
                     help="lab directory (default: %(default)s)")
    lab.add_argument("--memory", type=int, default=1024, metavar="MIB",
                     help="RAM per VM in MiB (default: %(default)s); part of the snapshot")
    group = lab.add_subparsers(dest="lab_command", metavar="LAB_COMMAND", required=True)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        return group.add_parser(name, help=help_text, description=help_text)

    up = add("up", "restore clones from the golden snapshot (building "
                         "the image and snapshot first if needed) and write the inventory")
    up.add_argument("--clones", default=DEFAULT_CLONES, metavar="NAME=ROLE,...",
                    help=f"clones to restore, roles {', '.join(ROLES)} "
                    "(default: %(default)s)")
    up.set_defaults(func=_up)
    down = add("down", "kill clones by PID and delete their overlays")
    down.add_argument("names", nargs="*", metavar="NAME", help="clones (default: all)")
    down.set_defaults(func=_down)
    status = add("status", "list clones, their ports, PIDs and RSS")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(func=_status)
    collector = add("collector", "the lab's log collector (journal "
                                "upload target of the clones, mutual TLS): start, stop, show "
                                "what it received")
    collector.add_argument("action", choices=("up", "down", "status"), nargs="?",
                           default="status")
    collector.set_defaults(func=_collector)
    ntp_parser = add("ntp", "the lab's NTP server (the clones' time source, 10.0.2.2:123): "
                     "start, stop, status")
    ntp_parser.add_argument("action", choices=("up", "down", "status"), nargs="?",
                            default="status")
    ntp_parser.set_defaults(func=_ntp)
    ssh = add("ssh", "open SSH to a clone as the admin user")
    ssh.add_argument("name", metavar="NAME")
    ssh.add_argument("command", nargs=argparse.REMAINDER, help="command to run instead of a shell")
    ssh.set_defaults(func=_ssh)
    harden_parser = add("harden", "harden the lab's clones to ANSSI-BP-028 (the lab's endpoints "
                        "and log collector)")
    add_harden_options(harden_parser, inventory=LAB_DIR / "inventory.yml")
    harden_parser.set_defaults(func=_harden)
    cloud.register(add("cloud", cloud.HELP))
    source_command.register(add("source", source_command.HELP))
