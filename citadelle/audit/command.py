"""`citadelle audit-cloud conformance|drift`: interrogate a live OpenStack through its APIs."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from citadelle.audit import report
from citadelle.audit.model import Result, Status
from citadelle.errors import CitadelleError

MODES = ("lab", "prod")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "audit-cloud",
        help="conformance of a candidate OpenStack cloud, or drift of a deployed environment",
        description=(
            "conformance: can this cloud host the environment (EU endpoints and regions, TLS, "
            "Barbican usable by a member, LUKS volume type, closed default group, zones, "
            "quotas)? drift: does the environment's project still match the offline plan? "
            "Exit 1 on any high-severity failure, 2 when the cloud cannot be audited."
        ),
    )
    parser.add_argument("audit", choices=("conformance", "drift"), metavar="conformance|drift")
    parser.add_argument("--env", required=True, help="environment whose config and plan apply")
    parser.add_argument(
        "--os-cloud",
        default=os.environ.get("OS_CLOUD"),
        help="clouds.yaml entry (default: $OS_CLOUD; file from $OS_CLIENT_CONFIG_FILE)",
    )
    parser.add_argument(
        "--mode",
        choices=MODES,
        default="prod",
        help="lab: loopback endpoints allowed and TLS reported as not checked (default: prod)",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="write results as JSON")
    parser.add_argument("--sarif", type=Path, metavar="FILE", help="write SARIF 2.1.0")
    parser.add_argument("--junit", type=Path, metavar="FILE", help="write JUnit XML")
    parser.set_defaults(func=handle)


def connect(cloud: str | None) -> Any:
    """An authenticated openstacksdk connection, or one clear line saying why not."""
    # Imported here: openstacksdk costs ~1 s that other commands should not pay.
    import openstack  # noqa: PLC0415
    from keystoneauth1 import exceptions as ks_exc  # noqa: PLC0415

    if not cloud:
        raise CitadelleError("no cloud selected: pass --os-cloud NAME or set OS_CLOUD")
    # keystoneauth logs discovery fallbacks on stderr; the one-line error says it all.
    logging.getLogger("keystoneauth").setLevel(logging.ERROR)
    try:
        conn = openstack.connect(cloud=cloud)
        auth_url = conn.config.get_auth_args().get("auth_url", "?")
        conn.authorize()
    except openstack.exceptions.ConfigException as err:
        raise CitadelleError(f"cloud {cloud!r}: {_one_line(err)}") from None
    except (ks_exc.ClientException, openstack.exceptions.SDKException) as err:
        # openstacksdk wraps keystoneauth's exception: look at the cause.
        cause = err.__cause__ or err.__context__ or err
        if isinstance(cause, ks_exc.ConnectFailure | ks_exc.DiscoveryFailure):
            raise CitadelleError(
                f"cloud {cloud!r}: identity endpoint unreachable ({auth_url}): check auth_url "
                "in clouds.yaml and the network path"
            ) from None
        if isinstance(cause, ks_exc.Unauthorized) or "(HTTP 401)" in str(err):
            raise CitadelleError(
                f"cloud {cloud!r}: authentication refused (HTTP 401): check the credentials in "
                "clouds.yaml"
            ) from None
        raise CitadelleError(f"cloud {cloud!r}: {_one_line(err)}") from None
    return conn


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split())


def audit(args: argparse.Namespace, conn: Any) -> list[Result]:
    # Imported here: the plan runs the Pulumi program, only needed once a cloud answers.
    from keystoneauth1 import exceptions as ks_exc  # noqa: PLC0415
    from openstack import exceptions as os_exc  # noqa: PLC0415

    from citadelle.audit import conformance, drift  # noqa: PLC0415
    from citadelle.audit.allowlist import from_environment  # noqa: PLC0415
    from citadelle.plan.plan import plan_environment  # noqa: PLC0415

    try:
        if args.audit == "drift":
            return drift.run_with_plan(conn, lambda: plan_environment(args.env),
                                       drift.segmentation_for(args.env))
        target = from_environment(args.env)
        recording = plan_environment(args.env)
        allow = target.allow.with_loopback() if args.mode == "lab" else target.allow
        ctx = conformance.Context(
            conn=conn,
            allow=allow,
            mode=args.mode,
            region=target.region,
            image=target.image,
            planned=conformance.planned_usage(recording),
        )
        return conformance.run(ctx)
    except ks_exc.ConnectFailure as err:
        raise CitadelleError(
            f"cloud {args.os_cloud!r}: endpoint unreachable: {_one_line(err)}"
        ) from None
    except os_exc.HttpException as err:
        raise CitadelleError(
            f"cloud {args.os_cloud!r}: API answered HTTP {err.status_code}: "
            f"{_one_line(Exception(err.details))}"
        ) from None
    except os_exc.SDKException as err:
        raise CitadelleError(f"cloud {args.os_cloud!r}: {_one_line(err)}") from None


def handle(args: argparse.Namespace) -> int:
    conn = connect(args.os_cloud)
    results = audit(args, conn)
    emit(args, results)
    return 1 if any(r.is_high_failure for r in results) else 0


def emit(args: argparse.Namespace, results: Sequence[Result]) -> None:
    cloud = str(args.os_cloud)
    print(report.table(results))
    if args.json:
        report.write_json(args.json, report.to_json(args.audit, args.env, cloud, results))
    if args.sarif:
        report.write_sarif(args.sarif, args.audit, cloud, results)
    if args.junit:
        report.write_junit(args.junit, args.audit, cloud, results)
    if args.mode == "lab" and any(r.status is Status.NOT_CHECKED for r in results):
        print("lab mode: results marked not-checked were not verified", file=sys.stderr)
