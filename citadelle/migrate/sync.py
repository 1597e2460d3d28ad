"""The double run: one workspace's delta, found by listing, applied to the EU container.

A listing gives every blob's ETag, last-modified and size without reading it. Against the sync
manifest (the listing last copied), it yields the new, changed and deleted objects; new and
changed ones are copied by rclone (one ``--files-from`` per source container), deleted ones are
moved at the destination under the quarantine prefix (a Swift server-side copy, then a delete)
and kept there until the cutover's final pass purges them. The manifest is updated only for what
was copied, so an interrupted sync redoes its delta; an object changed while it was being copied
has a new ETag and is copied again by the next pass. The lag is what a fresh listing still finds
after the pass: objects, bytes, and the age of the oldest change not yet copied.
"""

from __future__ import annotations

import datetime
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

from citadelle.environment.settings import DataMigration
from citadelle.errors import CitadelleError
from citadelle.files import write_file
from citadelle.migrate import engine, inventory
from citadelle.migrate.context import MigrationContext, read_json
from citadelle.migrate.freeze import PROBE
from citadelle.migrate.state import WorkspaceState, now, parse, stamp

QUARANTINE = ".citadelle-quarantine/"

Listing = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Workspace:
    """A workspace's move resolved against the environment: the context narrowed to it."""

    id: str
    move: DataMigration
    ctx: MigrationContext

    @property
    def containers(self) -> tuple[str, ...]:
        return self.move.source_containers


def resolve_workspace(ctx: MigrationContext, ident: str) -> Workspace:
    """The workspace (or ``base``) ``ident`` of the environment; refuses one without a move."""
    moves = ctx.env.settings.data_migrations()
    if ident not in moves:
        known = ", ".join(sorted(moves)) or "none"
        raise CitadelleError(f"unknown workspace {ident!r}: no migration block for it in "
                             f"{ctx.environment} (workspaces with one: {known})")
    move: DataMigration = moves[ident]
    narrowed = replace(
        ctx, source=replace(ctx.source, containers=move.source_containers),
        destination=replace(ctx.destination,
                            container=f"{ctx.env.prefix}-{move.target_container}"))
    return Workspace(ident, move, narrowed)


def list_source(ws: Workspace) -> Listing:
    """Every blob of the workspace's containers: ETag, last-modified, size (nothing read)."""
    found: Listing = {}
    for container, blob in inventory.list_source(ws.ctx.source, ws.containers):
        if blob.name == PROBE:
            continue
        found[f"{container}/{blob.name}"] = {
            "etag": str(blob.etag), "last_modified": blob.last_modified.isoformat(),
            "size": int(blob.size)}
    return found


def load_manifest(state: WorkspaceState) -> Listing:
    if not state.sync_manifest.is_file():
        return {}
    objects = read_json(state.sync_manifest, "sync manifest").get("objects", {})
    return dict(objects)


def save_manifest(state: WorkspaceState, objects: Listing) -> None:
    state.folder.mkdir(parents=True, exist_ok=True)
    write_file(state.sync_manifest, json.dumps({"saved": stamp(), "objects": objects},
                                               sort_keys=True) + "\n")


@dataclass(frozen=True)
class Delta:
    new: list[str]
    changed: list[str]
    deleted: list[str]

    def lag(self, current: Listing, at: datetime.datetime) -> dict[str, Any]:
        pending = [current[k] for k in (*self.new, *self.changed)]
        oldest = min((parse(p["last_modified"]) for p in pending), default=None)
        return {"objects": len(pending) + len(self.deleted),
                "bytes": sum(int(p["size"]) for p in pending),
                "oldest_change_seconds": round((at - oldest).total_seconds(), 1)
                if oldest else 0.0}


def delta(previous: Listing, current: Listing) -> Delta:
    return Delta(
        new=sorted(set(current) - set(previous)),
        changed=sorted(k for k in set(current) & set(previous)
                       if current[k]["etag"] != previous[k]["etag"]),
        deleted=sorted(set(previous) - set(current)),
    )


def _swift(ws: Workspace) -> tuple[Any, str]:
    return inventory.destination_session(ws.ctx.destination)


def quarantine(ws: Workspace, keys: list[str], label: str) -> None:
    """Move deleted objects under the quarantine prefix (held until the cutover)."""
    store, url = _swift(ws)
    for key in keys:
        target = f"{url}/{quote(QUARANTINE + label + '/' + key)}"
        copied = store.put(target, data=b"", raise_exc=False, headers={
            "X-Copy-From": f"/{quote(ws.ctx.destination.container)}/{quote(key)}",
            "Content-Length": "0"})
        if copied.status_code == 404:
            continue  # never copied (created and deleted between two passes)
        if copied.status_code >= 300:
            raise CitadelleError(f"quarantine of {key}: HTTP {copied.status_code}")
        gone = store.delete(f"{url}/{quote(key)}", raise_exc=False)
        if gone.status_code >= 300 and gone.status_code != 404:
            raise CitadelleError(f"quarantine of {key}: delete answered HTTP "
                                 f"{gone.status_code}")


