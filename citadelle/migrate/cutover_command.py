"""`citadelle migrate writers|sync|cutover|rollback|retire|status ENV`: the double run.

Per workspace (or ``base``, the national base datasets), state and runs are kept under
``<run folder>/workspaces/<id>/`` (citadelle.migrate.state).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from citadelle.environment import Environment
from citadelle.files import write_file
from citadelle.migrate.context import MigrationContext
from citadelle.migrate.state import WorkspaceState, exclusive
from citadelle.paths import migration_run_dir

Common = Callable[[str, str], argparse.ArgumentParser]


def register(actions: argparse._SubParsersAction[argparse.ArgumentParser],
             common: Common) -> None:
    writers = common("writers", "publish the workspace's stored access policies at the source "
                     "and write its writers' policy-bound SAS URL to a 0600 file")
    writers.add_argument("--workspace", required=True, metavar="ID")
    writers.set_defaults(func=_writers)
    sync_ = common("sync", "the double run's delta (new, changed, deleted objects, by listing) "
                   "applied to the EU container; deletions held in quarantine; the lag")
    sync_.add_argument("--workspace", metavar="ID", help="one workspace (default: every one "
                       "with a migration block, base included)")
    sync_.set_defaults(func=_sync)
    cutover = common("cutover", "preflight, freeze writes at the source, final sync and "
                     "verify, switch the data location, open reads (resumable)")
    cutover.add_argument("--workspace", required=True, metavar="ID")
    cutover.add_argument("--dry-run", action="store_true",
                         help="check the preflight and print the steps; change nothing")
    cutover.set_defaults(func=_cutover)
    rollback = common("rollback", "within the retention: copy back what was written in the EU "
                      "since the switch, restore the writers, switch back")
    rollback.add_argument("--workspace", required=True, metavar="ID")
    rollback.set_defaults(func=_rollback)
    retire = common("retire", "after the retention: delete the workspace's source objects, "
                    "with the evidence of the deletion")
    retire.add_argument("--workspace", required=True, metavar="ID")
    retire.set_defaults(func=_retire)
    status = common("status", "per workspace: phase, objects and bytes in sync, lag, last "
                    "verify, measured freeze")
    status.add_argument("--json", action="store_true", help="machine-readable")
    status.set_defaults(func=_status)


def _resolve(args: argparse.Namespace, ident: str) -> tuple[Any, WorkspaceState]:
    from citadelle.migrate.command import _context  # noqa: PLC0415
    from citadelle.migrate.sync import resolve_workspace  # noqa: PLC0415

    ctx: MigrationContext = _context(args)
    ws = resolve_workspace(ctx, ident)
    return ws, WorkspaceState.load(ctx.run_dir, ident)


def _idents(args: argparse.Namespace) -> list[str]:
    if getattr(args, "workspace", None):
        return [args.workspace]
    return sorted(Environment.load(args.env).settings.data_migrations())


def _writers(args: argparse.Namespace) -> int:
    from citadelle.migrate import freeze  # noqa: PLC0415

    ws, state = _resolve(args, args.workspace)
    if state.phase in ("frozen", "verified", "switched", "retired"):
        from citadelle.errors import CitadelleError  # noqa: PLC0415

        raise CitadelleError(f"workspace {ws.id}: {state.phase}; its source takes no writers")
    urls = {}
    for container in ws.containers:
        freeze.set_writable(ws.ctx.source, container, writable=True)
        urls[container] = freeze.sas_url(ws.ctx.source, container, freeze.WRITE_POLICY)
    out = state.folder / "writer-sas.json"
    state.folder.mkdir(parents=True, exist_ok=True)
    write_file(out, json.dumps(urls, indent=2) + "\n", 0o600)
    print(f"workspace {ws.id}: policies {freeze.WRITE_POLICY}, {freeze.READ_POLICY} on "
          f"{', '.join(ws.containers)}; writers' SAS URLs (bound to {freeze.WRITE_POLICY}, "
          f"revoked by the cutover's freeze): {out}")
    return 0


def _sync(args: argparse.Namespace) -> int:
    from citadelle.migrate.cutover import check_window  # noqa: PLC0415
    from citadelle.migrate.sync import sync  # noqa: PLC0415

    for ident in _idents(args):
        ws, state = _resolve(args, ident)
        if state.phase in ("frozen", "verified", "switched", "retired"):
            print(f"{ident}: {state.phase}, no sync (the cutover owns its last pass)")
            continue
        check_window(ws, state, cutover=False)
        with exclusive(state, "sync"):
            result = sync(ws, state)
        change, lag = result.delta, result.lag
        print(f"{ident}: {len(change.new)} new, {len(change.changed)} changed, "
              f"{len(change.deleted)} deleted (held in quarantine); {result.copied} objects / "
              f"{result.bytes} bytes copied; lag {lag['objects']} objects, {lag['bytes']} "
              f"bytes, oldest change {lag['oldest_change_seconds']:.0f} s")
    return 0


def verify_workspace(args: argparse.Namespace) -> int:
    from citadelle.migrate.cutover import verify  # noqa: PLC0415

    ws, state = _resolve(args, args.workspace)
    with exclusive(state, "verify"):
        ok, path, differences = verify(ws, state)
    for kind, keys in differences.items():
        for key in keys:
            print(f"{kind.replace('_', ' ')}: {key}")
    last = state.data["last_verify"]
    print(f"{ws.id}: {last['objects']} synced objects / {last['bytes']} bytes "
          f"{'verified, every byte' if ok else 'DIFFERENCES FOUND'} ({last['changed_since_sync']}"
          f" changed since the sync, left to the next pass)")
    print(f"evidence: {path} sha256 {last['digest']}")
    return 0 if ok else 1


def _cutover(args: argparse.Namespace) -> int:
    from citadelle.migrate.cutover import cutover  # noqa: PLC0415

    ws, state = _resolve(args, args.workspace)
    return cutover(ws, state, dry_run=args.dry_run, report=print)


def _rollback(args: argparse.Namespace) -> int:
    from citadelle.migrate.cutover import rollback  # noqa: PLC0415

    ws, state = _resolve(args, args.workspace)
    return rollback(ws, state, report=print)


def _retire(args: argparse.Namespace) -> int:
    from citadelle.migrate.cutover import retire  # noqa: PLC0415

    ws, state = _resolve(args, args.workspace)
    return retire(ws, state, report=print)


def _status(args: argparse.Namespace) -> int:
    from citadelle.migrate.cutover import status_row  # noqa: PLC0415

    # From the recorded state only: status needs no credential.
    run_dir = args.run_dir or migration_run_dir(args.env, args.target)
    rows = [status_row(ident, WorkspaceState.load(run_dir, ident))
            for ident in sorted(Environment.load(args.env).settings.data_migrations())]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        lag = row["lag"] or {}
        verify_ = row["last_verify"]
        freeze_ = row["freeze_seconds"]
        verdict = f"{'green' if verify_['ok'] else 'RED'} {verify_['at']}" if verify_ else "-"
        print(f"{row['workspace']}\t{row['phase']}\t{row['objects'] or 0} objects\t"
              f"{row['bytes'] or 0} bytes\tlag {lag.get('objects', '-')} objects"
              f"\tverify {verdict}"
              f"\tfreeze {f'{freeze_:.1f} s' if freeze_ is not None else '-'}")
    return 0
