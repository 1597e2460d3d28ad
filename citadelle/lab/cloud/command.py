"""`citadelle lab cloud up|down|status`: the loopback OpenStack for tests and the lab."""

from __future__ import annotations

import argparse

from citadelle.errors import CitadelleError
from citadelle.lab.cloud import lab

HELP = ("the loopback OpenStack (Keystone, Barbican on SoftHSM2, Neutron and Cinder APIs) on "
        f"127.0.0.1; credentials in {lab.CLOUDS_YAML} (clouds {lab.CLOUD_NAME}, "
        f"{lab.ADMIN_CLOUD_NAME})")


def register(parser: argparse.ArgumentParser) -> None:
    """``citadelle lab cloud ...`` under the lab group's ``cloud`` parser."""
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
    seed = actions.add_parser(
        "seed",
        help="deploy an environment's offline plan into the lab project (as `pulumi up` would), "
        "for drift demonstrations",
    )
    seed.add_argument("env", metavar="ENV", help="environment whose plan to deploy")
    seed.set_defaults(func=_seed)


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


def _seed(args: argparse.Namespace) -> int:
    # Imported here: openstacksdk and the Pulumi program cost seconds other commands skip.
    from citadelle.lab.cloud.provision import connect  # noqa: PLC0415
    from citadelle.lab.cloud.seed import seed  # noqa: PLC0415
    from citadelle.plan.plan import plan_environment  # noqa: PLC0415

    if len(lab.running()) != len(lab.SERVICES):
        raise CitadelleError("cloud lab is not running: run `citadelle lab cloud up` first")
    admin = connect(lab.ADMIN_CLOUD_NAME, str(lab.CLOUDS_YAML))
    member = connect(lab.CLOUD_NAME, str(lab.CLOUDS_YAML))
    seeded = seed(admin, member, plan_environment(args.env), member.current_project_id)
    print(
        f"seeded {len(seeded.ids)} resources of {args.env} into project {lab.CLOUD_NAME}; "
        f"audit with: citadelle audit-cloud drift --env {args.env} --os-cloud {lab.CLOUD_NAME}"
    )
    return 0
