"""`citadelle migrate inventory|plan|copy|verify|check-evidence ENV`: the data transfer.

Run folder (default ``runs/migrate/<env>``, ``<env>-lab`` with ``--target lab``)::

    source-manifest.json            the inventory (resumable: .partial while running)
    plan.json                       shards per gateway, duration, 1 PB / 10 PB projection
    copy-<time>/                    one rclone JSON log per shard, copy-run.json
    verify-<time>/                  source and destination manifests, evidence.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from citadelle.environment import Environment
from citadelle.environment.targets import add_target_choice, make_target
from citadelle.errors import CitadelleError
from citadelle.files import write_file
from citadelle.migrate import cutover_command, engine, evidence, fanout, manifest
from citadelle.migrate import plan as planning
from citadelle.migrate.context import MigrationContext, read_json, resolve, safe_name


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "migrate", help="move the data out of Azure Blob Storage into the EU object store",
        description="Inventory the declared migration source, plan shards over the transfer "
        "gateways, copy with rclone, verify every byte read back. Exit 1 when verification "
        "finds a difference, 2 on bad input (nothing written at the destination).")
    actions = parser.add_subparsers(dest="migrate_action", metavar="ACTION", required=True)

    def common(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = actions.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("env", metavar="ENV", help="environment (its citadelle:migration)")
        # The lab's source is its Azurite and its destination the loopback cloud's Swift.
        add_target_choice(sub, "the declared source, --os-cloud and the transfer gateways")
        sub.add_argument("--os-cloud", help="destination cloud in clouds.yaml (lab default: "
                         "the loopback cloud's member)")
        sub.add_argument("--clouds-yaml", type=Path, help="clouds.yaml (default: "
                         "$OS_CLIENT_CONFIG_FILE; the lab's own with --target lab)")
        sub.add_argument("--destination-url", help="object store URL (default: the catalog's); "
                         "must be an allow-listed object-storage endpoint")
        sub.add_argument("--source-url", help="source account URL; must be the declared one")
        sub.add_argument("--run-dir", type=Path, help="run folder (default: runs/migrate/ENV)")
        return sub

    inventory = common("inventory", "manifest of every source object: size, Azure MD5, ETag, "
                       "last-modified, SHA-256 computed while reading")
    inventory.add_argument("--container", action="append", dest="containers",
                           help="only this declared container (repeatable)")
    inventory.set_defaults(func=_inventory)
    common("plan", "shards by bytes over the transfer gateways, duration, 1 PB / 10 PB "
           "projection").set_defaults(func=_plan)
    copy = common("copy", "copy the manifest's objects with rclone, shard by shard (resumable)")
    copy.add_argument("--manifest", type=Path, help="source manifest (default: the run's)")
    copy.add_argument("--inventory", type=Path, help="the deployed environment's inventory, "
                      "whose gateway group runs the shards (default: runs/ENV/inventory.yml, "
                      "written by `citadelle inventory ENV`)")
    copy.add_argument("--gateway", metavar="NAME", action="append", dest="gateways",
                      help="only this gateway (repeatable); with --target lab, a gateway clone "
                      "to run on (without any the lab copies from this machine)")
    copy.set_defaults(func=_copy)
    verify = common("verify", "read every destination object back, compare size and SHA-256 "
                    "with the source manifest, write evidence")
    verify.add_argument("--manifest", type=Path, help="source manifest (default: the run's)")
    verify.add_argument("--workspace", metavar="ID", help="verify what the double run synced "
                        "for this workspace (citadelle.migrate.cutover)")
    verify.set_defaults(func=_verify)
    check = actions.add_parser("check-evidence", help="re-verify an evidence file")
    check.add_argument("file", type=Path, metavar="FILE")
    check.set_defaults(func=_check_evidence)
    cutover_command.register(actions, common)


def _context(args: argparse.Namespace) -> MigrationContext:
    env = Environment.load(args.env, make_target(args.target, lab_run_dir=args.lab_run_dir))
    return resolve(env, cloud=args.os_cloud, clouds_yaml=args.clouds_yaml,
                   source_url=args.source_url, destination_url=args.destination_url,
                   run_dir=args.run_dir)


def _stamp() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S%fZ")


def _inventory(args: argparse.Namespace) -> int:
    from citadelle.migrate import inventory  # noqa: PLC0415

    ctx = _context(args)
    containers = tuple(args.containers or ctx.source.containers)
    started = time.monotonic()
    result, read = inventory.source_inventory(ctx.source, ctx.environment, ctx.manifest_path,
                                              containers, ctx.tuning.checkers)
    totals = result["totals"]
    print(f"inventory of {ctx.source.url} ({', '.join(containers)}): {totals['objects']} "
          f"objects, {totals['bytes']} bytes ({read} read now, {totals['objects'] - read} "
          f"kept from the interrupted run) in {time.monotonic() - started:.1f} s")
    print(f"manifest: {ctx.manifest_path} sha256 {manifest.digest(result)}")
    return 0


def _source_manifest(ctx: MigrationContext, path: Path | None) -> dict[str, Any]:
    path = path or ctx.manifest_path
    if not path.is_file():
        raise CitadelleError(f"no source manifest at {path}: run `citadelle migrate inventory "
                             f"{ctx.environment} --target {ctx.target}` first")
    data = manifest.load(path, ctx.environment)
    if data.get("endpoint") != ctx.source.url:
        raise CitadelleError(f"manifest {path}: taken from {data.get('endpoint')}, not the "
                             f"declared source {ctx.source.url}")
    return data


def _plan(args: argparse.Namespace) -> int:
    ctx = _context(args)
    data = _source_manifest(ctx, None)
    estimate, _ = planning.estimate(data["objects"], ctx.gateways, ctx.tuning)
    ctx.run_dir.mkdir(parents=True, exist_ok=True)
    write_file(ctx.run_dir / "plan.json", json.dumps(estimate, indent=2) + "\n")
    for row in estimate["shards"]:
        print(f"{row['gateway']}\t{row['objects']} objects\t{row['bytes']} bytes")
    rate = estimate["aggregate_bytes_per_second"]
    print(f"{estimate['bytes']} bytes at {rate * 8 / 1e9:.2f} Gbit/s: "
          f"{planning.human_duration(estimate['duration_seconds'])}")
    for label, row in estimate["projection"].items():
        print(f"{label}: {planning.human_duration(row['duration_seconds'])}")
    print(f"plan: {ctx.run_dir / 'plan.json'}")
    return 0


def _preflight(ctx: MigrationContext, data: dict[str, Any]) -> None:
    """Refuse before anything is written: source reachable, destination container present."""
    from azure.core.exceptions import AzureError  # noqa: PLC0415

    from citadelle.migrate import inventory  # noqa: PLC0415

    service = inventory.source_client(ctx.source)
    for container in data["containers"]:
        if container not in ctx.source.containers:
            raise CitadelleError(f"manifest container {container!r} is not a declared source "
                                 "container")
        try:
            service.get_container_client(container).get_container_properties()
        except AzureError as err:
            raise inventory._azure_error(err, ctx.source, container) from None
    if not inventory.container_exists(ctx.destination):
        raise CitadelleError(f"destination container {ctx.destination.container!r} does not "
                             f"exist at {ctx.destination.storage_url} (the landing zone "
                             "declares it; deploy it first)")


def _copy(args: argparse.Namespace) -> int:
    ctx = _context(args)
    data = _source_manifest(ctx, args.manifest)
    _preflight(ctx, data)
    cas = sorted({p for p in (ctx.source.ca_file, ctx.destination.ca_file) if p is not None})
    gateways = _gateways(args, ctx)
    _, shards = planning.estimate(data["objects"], gateways.names if gateways else ctx.gateways,
                                  ctx.tuning)
    run = ctx.run_dir / f"copy-{_stamp()}"
    run.mkdir(parents=True)
    started = manifest.now()
    jobs = []
    for index, shard in enumerate(shards):
        by_container: dict[str, list[str]] = {}
        for key in shard.keys:
            container, name = key.split("/", 1)
            by_container.setdefault(container, []).append(name)
        for container, names in sorted(by_container.items()):
            label = f"shard-{index}-{safe_name(container)}"
            files_from = run / f"{label}.files"
            files_from.write_text("".join(f"{n}\n" for n in names))
            jobs.append(fanout.Job(label, shard.gateway, container, files_from))
    if gateways is None:
        # The target runs the copy on this machine (the lab without --gateway).
        results = [engine.run_local(engine.copy_args(ctx, j.container, j.files_from, j.log, cas),
                                    engine.remote_env(ctx), j.label, j.log)
                   for j in jobs]
    else:
        results = fanout.fan_out(ctx, jobs, gateways, cas, run)
    on = {j.label: j.gateway for j in jobs}
    for result in results:
        print(f"{result.shard} on {on[result.shard]}: {result.transfers} objects, "
              f"{result.bytes} bytes moved, {result.errors} errors (rclone exit "
              f"{result.returncode})")
    gateway_names = (list(ctx.gateways) if gateways is None
                     else [gateways.label(n) for n in gateways.names])
    record = {
        "environment": ctx.environment, "started": started, "finished": manifest.now(),
        "gateways": gateway_names, "engine": engine.version(),
        "source": ctx.source.url, "destination": ctx.destination.storage_url,
        "container": ctx.destination.container,
        "manifest_sha256": manifest.digest(data),
        "shards": [{"shard": r.shard, "returncode": r.returncode, "transfers": r.transfers,
                    "bytes": r.bytes, "errors": r.errors, "log": r.log.name} for r in results],
    }
    write_file(run / "copy-run.json", json.dumps(record, indent=2) + "\n")
    failed = [r.shard for r in results if r.returncode != 0]
    print(f"copy run: {run}")
    if failed:
        print(f"citadelle: copy incomplete ({', '.join(failed)} failed; see their logs): "
              "rerun to resume", file=sys.stderr)
        return 1
    return 0


def _gateways(args: argparse.Namespace, ctx: MigrationContext) -> fanout.Gateways | None:
    """The gateways the copy fans out to, from the inventory the target gives (None: the
    target copies from this machine)."""
    from citadelle.deploy.inventory import host_vars, hosts_in, load_inventory  # noqa: PLC0415

    target = ctx.env.target
    if target is None:
        raise CitadelleError(f"{ctx.environment}: no deployment target chosen (--target)")
    wanted = sorted(set(args.gateways or ()))
    inventory = target.gateway_inventory(ctx.env, wanted, args.inventory)
    if inventory is None:
        return None
    hosts = host_vars(load_inventory(inventory))
    names = hosts_in(hosts, "gateway")
    unknown = [name for name in wanted if name not in names]
    if unknown:
        raise CitadelleError(f"--gateway {', '.join(unknown)}: not a gateway of {inventory} "
                             f"({', '.join(names) or 'none'})")
    names = wanted or names
    if not names:
        raise CitadelleError(f"{inventory}: no host in the gateway group")
    # The platform services each gateway keeps are its own inventory variables: the
    # environment's, with what the target imposes (a clone's time and log services).
    egress = {(e["host"], e["port"], e["proto"]): e
              for name in names for e in fanout.platform_egress(hosts[name])}
    return fanout.Gateways(inventory, names, [egress[k] for k in sorted(egress)],
                           target.gateway_url, target.gateway_label)


def _latest_copy(ctx: MigrationContext) -> dict[str, Any] | None:
    runs = sorted(ctx.run_dir.glob("copy-*/copy-run.json"))
    return read_json(runs[-1], "copy run") if runs else None


def _verify(args: argparse.Namespace) -> int:
    from citadelle.migrate import inventory  # noqa: PLC0415

    if args.workspace:
        return cutover_command.verify_workspace(args)
    ctx = _context(args)
    data = _source_manifest(ctx, args.manifest)
    if not inventory.container_exists(ctx.destination):
        raise CitadelleError(f"destination container {ctx.destination.container!r} does not "
                             f"exist at {ctx.destination.storage_url}")
    run = ctx.run_dir / f"verify-{_stamp()}"
    run.mkdir(parents=True)
    started = manifest.now()
    shutil.copyfile(args.manifest or ctx.manifest_path, run / "source-manifest.json")
    readback = inventory.destination_readback(ctx.destination, ctx.environment,
                                              run / "destination-manifest.json",
                                              ctx.tuning.checkers)
    result = manifest.compare(manifest.entries(data), manifest.entries(readback))
    copy = _latest_copy(ctx) or {}
    body = {
        "environment": ctx.environment, "target": ctx.target, "ok": result.ok,
        "differences": result.as_json(),
        "source": {"endpoint": ctx.source.url, "containers": data["containers"],
                   "manifest": "source-manifest.json", "manifest_sha256": manifest.digest(data),
                   **data["totals"]},
        "destination": {"endpoint": ctx.destination.storage_url,
                        "container": ctx.destination.container,
                        "manifest": "destination-manifest.json",
                        "manifest_sha256": manifest.digest(readback), **readback["totals"]},
        "time_range": {"copy_started": copy.get("started"), "copy_finished": copy.get("finished"),
                       "verify_started": started, "verify_finished": manifest.now()},
        "gateways": copy.get("gateways", []), "engine": copy.get("engine"),
        "copy_manifest_sha256": copy.get("manifest_sha256"),
    }
    sealed = evidence.write(run / "evidence.json", body)
    for kind, keys in result.as_json().items():
        for key in keys:
            print(f"{kind.replace('_', ' ')}: {key}")
    print(f"source {data['totals']['objects']} objects / {data['totals']['bytes']} bytes, "
          f"destination {readback['totals']['objects']} / {readback['totals']['bytes']}: "
          f"{'verified, every byte' if result.ok else 'DIFFERENCES FOUND'}")
    print(f"evidence: {run / 'evidence.json'} sha256 {sealed['digest']}")
    return 0 if result.ok else 1


def _check_evidence(args: argparse.Namespace) -> int:
    problems = evidence.check(args.file)
    for problem in problems:
        print(f"{args.file}: {problem}")
    if problems:
        return 1
    data = read_json(args.file, "evidence")
    outcome = "transfer verified" if data["ok"] else "differences recorded"
    print(f"{args.file}: evidence holds ({outcome}; digest {data['digest']})")
    return 0
