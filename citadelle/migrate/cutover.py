"""The progressive cutover of one workspace, as code: verify, cutover, rollback, retire, status.

Cutover steps (each timed and recorded in the workspace's state, resumable: a rerun skips the
finished steps and redoes the one a crash interrupted, every step being idempotent):

1. preflight: the destination conforms (allow-listed https object store, its container exists
   and is not public), the last verify is green, the lag is under the workspace's threshold;
2. freeze: the source's write policy is revoked, and a write with a writer's token is refused;
3. final: the last delta (deletions purged), then the workspace's verify;
4. switch: ``citadelle:dataLocations`` in the stack config points the workspace at the EU
   container (its Kubernetes namespace's storage annotations follow), and the gate passes;
5. open: the destination is read back, the source stays read-only (read policy only) until
   the end of the rollback retention (SecNumCloud 19.1.h).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from citadelle import paths
from citadelle.errors import CitadelleError
from citadelle.files import write_file
from citadelle.migrate import engine, evidence, freeze, inventory, manifest
from citadelle.migrate.context import read_json
from citadelle.migrate.manifest import Entry
from citadelle.migrate.state import STEPS, WorkspaceState, exclusive, now, parse, stamp
from citadelle.migrate.sync import (
    QUARANTINE,
    Workspace,
    current_lag,
    destination_listing,
    load_manifest,
    sync,
)

# -- verify of one workspace --------------------------------------------------------------

# Per workspace: each object a verify proved equal, with what it read (the carry's baseline).
VERIFIED = "verified.json"


def verify(ws: Workspace, state: WorkspaceState, *,
           carry: bool = False) -> tuple[bool, Path, dict[str, Any]]:
    """What the last sync copied is at the destination, byte for byte (SHA-256 both sides).

    Each synced object is read at the source only if its ETag is still the synced one (a
    conditional read): one changed since is lag, listed as such, not a difference.

    ``carry`` (the cutover's final verify, inside the freeze): an object an earlier verify read
    at both ends is not read again when neither side changed since: its source ETag is the one
    that verify read, and the destination listing gives it the MD5 and size that verify read.
    Only the objects copied or changed since are read. The evidence counts both, and names the
    earlier verifies the carried objects rest on.
    """
    from azure.core import MatchConditions  # noqa: PLC0415
    from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError  # noqa: PLC0415

    synced = load_manifest(state)
    if not synced:
        raise CitadelleError(f"workspace {ws.id}: nothing synced yet: run `citadelle migrate "
                             f"sync {ws.ctx.environment} --workspace {ws.id}` first")
    started = now()
    folder = state.run_folder("verify")
    service = inventory.source_client(ws.ctx.source)
    store, url = inventory.destination_session(ws.ctx.destination)

    def read_source(key: str) -> Entry | None:
        container, name = key.split("/", 1)
        try:
            stream = service.get_blob_client(container, name).download_blob(
                etag=synced[key]["etag"], match_condition=MatchConditions.IfNotModified)
        except (ResourceModifiedError, ResourceNotFoundError):
            return None
        size, sha = inventory._hash_stream(stream.chunks())
        return Entry(key, size, sha, etag=synced[key]["etag"],
                     last_modified=synced[key]["last_modified"])

    def read_destination(item: dict[str, Any]) -> Entry:
        response = store.get(f"{url}/{quote(item['name'])}", stream=True, raise_exc=False)
        if response.status_code >= 300:
            raise CitadelleError(f"destination {item['name']}: read answered HTTP "
                                 f"{response.status_code}")
        size, sha = inventory._hash_stream(response.iter_content(inventory.CHUNK))
        return Entry(str(item["name"]), size, sha, md5=str(item.get("hash")),
                     last_modified=str(item.get("last_modified")))

    listed = [o for o in destination_listing(ws) if not o["name"].startswith(QUARANTINE)]
    carried = unchanged_since_verified(load_verified(state), synced, listed) if carry else {}
    with ThreadPoolExecutor(max_workers=ws.ctx.tuning.checkers) as pool:
        to_read = [k for k in synced if k not in carried]
        sources = dict(zip(to_read, pool.map(read_source, to_read), strict=True))
        destinations = list(pool.map(read_destination,
                                     [o for o in listed if o["name"] not in carried]))
    since = sorted(k for k, e in sources.items() if e is None)
    src_entries = [e for e in sources.values() if e is not None] + \
        [c.source for c in carried.values()]
    dst_entries = [e for e in destinations if e.key not in since] + \
        [c.destination for c in carried.values()]
    src = manifest.build(ws.ctx.environment, "source", ws.ctx.source.url, ws.containers,
                         src_entries)
    dst = manifest.build(ws.ctx.environment, "destination", url,
                         [ws.ctx.destination.container], dst_entries)
    manifest.write(folder / "source-manifest.json", src)
    manifest.write(folder / "destination-manifest.json", dst)
    result = manifest.compare(manifest.entries(src), manifest.entries(dst))
    read = {"objects": len(sources) - len(since), "bytes": sum(
        e.size for e in sources.values() if e is not None)}
    body = {
        "environment": ws.ctx.environment, "target": ws.ctx.target, "workspace": ws.id,
        "ok": result.ok, "differences": result.as_json(), "changed_since_sync": since,
        "mode": "incremental" if carry else "full", "read_both_ends": read,
        "carried": {"objects": len(carried),
                    "bytes": sum(c.source.size for c in carried.values()),
                    "rule": "source ETag and destination MD5 and size as the verify named "
                            "read them", "from_verifies": sorted({c.evidence for c in
                                                                  carried.values()})},
        "source": {"endpoint": ws.ctx.source.url, "containers": list(ws.containers),
                   "manifest": "source-manifest.json", "manifest_sha256": manifest.digest(src),
                   **src["totals"]},
        "destination": {"endpoint": ws.ctx.destination.storage_url,
                        "container": ws.ctx.destination.container,
                        "manifest": "destination-manifest.json",
                        "manifest_sha256": manifest.digest(dst), **dst["totals"]},
        "time_range": {"verify_started": stamp(started), "verify_finished": stamp()},
        "engine": engine.version(), "gateways": [], "by": state_operator(),
    }
    sealed = evidence.write(folder / "evidence.json", body)
    save_verified(state, result, src, dst, carried=carried, digest=sealed["digest"])
    state.data["last_verify"] = {"ok": result.ok, "at": stamp(), "evidence": str(
        folder / "evidence.json"), "digest": sealed["digest"], "objects": src["totals"]["objects"],
        "bytes": src["totals"]["bytes"], "changed_since_sync": len(since), "read": read["objects"],
        "carried": len(carried)}
    state.record("verify", started, ok=result.ok, evidence=folder.name,
                 digest=sealed["digest"], read=read["objects"], carried=len(carried))
    return result.ok, folder / "evidence.json", result.as_json()


@dataclass(frozen=True)
class Carried:
    """An object proven equal by an earlier verify, unchanged at both ends since."""

    source: Entry
    destination: Entry
    evidence: str


def load_verified(state: WorkspaceState) -> dict[str, dict[str, Any]]:
    path = state.folder / VERIFIED
    return dict(read_json(path, "verified record")["objects"]) if path.is_file() else {}


def unchanged_since_verified(verified: dict[str, dict[str, Any]], synced: dict[str, Any],
                             listed: list[dict[str, Any]]) -> dict[str, Carried]:
    """The objects whose both sides are still what an earlier verify read and found equal."""
    carried: dict[str, Carried] = {}
    for item in listed:
        key = str(item["name"])
        proof, copied = verified.get(key), synced.get(key)
        if not proof or not copied or copied["etag"] != proof["etag"] or \
                str(item.get("hash")) != proof["md5"] or int(item["bytes"]) != proof["size"]:
            continue
        carried[key] = Carried(
            Entry(key, proof["size"], proof["sha256"], etag=proof["etag"],
                  last_modified=copied["last_modified"]),
            Entry(key, proof["size"], proof["sha256"], md5=proof["md5"],
                  last_modified=str(item.get("last_modified"))),
            str(proof["evidence"]))
    return carried


def save_verified(state: WorkspaceState, result: manifest.Comparison, src: dict[str, Any],
                  dst: dict[str, Any], *, carried: dict[str, Carried], digest: str) -> None:
    """Record the objects this verify proved equal, each with the verify that read it."""
    differing = {k for keys in result.as_json().values() for k in keys}
    destination = manifest.entries(dst)
    objects = {}
    for key, entry in manifest.entries(src).items():
        if key in differing or key not in destination:
            continue
        objects[key] = {"etag": entry.etag, "sha256": entry.sha256, "size": entry.size,
                        "md5": destination[key].md5,
                        "evidence": carried[key].evidence if key in carried else digest}
    state.folder.mkdir(parents=True, exist_ok=True)
    write_file(state.folder / VERIFIED, json.dumps({"saved": stamp(), "objects": objects},
                                                   sort_keys=True) + "\n")


def state_operator() -> str:
    from citadelle.migrate.state import operator  # noqa: PLC0415

    return operator()


# -- the stack config's data location -----------------------------------------------------

LOCATIONS_KEY = "citadelle:dataLocations"


def stack_file(env: str) -> Path:
    return paths.ENVIRONMENTS_DIR / f"Pulumi.{env}.yaml"


def set_location(env: str, ident: str, location: str) -> None:
    """Set ``citadelle:dataLocations[ident]`` in the stack file, every other line untouched."""
    import yaml  # noqa: PLC0415

    from citadelle.environment import Environment  # noqa: PLC0415

    path = stack_file(env)
    text = path.read_text()
    current: dict[str, str] = dict(Environment.load(env).settings.data_locations)
    current[ident] = location
    line = f"  {LOCATIONS_KEY}: {json.dumps(dict(sorted(current.items())))}"
    pattern = re.compile(rf"^  {re.escape(LOCATIONS_KEY)}:.*$", re.MULTILINE)
    if pattern.search(text):
        updated = pattern.sub(line, text, count=1)
    else:
        top = [ln for ln in text.splitlines() if ln[:1] not in ("", " ", "#")]
        if not top or top[-1].rstrip() != "config:":
            raise CitadelleError(f"{path}: config is not the file's last section; add "
                                 f"{LOCATIONS_KEY} under it by hand")
        updated = text.rstrip("\n") + "\n  # Set by citadelle migrate cutover and rollback.\n" \
            + line + "\n"
    parsed = (yaml.safe_load(updated) or {}).get("config", {}).get(LOCATIONS_KEY)
    if parsed != dict(sorted(current.items())):
        raise CitadelleError(f"{path}: could not set {LOCATIONS_KEY} (edit it by hand)")
    write_file(path, updated)
    Environment.load(env)  # the stack still validates


def run_gate(env: str, folder: Path) -> dict[str, Any]:
    from citadelle.plan.gate import gate_environment  # noqa: PLC0415

    result = gate_environment(env, sarif=folder / "gate.sarif", junit=folder / "gate.xml")
    return {"exit_code": result.exit_code, "resources": result.resources,
            "findings": len(result.findings), "mandatory": len(result.violations)}


def workspace_annotations(env: str, ident: str) -> dict[str, str]:
    """The workspace namespace's annotations in the environment's offline plan."""
    from citadelle.plan.plan import plan_environment  # noqa: PLC0415

    for resource in plan_environment(env).resources:
        manifest_ = resource.inputs.get("manifest") or resource.inputs
        meta = manifest_.get("metadata") if isinstance(manifest_, dict) else None
        if (isinstance(meta, dict) and manifest_.get("kind") == "Namespace"
                and meta.get("name") == f"ws-{ident}"):
            return dict(meta.get("annotations") or {})
    return {}


# -- cutover --------------------------------------------------------------------------------


def check_window(ws: Workspace, state: WorkspaceState, *, cutover: bool) -> None:
    window = ws.move.window
    moment = now()
    if state.phase in ("switched", "retired"):
        return
    if window.end < moment:
        raise CitadelleError(f"workspace {ws.id}: its migration window ended on "
                             f"{window.end.isoformat()}; plan a new window in the stack config")
    if cutover and window.start > moment and "freeze" not in state.data["steps"]:
        raise CitadelleError(f"workspace {ws.id}: its migration window opens on "
                             f"{window.start.isoformat()}; no cutover before")


def preflight(ws: Workspace, state: WorkspaceState) -> dict[str, Any]:
    """Refuses (exit 2, nothing changed) unless the workspace is ready to freeze."""
    dest = ws.ctx.destination
    store, url = inventory.destination_session(dest)
    head = store.head(url, raise_exc=False)
    if head.status_code >= 300:
        raise CitadelleError(f"workspace {ws.id}: destination container {dest.container!r} "
                             f"does not exist at {dest.storage_url} (HTTP {head.status_code})")
    read_acl = head.headers.get("X-Container-Read", "")
    if ".r:" in read_acl:
        raise CitadelleError(f"workspace {ws.id}: destination container {dest.container!r} is "
                             f"public (read ACL {read_acl!r}); refused (SecNumCloud 9.7)")
    last = state.data.get("last_verify")
    if not last or not last.get("ok"):
        raise CitadelleError(f"workspace {ws.id}: no green verify (run `citadelle migrate "
                             f"verify {ws.ctx.environment} --workspace {ws.id}` after a sync)")
    for container in ws.containers:
        if freeze.WRITE_POLICY not in freeze.policy_ids(ws.ctx.source, container) and \
                "freeze" not in state.data["steps"]:
            raise CitadelleError(f"workspace {ws.id}: source container {container!r} has no "
                                 f"stored access policy {freeze.WRITE_POLICY!r}: its writers "
                                 "are not on policy-bound SAS tokens, a freeze would not hold "
                                 f"(run `citadelle migrate writers {ws.ctx.environment} "
                                 f"--workspace {ws.id}`)")
    lag = current_lag(ws, state)
    if lag["objects"] > ws.move.max_lag_objects:
        raise CitadelleError(f"workspace {ws.id}: lag of {lag['objects']} objects is over its "
                             f"threshold ({ws.move.max_lag_objects}): sync first")
    return {"destination": f"{dest.storage_url}/{dest.container}", "read_acl": read_acl,
            "last_verify": last["at"], "lag": lag}


Step = Callable[[Workspace, WorkspaceState, Path], dict[str, Any]]


def _freeze(ws: Workspace, state: WorkspaceState, folder: Path) -> dict[str, Any]:
    state.data.setdefault("freeze", {"started": stamp()})
    state.save()
    for container in ws.containers:
        freeze.set_writable(ws.ctx.source, container, writable=False)
    budget = float(ws.move.freeze_budget_seconds)
    proofs = {c: asdict(freeze.prove_frozen(ws.ctx.source, c, budget)) for c in ws.containers}
    state.set_phase("frozen")
    return {"policy_revoked": freeze.WRITE_POLICY, "proof": proofs}


def _final(ws: Workspace, state: WorkspaceState, folder: Path) -> dict[str, Any]:
    result = sync(ws, state, final=True)
    if result.lag["objects"]:
        raise CitadelleError(f"workspace {ws.id}: still {result.lag['objects']} objects of lag "
                             "after the final sync of a frozen source; not switching")
    ok, path, differences = verify(ws, state, carry=True)
    if not ok:
        raise CitadelleError(f"workspace {ws.id}: final verify found differences "
                             f"({ {k: len(v) for k, v in differences.items() if v} }); evidence "
                             f"{path}; not switching (rollback restores the writers)")
    state.set_phase("verified")
    return {"sync": result.folder.name, "copied": result.copied, "purged": result.purged,
            "evidence": str(path), "digest": state.data["last_verify"]["digest"]}


def _switch(ws: Workspace, state: WorkspaceState, folder: Path) -> dict[str, Any]:
    env = ws.ctx.environment
    set_location(env, ws.id, "destination")
    gate = run_gate(env, folder)
    if gate["exit_code"] != 0:
        raise CitadelleError(f"workspace {ws.id}: the gate fails on the switched stack "
                             f"({gate['mandatory']} mandatory findings, {folder / 'gate.sarif'})")
    annotations = workspace_annotations(env, ws.id) if ws.id != "base" else {}
    state.data["switched_at"] = stamp()
    state.data["retention_until"] = stamp(now() + datetime.timedelta(
        days=ws.move.rollback_retention_days))
    state.data["location"] = "destination"
    state.set_phase("switched")
    return {"stack_file": str(stack_file(env)), "gate": gate, "annotations": annotations}


def _open(ws: Workspace, state: WorkspaceState, folder: Path) -> dict[str, Any]:
    listed = [o for o in destination_listing(ws) if not o["name"].startswith(QUARANTINE)]
    policies = {c: sorted(freeze.policy_ids(ws.ctx.source, c)) for c in ws.containers}
    if any(freeze.WRITE_POLICY in p for p in policies.values()):
        raise CitadelleError(f"workspace {ws.id}: the source's write policy is back; refusing "
                             "to open the destination with two writable sides")
    started = parse(state.data["freeze"]["started"])
    measured = round((now() - started).total_seconds(), 3)
    state.data["freeze"].update(ended=stamp(), seconds=measured)
    return {"destination_objects": len(listed), "source_policies": policies,
            "read_only_until": state.data["retention_until"], "freeze_seconds": measured,
            "freeze_budget_seconds": ws.move.freeze_budget_seconds}


RUNBOOK: dict[str, Step] = {
    "preflight": lambda ws, state, folder: preflight(ws, state),
    "freeze": _freeze, "final": _final, "switch": _switch, "open": _open,
}


def cutover(ws: Workspace, state: WorkspaceState, *, dry_run: bool,
            report: Callable[[str], None]) -> int:
    assert tuple(RUNBOOK) == STEPS
    if state.phase == "retired":
        raise CitadelleError(f"workspace {ws.id}: retired; nothing to cut over")
    with exclusive(state, "cutover"):
        check_window(ws, state, cutover=True)
        done = state.data["steps"]
        if dry_run:
            details = preflight(ws, state) if "freeze" not in done else {}
            for step in STEPS:
                finished = done.get(step, {}).get("finished")
                report(f"{step}: {'done ' + finished if finished else 'would run'}")
            if details:
                report(f"preflight passes: lag {details['lag']['objects']} objects, last "
                       f"verify {details['last_verify']}")
            return 0
        folder = state.folder / "cutover"
        for number, step in enumerate(STEPS, 1):
            if "finished" in done.get(step, {}):
                report(f"{number} {step}: done at {done[step]['finished']} (resumed after it)")
                continue
            started = now()
            entry = {"started": stamp(started), "by": state_operator()}
            if step != "preflight":  # a refused preflight leaves no trace
                done[step] = entry
                state.save()
            details = RUNBOOK[step](ws, state, folder)
            seconds = round((now() - started).total_seconds(), 3)
            done[step] = {**entry, "finished": stamp(), "seconds": seconds, "details": details}
            state.save()
            folder.mkdir(parents=True, exist_ok=True)
            write_file(folder / f"{number}-{step}.json", json.dumps(done[step], indent=2) + "\n")
            report(f"{number} {step}: {seconds:.1f} s")
        report(f"workspace {ws.id}: switched to {ws.ctx.destination.container}; write freeze "
               f"{state.data['freeze']['seconds']:.1f} s (budget "
               f"{ws.move.freeze_budget_seconds} s); source read-only until "
               f"{state.data['retention_until']}")
    return 0


# -- rollback and retire --------------------------------------------------------------------


def _retention_until(ws: Workspace, state: WorkspaceState, action: str) -> datetime.datetime:
    if state.phase != "switched":
        raise CitadelleError(f"workspace {ws.id}: {action} needs a switched workspace (phase: "
                             f"{state.phase})")
    return parse(state.data["retention_until"])


def rollback(ws: Workspace, state: WorkspaceState, report: Callable[[str], None]) -> int:
    """Copy back what was written in the EU since the switch, then switch back."""
    with exclusive(state, "rollback"):
        until = _retention_until(ws, state, "rollback")
        if now() > until:
            raise CitadelleError(f"workspace {ws.id}: rollback retention ended on "
                                 f"{until.isoformat()}; the source may be retired, no rollback")
        started = now()
        folder = state.run_folder("rollback")
        written, deleted, copied, passes = _bring_back(ws, _final_destination(state), folder)
        for container in ws.containers:
            freeze.set_writable(ws.ctx.source, container, writable=True)
        set_location(ws.ctx.environment, ws.id, "source")
        gate = run_gate(ws.ctx.environment, folder)
        details = {"written_in_eu": written, "deleted_in_eu": deleted, "copied_back": copied,
                   "passes": passes, "gate": gate}
        write_file(folder / "rollback.json", json.dumps(details, indent=2) + "\n")
        state.data["steps"] = {}
        state.data.pop("freeze", None)
        state.data["location"] = "source"
        state.data.pop("last_verify", None)  # the source moved on: verify again before cutover
        state.record("rollback", started, written=len(written), deleted=len(deleted),
                     folder=folder.name)
        state.set_phase("in sync")
        state.sync_manifest.unlink(missing_ok=True)
        (state.folder / VERIFIED).unlink(missing_ok=True)
        report(f"workspace {ws.id}: {len(written)} objects written in the EU copied back, "
               f"{len(deleted)} deleted there deleted at the source; writers restored, data "
               "location back to the source (sync again before a new cutover)")
    return 0


# A rollback copies until a listing of the EU container shows no change since the previous one.
ROLLBACK_PASSES = 5


def _bring_back(ws: Workspace, final: dict[str, str],
                folder: Path) -> tuple[list[str], list[str], int, int]:
    """Copy back to the source what the EU container gained, changed or lost since ``final``.

    Passes repeat until a fresh listing equals the one the pass worked from, so a write made in
    the EU while a pass ran is brought back too; EU writers still active after
    ``ROLLBACK_PASSES`` passes refuse the rollback (stop them, rerun) before the switch back.
    """
    from azure.core.exceptions import ResourceNotFoundError  # noqa: PLC0415

    service = inventory.source_client(ws.ctx.source)
    applied: dict[str, str | None] = dict(final)  # key -> MD5 the source now matches
    written: set[str] = set()
    deleted: set[str] = set()
    copied = 0
    for number in range(1, ROLLBACK_PASSES + 1):
        listed = {o["name"]: str(o.get("hash")) for o in destination_listing(ws)
                  if not o["name"].startswith(QUARANTINE)}
        changed = sorted(k for k, md5 in listed.items() if applied.get(k) != md5)
        gone = sorted(k for k, md5 in applied.items() if md5 is not None and k not in listed)
        if not changed and not gone:
            return sorted(written), sorted(deleted), copied, number
        copied += _copy_back(ws, changed, folder / f"pass-{number}")
        for key in gone:
            container, name = key.split("/", 1)
            with contextlib.suppress(ResourceNotFoundError):  # an interrupted rollback's
                service.get_blob_client(container, name).delete_blob()
        applied.update({k: listed[k] for k in changed} | dict.fromkeys(gone))
        written.update(changed)
        deleted.update(gone)
    raise CitadelleError(f"workspace {ws.id}: the EU container still changes after "
                         f"{ROLLBACK_PASSES} copy-back passes: stop its writers, then rerun "
                         "the rollback (the source is not writable yet, the data location "
                         "unchanged)")


def _final_destination(state: WorkspaceState) -> dict[str, str]:
    """Key -> MD5 of the destination as the final verify read it (the switch's baseline)."""
    path = Path(state.data["last_verify"]["evidence"]).parent / "destination-manifest.json"
    data = manifest.load(path, str(json.loads(path.read_text())["environment"]), "destination")
    return {str(o["key"]): str(o["md5"]) for o in data["objects"]}


def _copy_back(ws: Workspace, keys: list[str], folder: Path) -> int:
    cas = [str(p) for p in {ws.ctx.source.ca_file, ws.ctx.destination.ca_file} if p]
    by_container: dict[str, list[str]] = {}
    for key in keys:
        container, name = key.split("/", 1)
        by_container.setdefault(container, []).append(name)
    moved = 0
    folder.mkdir(parents=True, exist_ok=True)
    for container, names in sorted(by_container.items()):
        files = folder / f"{container}.files"
        files.write_text("".join(f"{n}\n" for n in names))
        log = folder / f"{container}.log"
        args = ["copy", f"dst:{ws.ctx.destination.container}/{container}", f"src:{container}",
                "--files-from-raw", str(files), "--no-traverse", "--ignore-times",
                "--use-json-log", "--log-level", "INFO", "--log-file", str(log),
                "--retries", "3"]
        for ca in cas:
            args += ["--ca-cert", ca]
        result = engine.run_local(args, engine.remote_env(ws.ctx), container, log)
        if result.returncode != 0:
            raise CitadelleError(f"rollback of {ws.id}: copy back of {container} failed (see "
                                 f"{log}); rerun to resume")
        moved += result.transfers
    return moved


def retire(ws: Workspace, state: WorkspaceState, report: Callable[[str], None]) -> int:
    """After the retention: delete the workspace's source objects, with evidence of it."""
    with exclusive(state, "retire"):
        until = _retention_until(ws, state, "retire")
        if now() < until:
            raise CitadelleError(f"workspace {ws.id}: the source is kept for rollback until "
                                 f"{until.isoformat()}; retire refused")
        started = now()
        folder = state.run_folder("retire")
        service = inventory.source_client(ws.ctx.source)
        before: dict[str, dict[str, int]] = {}
        for container in ws.containers:
            client = service.get_container_client(container)
            blobs = list(client.list_blobs())
            before[container] = {"objects": len(blobs), "bytes": sum(b.size for b in blobs)}
            for blob in blobs:
                client.delete_blob(blob.name, delete_snapshots="include")
        after = {c: sum(1 for _ in service.get_container_client(c).list_blobs(
            include=["snapshots"])) for c in ws.containers}
        body = {"environment": ws.ctx.environment, "workspace": ws.id,
                "action": "source deletion (SecNumCloud 19.1.i, 19.4)",
                "source": ws.ctx.source.url, "before": before, "listing_after": after,
                "empty": all(n == 0 for n in after.values()), "started": stamp(started),
                "finished": stamp(), "by": state_operator(),
                "switched_at": state.data.get("switched_at"),
                "retention_until": state.data.get("retention_until")}
        sealed = evidence.seal(body)
        write_file(folder / "deletion-evidence.json",
                   manifest.canonical(sealed).decode() + "\n")
        if not body["empty"]:
            raise CitadelleError(f"workspace {ws.id}: source not empty after deletion ({after}); "
                                 f"evidence {folder / 'deletion-evidence.json'}")
        state.data["retired"] = {"at": stamp(), "evidence": str(folder /
                                                                 "deletion-evidence.json"),
                                 "digest": sealed["digest"], "deleted": before}
        state.record("retire", started, folder=folder.name, deleted=before)
        state.set_phase("retired")
        total = sum(v["objects"] for v in before.values())
        report(f"workspace {ws.id}: {total} source objects deleted, listing now empty; "
               f"evidence {folder / 'deletion-evidence.json'}")
    return 0


def status_row(ident: str, state: WorkspaceState) -> dict[str, Any]:
    last_sync = state.data.get("last_sync", {})
    verify_ = state.data.get("last_verify")
    return {"workspace": ident, "phase": state.phase,
            "objects": last_sync.get("objects"), "bytes": last_sync.get("object_bytes"),
            "lag": last_sync.get("lag"), "last_sync": last_sync.get("at"),
            "last_verify": {k: verify_[k] for k in ("ok", "at", "digest")} if verify_ else None,
            "freeze_seconds": state.data.get("freeze", {}).get("seconds"),
            "switched_at": state.data.get("switched_at"),
            "retention_until": state.data.get("retention_until"),
            "retired_at": state.data.get("retired", {}).get("at")}
