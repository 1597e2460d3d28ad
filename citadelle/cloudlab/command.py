"""`citadelle lab cloud up|down|status`: the loopback OpenStack for tests and the lab."""

from __future__ import annotations

import argparse

from citadelle.cloudlab import lab
from citadelle.lab.commands import add_lab_command


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = add_lab_command(
        subparsers,
        "cloud",
        "the loopback OpenStack (Keystone, Barbican on SoftHSM2, Neutron and Cinder APIs) on "
        f"127.0.0.1; credentials in {lab.CLOUDS_YAML} (clouds {lab.CLOUD_NAME}, "
        f"{lab.ADMIN_CLOUD_NAME})",
    )
    actions = parser.add_subparsers(dest="cloud_action", metavar="ACTION", required=True)
    up = actions.add_parser("up", help="start the services (bootstrap and snapshot on first use)")
    up.add_argument(
        "--fresh", action="store_true", help="discard the snapshot and bootstrap from scratch"
    )
    up.set_defaults(func=_up)
    down = actions.add_parser("down", help="stop the services by PID")
    down.set_defaults(func=_down)
    status = actions.add_parser("status", help="list the running services")
    status.set_defaults(func=_status)


def _up(args: argparse.Namespace) -> int:
    result = lab.up(fresh=args.fresh)
    kind = "bootstrapped" if result.cold else "started from snapshot"
    pids = ", ".join(f"{name} {pid}" for name, pid in result.pids.items())
    print(f"cloud lab {kind} in {result.seconds:.1f} s (pids: {pids})")
    print(f"OS_CLIENT_CONFIG_FILE={lab.CLOUDS_YAML} OS_CLOUD={lab.CLOUD_NAME}")
    return 0


def _down(args: argparse.Namespace) -> int:
    stopped = lab.down()
    print(f"cloud lab stopped: {', '.join(stopped) if stopped else 'nothing was running'}")
    return 0


def _status(args: argparse.Namespace) -> int:
    services = lab.running()
    for name in lab.SERVICES:
        state = f"running (pid {services[name]})" if name in services else "stopped"
        print(f"{name:10} {state}")
    return 0 if len(services) == len(lab.SERVICES) else 1
