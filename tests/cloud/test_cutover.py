"""The double run and the cutover of one workspace, on real services (Azurite, loopback Swift).

A writer holding only a SAS token bound to the workspace's write policy keeps writing (a bounded
loop logging every acknowledged and every refused write) through the sync and the cutover. After
the switch, every acknowledged write is at the destination with its last acknowledged bytes,
writes during the freeze were refused (HTTP 403) and seen by the writer, and the freeze window
is measured. Then rollback brings back what was written in the EU, a cutover killed between the
freeze and the switch resumes, and retire empties the source with its evidence.

The stack config the cutover edits is a copy: the tests run with ``CITADELLE_ROOT`` on a
directory of links to this checkout whose ``environments/`` is copied.
"""

from __future__ import annotations

import datetime
import fcntl
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from citadelle.lab.cloud import lab
from citadelle.lab.cloud.provision import connect
from citadelle.lab.cloud.seed import seed_containers
from citadelle.lab.source import Source
from citadelle.migrate.freeze import error_code
from citadelle.paths import REPO_ROOT
from citadelle.plan.plan import plan_environment

ENV = "dev"
WS = "synthetic-demo"
SOURCE_CONTAINER = "ws-synthetic-demo"
DESTINATION = "citadelle-dev-ws-synthetic-demo"
SEED_OBJECTS = 30