def destination_listing(ws: Workspace) -> list[dict[str, Any]]:
    store, url = _swift(ws)
    return inventory._list_destination(store, url)


def purge_quarantine(ws: Workspace) -> int:
    """Delete what the double run held: after the freeze, the deletions are final."""
    store, url = _swift(ws)
    held = [o["name"] for o in destination_listing(ws) if o["name"].startswith(QUARANTINE)]
    for name in held:
        store.delete(f"{url}/{quote(name)}", raise_exc=False)
    return len(held)


def copy_keys(ws: Workspace, keys: list[str], folder: Path) -> tuple[int, int, list[str]]:
    """rclone the keys (``container/name``) to the destination; (objects, bytes, failures)."""
    by_container: dict[str, list[str]] = {}
    for key in keys:
        container, name = key.split("/", 1)
        by_container.setdefault(container, []).append(name)
    cas = [p for p in {ws.ctx.source.ca_file, ws.ctx.destination.ca_file} if p is not None]
    moved = size = 0
    failed: list[str] = []
    for container, names in sorted(by_container.items()):
        files_from = folder / f"{container}.files"
        files_from.write_text("".join(f"{n}\n" for n in names))
        log = folder / f"{container}.log"
        # The listing already says these changed: copied whatever rclone's hash check says
        # (block blobs have no MD5, and a same-size change would pass a size-only check).
        args = [*engine.copy_args(ws.ctx, container, files_from, log, cas), "--ignore-times"]
        result = engine.run_local(args, engine.remote_env(ws.ctx), container, log)
        moved, size = moved + result.transfers, size + result.bytes
        if result.returncode != 0:
            failed.append(container)
    return moved, size, failed


@dataclass(frozen=True)
class SyncResult:
    delta: Delta
    copied: int
    bytes: int
    quarantined: int
    purged: int
    lag: dict[str, Any]
    folder: Path


class Stopwatch:
    """Seconds spent in each part of a pass, recorded with it (where a slow sync goes)."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self.last = time.monotonic()

    def lap(self, part: str) -> None:
        at = time.monotonic()
        self.laps[part] = round(at - self.last, 2)
        self.last = at


def sync(ws: Workspace, state: WorkspaceState, *, final: bool = False) -> SyncResult:
    """One pass of the double run (``final``: after the freeze, deletions purged)."""
    started = now()
    if state.phase in ("planned", "inventoried", "in sync"):
        state.set_phase("copying")
    folder = state.run_folder("final-sync" if final else "sync")
    clock = Stopwatch()
    previous = load_manifest(state)
    current = list_source(ws)
    change = delta(previous, current)
    clock.lap("list")
    moved, size, failed = copy_keys(ws, [*change.new, *change.changed], folder)
    if failed:
        raise CitadelleError(f"sync of {ws.id}: rclone failed for {', '.join(failed)} (see "
                             f"{folder}); rerun to resume")
    clock.lap("copy")
    quarantine(ws, change.deleted, started.strftime("%Y%m%dT%H%M%SZ"))
    save_manifest(state, current)
    purged = purge_quarantine(ws) if final else 0
    clock.lap("quarantine")
    after = list_source(ws)
    lag = delta(current, after).lag(after, now())
    clock.lap("lag")
    record = {"new": len(change.new), "changed": len(change.changed),
              "deleted": len(change.deleted), "copied": moved, "bytes": size,
              "purged": purged, "lag": lag, "objects": len(current),
              "object_bytes": sum(int(o["size"]) for o in current.values()),
              "seconds": clock.laps, "folder": folder.name}
    write_file(folder / "sync.json", json.dumps(
        {**record, "delta": {"new": change.new, "changed": change.changed,
                             "deleted": change.deleted}}, indent=2) + "\n")
    state.data["last_sync"] = {**record, "at": stamp()}
    state.record("final sync" if final else "sync", started, **record)
    if state.phase == "copying":
        state.set_phase("in sync")
    return SyncResult(change, moved, size, len(change.deleted), purged, lag, folder)


def current_lag(ws: Workspace, state: WorkspaceState) -> dict[str, Any]:
    listing = list_source(ws)
    return delta(load_manifest(state), listing).lag(listing, now())