pytestmark = [pytest.mark.snc("19.1", "19.4", "12.14"), pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This checkout seen through links, with its own copy of the stack configs."""
    root = tmp_path_factory.mktemp("root")
    for entry in REPO_ROOT.iterdir():
        if entry.name not in ("environments", "runs"):
            (root / entry.name).symlink_to(entry)
    (root / "environments").mkdir()
    for stack in (REPO_ROOT / "environments").iterdir():
        (root / "environments" / stack.name).write_bytes(stack.read_bytes())
    path = root / "environments" / f"Pulumi.{ENV}.yaml"
    data = yaml.safe_load(path.read_text())
    config = data.pop("config")
    config["citadelle:migration"]["source"]["containers"].append(SOURCE_CONTAINER)
    start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1)
    [workspace] = config["citadelle:workspaces"]
    workspace["migration"] = {
        "sourceContainers": [SOURCE_CONTAINER], "targetContainer": f"ws-{WS}",
        "window": {"start": start.isoformat(),
                   "end": (start + datetime.timedelta(days=2)).isoformat()},
        "freezeBudgetSeconds": 60, "rollbackRetentionDays": 30, "maxLagObjects": 1000}
    # config last: the cutover appends citadelle:dataLocations under it.
    path.write_text(yaml.safe_dump({**data, "config": config}, sort_keys=False))
    return root


def cli(root: Path, *args: str, check: int | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "citadelle", *args], capture_output=True,
                          text=True, env={**os.environ, "CITADELLE_ROOT": str(root)},
                          check=False, timeout=600)
    if check is not None:
        assert proc.returncode == check, proc.stdout + proc.stderr
    return proc


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cutover")


def migrate(root: Path, action: str, run_dir: Path, *extra: str,
            check: int | None = None) -> subprocess.CompletedProcess[str]:
    return cli(root, "migrate", action, ENV, "--target", "lab", "--run-dir", str(run_dir), *extra,
               check=check)


@pytest.fixture(scope="module")
def source() -> Iterator[Source]:
    src = Source()
    started_here = not src.running()
    src.up()
    container = src.client().get_container_client(SOURCE_CONTAINER)
    if container.exists():
        container.delete_container()  # a previous run's data and access policies
        time.sleep(1)
    result = src.seed(container=SOURCE_CONTAINER, total_bytes=1 << 20, objects=SEED_OBJECTS,
                      seed=11)
    assert result.objects == SEED_OBJECTS
    yield src
    if started_here:
        src.down()


@pytest.fixture(scope="module")
def member(cloud_lab: Any) -> Any:
    conn = connect(lab.CLOUD_NAME, str(cloud_lab.clouds_yaml))
    seed_containers(conn, plan_environment(ENV))
    for obj in list(conn.object_store.objects(DESTINATION)):
        conn.object_store.delete_object(obj.name, container=DESTINATION)
    return conn


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Writer:
    """A workspace job writing through its SAS token: its own log of what was acknowledged."""

    sas_url: str
    ca: str
    acknowledged: dict[str, str] = field(default_factory=dict)  # name -> last acked sha256
    acked_at: list[float] = field(default_factory=list)
    refused: list[tuple[float, int, str]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self, limit: int = 4000) -> None:
        from azure.core.exceptions import HttpResponseError
        from azure.storage.blob import ContainerClient

        client = ContainerClient.from_container_url(self.sas_url, connection_verify=self.ca,
                                                    retry_total=0)
        for i in range(limit):
            if self.stop.is_set():
                return
            # One write in four overwrites an earlier object: changes, not only additions.
            name = f"writer/obj-{(i // 2 if i % 4 == 3 else i):05d}"
            data = f"{name} write {i} ".encode() + os.urandom(256)
            try:
                client.upload_blob(name, data, overwrite=True)
            except HttpResponseError as err:
                self.refused.append((time.time(), err.status_code or 0, error_code(err)))
            else:
                self.acknowledged[name] = sha(data)
                self.acked_at.append(time.time())
            time.sleep(0.2)  # about 5 writes a second, the pace of a busy project


def state(run_dir: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(
        (run_dir / "workspaces" / WS / "state.json").read_text())
    return result


def destination_hashes(member: Any) -> dict[str, str]:
    return {o.name: sha(member.object_store.download_object(o.name, container=DESTINATION))
            for o in member.object_store.objects(DESTINATION)}


def source_hashes(source: Source) -> dict[str, str]:
    container = source.client().get_container_client(SOURCE_CONTAINER)
    return {f"{SOURCE_CONTAINER}/{b.name}": sha(container.download_blob(b.name).readall())
            for b in container.list_blobs()}


def one_line_refusal(proc: subprocess.CompletedProcess[str], text: str) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("citadelle: error: "), proc.stderr
    assert text in lines[0]


@pytest.fixture(scope="module")
def switched(root: Path, run_dir: Path, source: Source, member: Any) -> dict[str, Any]:
    """Writers on, sync, a held deletion, verify, cutover; the writer's log."""
    proc = migrate(root, "writers", run_dir, "--workspace", WS, check=0)
    sas_file = Path(proc.stdout.strip().rsplit(": ", 1)[1])
    assert oct(sas_file.stat().st_mode & 0o777) == "0o600"
    sas = json.loads(sas_file.read_text())[SOURCE_CONTAINER]
    assert "si=citadelle-write" in sas
    writer = Writer(sas, str(source.ca_cert))
    thread = threading.Thread(target=writer.run, daemon=True)
    thread.start()
    time.sleep(2)
    first = migrate(root, "sync", run_dir, "--workspace", WS, check=0)
    # A deletion at the source is held in quarantine at the destination, not applied.
    gone = sorted(k for k in source_hashes(source) if not k.startswith(
        f"{SOURCE_CONTAINER}/writer/"))[3]
    source.client().get_blob_client(SOURCE_CONTAINER, gone.split("/", 1)[1]).delete_blob()
    second = migrate(root, "sync", run_dir, "--workspace", WS, check=0)
    held = [n for n in destination_hashes(member) if n.startswith(".citadelle-quarantine/")]
    verify = migrate(root, "verify", run_dir, "--workspace", WS, check=0)
    # The writer goes on: a last pass of the double run just before the cutover.
    migrate(root, "sync", run_dir, "--workspace", WS, check=0)
    before = (run_dir / "workspaces" / WS / "state.json").read_bytes()
    dry = migrate(root, "cutover", run_dir, "--workspace", WS, "--dry-run", check=0)
    assert dry.stdout.count("would run") == 5 and "preflight passes" in dry.stdout
    assert (run_dir / "workspaces" / WS / "state.json").read_bytes() == before
    started = time.monotonic()
    cutover = migrate(root, "cutover", run_dir, "--workspace", WS, check=0)
    seconds = time.monotonic() - started
    writer.stop.set()
    thread.join(timeout=30)
    return {"writer": writer, "first": first, "second": second, "verify": verify,
            "cutover": cutover, "gone": gone, "held": held, "seconds": seconds}


def test_sync_reports_the_delta_and_holds_deletions(switched: dict[str, Any]) -> None:
    first = re.search(r"(\d+) new, 0 changed, 0 deleted", switched["first"].stdout)
    assert first is not None and int(first.group(1)) >= SEED_OBJECTS, switched["first"].stdout
    assert "1 deleted (held in quarantine)" in switched["second"].stdout
    assert "lag" in switched["second"].stdout
    assert [h.endswith(switched["gone"]) for h in switched["held"]] == [True]
    assert "verified, every byte" in switched["verify"].stdout


def test_every_acknowledged_write_is_at_the_destination(switched: dict[str, Any],
                                                        member: Any, run_dir: Path) -> None:
    writer: Writer = switched["writer"]
    at_destination = destination_hashes(member)
    assert len(writer.acknowledged) >= 20
    lost = {n: h for n, h in writer.acknowledged.items()
            if at_destination.get(f"{SOURCE_CONTAINER}/{n}") != h}
    assert lost == {}
    # The held deletion is final after the cutover: gone, quarantine purged.
    assert switched["gone"] not in at_destination
    assert not [n for n in at_destination if n.startswith(".citadelle-quarantine/")]


def test_writes_during_the_freeze_were_refused_and_seen(switched: dict[str, Any],
                                                        run_dir: Path) -> None:
    writer: Writer = switched["writer"]
    recorded = state(run_dir)
    frozen_at = datetime.datetime.fromisoformat(
        recorded["steps"]["freeze"]["started"]).timestamp()
    proof = recorded["steps"]["freeze"]["details"]["proof"][SOURCE_CONTAINER]
    proven_at = datetime.datetime.fromisoformat(proof["refused_at"]).timestamp()
    # Azure's codes for a SAS whose stored policy is gone (Azurite answers the second).
    assert proof["status"] == 403
    assert proof["error_code"] in ("AuthenticationFailed", "AuthorizationFailure")
    assert writer.refused, "the writer saw no refusal"
    assert {(status, code) for _, status, code in writer.refused} == {
        (403, proof["error_code"])}
    assert min(t for t, _, _ in writer.refused) >= frozen_at
    # Nothing acknowledged once the freeze was proven (a write racing the revocation may be).
    assert not [t for t in writer.acked_at if t > proven_at + 0.5]
    freeze_seconds = recorded["freeze"]["seconds"]
    assert 0 < freeze_seconds < 60
    print(f"\nwrite freeze: {freeze_seconds:.1f} s; cutover {switched['seconds']:.1f} s; "
          f"{len(writer.acknowledged)} objects acknowledged, {len(writer.refused)} writes "
          "refused during the freeze")


def test_the_final_verify_reads_only_what_changed_since_the_double_run_verify(
        switched: dict[str, Any], run_dir: Path) -> None:
    """Inside the freeze, objects the double run's verify read at both ends and that changed at
    neither end since are carried (ETag, MD5, size), the rest is read and hashed again."""
    recorded = state(run_dir)
    [bulk, final] = [h for h in recorded["history"] if h["action"] == "verify"][:2]
    assert (bulk["carried"], final["digest"]) == (0, recorded["steps"]["final"]["details"][
        "digest"])
    evidence = json.loads(Path(recorded["steps"]["final"]["details"]["evidence"]).read_text())
    assert evidence["mode"] == "incremental" and evidence["ok"] is True
    carried, read = evidence["carried"]["objects"], evidence["read_both_ends"]["objects"]
    assert carried >= SEED_OBJECTS - 1  # the seed (one deleted) did not change since
    assert read >= 1  # the writer's objects copied after the bulk verify
    assert carried + read == evidence["source"]["objects"]
    assert evidence["carried"]["from_verifies"] == [bulk["digest"]]


def test_switch_points_the_stack_and_namespace_at_the_eu(switched: dict[str, Any], root: Path,
                                                         run_dir: Path) -> None:
    stack = yaml.safe_load((root / "environments" / f"Pulumi.{ENV}.yaml").read_text())
    assert stack["config"]["citadelle:dataLocations"] == {WS: "destination"}
    switch = state(run_dir)["steps"]["switch"]["details"]
    assert switch["gate"]["exit_code"] == 0 and switch["gate"]["mandatory"] == 0
    assert switch["annotations"]["citadelle.io/data-location"] == "destination"
    assert switch["annotations"]["citadelle.io/storage-container"] == DESTINATION
    rows = json.loads(migrate(root, "status", run_dir, "--json", check=0).stdout)
    [row] = [r for r in rows if r["workspace"] == WS]
    assert row["phase"] == "switched" and row["last_verify"]["ok"] is True
    assert row["freeze_seconds"] == state(run_dir)["freeze"]["seconds"]
    for number, step in enumerate(("preflight", "freeze", "final", "switch", "open"), 1):
        record = json.loads((run_dir / "workspaces" / WS / "cutover" /
                             f"{number}-{step}.json").read_text())
        assert record["seconds"] >= 0 and "@" in record["by"]


def test_bad_input_is_refused_in_one_line(switched: dict[str, Any], root: Path, run_dir: Path,
                                          tmp_path: Path) -> None:
    before = (run_dir / "workspaces" / WS / "state.json").read_bytes()
    one_line_refusal(migrate(root, "cutover", run_dir, "--workspace", "nope"),
                     "unknown workspace 'nope'")
    one_line_refusal(migrate(root, "cutover", tmp_path, "--workspace", WS),
                     "no green verify")
    lock = run_dir / "workspaces" / WS / "cutover.lock"
    with lock.open("a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        one_line_refusal(migrate(root, "cutover", run_dir, "--workspace", WS),
                         "cutover refused, nothing changed")
    assert (run_dir / "workspaces" / WS / "state.json").read_bytes() == before
    assert not list(tmp_path.glob("workspaces/*/state.json"))


def test_rollback_brings_back_the_writes_made_in_the_eu(switched: dict[str, Any], root: Path,
                                                        run_dir: Path, source: Source,
                                                        member: Any) -> None:
    written = b"written in the EU after the switch " + os.urandom(64)
    member.object_store.upload_object(container=DESTINATION,
                                      name=f"{SOURCE_CONTAINER}/eu/new.csv", data=written)
    seeded = sorted(k for k in destination_hashes(member) if not k.startswith(
        (f"{SOURCE_CONTAINER}/writer/", ".citadelle-quarantine/", f"{SOURCE_CONTAINER}/eu/")))
    changed, removed = seeded[0], seeded[1]
    rewritten = b"changed in the EU " + os.urandom(64)
    member.object_store.upload_object(container=DESTINATION, name=changed, data=rewritten)
    member.object_store.delete_object(removed, container=DESTINATION)
    proc = migrate(root, "rollback", run_dir, "--workspace", WS, check=0)
    assert "2 objects written in the EU copied back, 1 deleted there deleted at the source" \
        in proc.stdout
    at_source = source_hashes(source)
    assert at_source[f"{SOURCE_CONTAINER}/eu/new.csv"] == sha(written)
    assert at_source[changed] == sha(rewritten) and removed not in at_source
    stack = yaml.safe_load((root / "environments" / f"Pulumi.{ENV}.yaml").read_text())
    assert stack["config"]["citadelle:dataLocations"] == {WS: "source"}
    assert state(run_dir)["phase"] == "in sync"
    # The writers' tokens work again.
    from azure.storage.blob import ContainerClient

    sas = json.loads((run_dir / "workspaces" / WS / "writer-sas.json").read_text())
    ContainerClient.from_container_url(sas[SOURCE_CONTAINER],
                                       connection_verify=str(source.ca_cert)).upload_blob(
        "writer/after-rollback", b"writable again", overwrite=True)


def test_a_cutover_killed_after_the_freeze_resumes(switched: dict[str, Any], root: Path,
                                                   run_dir: Path, source: Source,
                                                   member: Any) -> None:
    migrate(root, "sync", run_dir, "--workspace", WS, check=0)
    migrate(root, "verify", run_dir, "--workspace", WS, check=0)
    proc = subprocess.Popen(
        [sys.executable, "-m", "citadelle", "migrate", "cutover", ENV, "--target", "lab",
         "--run-dir", str(run_dir), "--workspace", WS], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, env={**os.environ, "CITADELLE_ROOT": str(root)},
        start_new_session=True)
    deadline = time.monotonic() + 120
    killed = False
    while time.monotonic() < deadline and proc.poll() is None:
        steps = state(run_dir).get("steps", {})
        if "finished" in steps.get("freeze", {}):
            os.killpg(proc.pid, signal.SIGKILL)  # between the freeze and the switch
            killed = True
            break
        time.sleep(0.05)
    proc.communicate(timeout=60)
    assert killed, "the cutover ended before it could be killed"
    crashed = state(run_dir)
    assert crashed["phase"] in ("frozen", "verified") and "switch" not in crashed["steps"]
    rerun = migrate(root, "cutover", run_dir, "--workspace", WS, check=0)
    assert "2 freeze: done at" in rerun.stdout
    assert state(run_dir)["phase"] == "switched"
    assert {k: v for k, v in destination_hashes(member).items()} == source_hashes(source)


def test_retire_after_the_retention_empties_the_source_with_evidence(
        switched: dict[str, Any], root: Path, run_dir: Path, source: Source) -> None:
    path = run_dir / "workspaces" / WS / "state.json"
    recorded = json.loads(path.read_text())
    one_line_refusal(migrate(root, "retire", run_dir, "--workspace", WS),
                     "kept for rollback until")
    # The retention ends (the clock moved on by rollbackRetentionDays).
    recorded["retention_until"] = (datetime.datetime.now(datetime.UTC)
                                   - datetime.timedelta(minutes=1)).isoformat()
    path.write_text(json.dumps(recorded))
    one_line_refusal(migrate(root, "rollback", run_dir, "--workspace", WS),
                     "rollback retention ended")
    count = len(source_hashes(source))
    proc = migrate(root, "retire", run_dir, "--workspace", WS, check=0)
    assert f"{count} source objects deleted, listing now empty" in proc.stdout
    assert not list(source.client().get_container_client(SOURCE_CONTAINER).list_blobs())
    evidence = json.loads(next(run_dir.glob(f"workspaces/{WS}/retire-*/"
                                            "deletion-evidence.json")).read_text())
    assert evidence["empty"] is True and evidence["listing_after"] == {SOURCE_CONTAINER: 0}
    assert evidence["before"][SOURCE_CONTAINER]["objects"] == count
    assert state(run_dir)["phase"] == "retired"
