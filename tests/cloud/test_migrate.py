"""The migration against real services: Azurite (source) and the loopback cloud's Swift.

A small synthetic dataset (seconds to copy) goes through inventory, copy and verify; then the
destination is tampered with through the Swift API and verify must name exactly what changed.
An interrupted copy resumes, bad input is refused before anything is written, and the objects
on Swift's device are encrypted under a root secret that only Barbican holds.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from citadelle.errors import CitadelleError
from citadelle.lab.cloud import lab
from citadelle.lab.cloud.provision import connect
from citadelle.lab.cloud.seed import seed_containers
from citadelle.lab.source import ACCOUNT, Source
from citadelle.migrate import inventory
from citadelle.migrate.context import SourceAccess
from citadelle.paths import ROLES_DIR
from citadelle.plan.plan import plan_environment

ENV = "dev"
CONTAINER = "citadelle-dev-datalake"
SEED_BYTES = 3 << 20
SEED_OBJECTS = 40

pytestmark = [pytest.mark.snc("10.1", "19.2"), pytest.mark.timeout(900)]


def cli(*args: str, env: dict[str, str] | None = None,
        check: int | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "citadelle", *args], capture_output=True,
                          text=True, env=env, check=False, timeout=600)
    if check is not None:
        assert proc.returncode == check, proc.stdout + proc.stderr
    return proc


@pytest.fixture(scope="module")
def source() -> Iterator[Source]:
    src = Source()
    started_here = not src.running()
    src.up()
    container = src.client().get_container_client("snds")
    if container.exists():  # a dataset of another size left by the operator
        for blob in container.list_blobs():
            container.delete_blob(blob.name)
    result = src.seed(total_bytes=SEED_BYTES, objects=SEED_OBJECTS, seed=7)
    assert result.objects == SEED_OBJECTS and result.block_blobs == 4
    yield src
    if started_here:
        src.down()


@pytest.fixture(scope="module")
def member(cloud_lab: Any) -> Any:
    conn = connect(lab.CLOUD_NAME, str(cloud_lab.clouds_yaml))
    seed_containers(conn, plan_environment(ENV))
    return conn


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("migrate")


def migrate(action: str, run_dir: Path, *extra: str, check: int | None = None
            ) -> subprocess.CompletedProcess[str]:
    return cli("migrate", action, ENV, "--target", "lab", "--run-dir", str(run_dir), *extra,
               check=check)


def destination_names(member: Any) -> set[str]:
    return {o.name for o in member.object_store.objects(CONTAINER)}


def empty_destination(member: Any) -> None:
    for name in destination_names(member):
        member.object_store.delete_object(name, container=CONTAINER)


@pytest.fixture(scope="module")
def migrated(source: Source, member: Any, run_dir: Path) -> dict[str, Any]:
    empty_destination(member)
    migrate("inventory", run_dir, check=0)
    manifest = json.loads((run_dir / "source-manifest.json").read_text())
    started = time.monotonic()
    migrate("copy", run_dir, check=0)
    copy_seconds = time.monotonic() - started
    verify = migrate("verify", run_dir, check=0)
    return {"manifest": manifest, "verify": verify, "copy_seconds": copy_seconds}


def latest(run_dir: Path, pattern: str) -> Path:
    return sorted(run_dir.glob(pattern))[-1]


def test_inventory_records_every_object(migrated: dict[str, Any], source: Source) -> None:
    manifest = migrated["manifest"]
    assert manifest["environment"] == ENV and manifest["side"] == "source"
    assert manifest["totals"]["objects"] == SEED_OBJECTS
    blobs = {b.name: b for b in source.client().get_container_client("snds").list_blobs()}
    entries = {o["key"].split("/", 1)[1]: o for o in manifest["objects"]}
    assert set(entries) == set(blobs)
    assert manifest["totals"]["bytes"] == sum(b.size for b in blobs.values())
    # Azure keeps an MD5 for one-shot uploads only: the four block blobs have none.
    assert sum(1 for o in entries.values() if o["md5"] is None) == 4
    one = next(iter(entries))
    data = source.client().get_blob_client("snds", one).download_blob().readall()
    assert entries[one]["sha256"] == hashlib.sha256(data).hexdigest()


def test_source_listing_matches_the_sdk_page_by_page(source: Source) -> None:
    # The sync's own List Blobs reader against the SDK's models, on pages of 7 (markers used).
    access = SourceAccess(url=source.endpoint, account=ACCOUNT, key=source.account_key(),
                          containers=("snds",), ca_file=source.ca_cert)
    listed = inventory.list_source(access, ["snds"], page_size=7)
    sdk = [("snds", inventory.Listed(
        name=b.name, etag=b.etag, last_modified=b.last_modified, size=b.size,
        md5=bytes(b.content_settings.content_md5) if b.content_settings.content_md5 else None))
        for b in source.client().get_container_client("snds").list_blobs()]
    assert len(listed) == SEED_OBJECTS and listed == sdk
    assert sum(1 for _, b in listed if b.md5 is None) == 4  # the block blobs
    wrong = replace(access, key=base64.b64encode(b"k" * 64).decode())
    with pytest.raises(CitadelleError, match=r"credentials refused \(HTTP 403\)"):
        inventory.list_source(wrong, ["snds"])
    absent = replace(access, containers=("snds", "absent"))
    with pytest.raises(CitadelleError, match="container 'absent' does not exist"):
        inventory.list_source(absent, ["absent"])


def test_copy_then_verify_passes_with_evidence(migrated: dict[str, Any], member: Any,
                                               run_dir: Path) -> None:
    assert "verified, every byte" in migrated["verify"].stdout
    names = destination_names(member)
    assert names == {o["key"] for o in migrated["manifest"]["objects"]}
    evidence_file = latest(run_dir, "verify-*/evidence.json")
    evidence = json.loads(evidence_file.read_text())
    assert evidence["ok"] is True
    assert evidence["source"]["objects"] == evidence["destination"]["objects"] == SEED_OBJECTS
    assert evidence["engine"].startswith("rclone v1.75")
    assert evidence["gateways"] == ["lab-host"]
    cli("migrate", "check-evidence", str(evidence_file), check=0)
    copy_log = latest(run_dir, "copy-*/shard-0-snds.log")
    records = [json.loads(line) for line in copy_log.read_text().splitlines()]
    assert sum(1 for r in records if r.get("msg", "").startswith("Copied")) == SEED_OBJECTS
    print(f"\ncopy of {SEED_OBJECTS} objects: {migrated['copy_seconds']:.1f} s")


def test_tampered_evidence_is_detected(migrated: dict[str, Any], run_dir: Path,
                                       tmp_path: Path) -> None:
    folder = latest(run_dir, "verify-*/evidence.json").parent
    for name in ("evidence.json", "source-manifest.json", "destination-manifest.json"):
        (tmp_path / name).write_bytes((folder / name).read_bytes())
    cli("migrate", "check-evidence", str(tmp_path / "evidence.json"), check=0)
    readback = json.loads((tmp_path / "destination-manifest.json").read_text())
    readback["objects"][0]["sha256"] = "0" * 64
    (tmp_path / "destination-manifest.json").write_text(json.dumps(readback))
    proc = cli("migrate", "check-evidence", str(tmp_path / "evidence.json"), check=1)
    assert "destination manifest destination-manifest.json does not match" in proc.stdout


def test_verify_names_exactly_the_corrupted_deleted_and_extra(
        migrated: dict[str, Any], member: Any, run_dir: Path) -> None:
    keys = sorted(o["key"] for o in migrated["manifest"]["objects"])
    corrupted, deleted = keys[5], keys[9]
    size = next(o["size"] for o in migrated["manifest"]["objects"] if o["key"] == corrupted)
    # Same length, other bytes: only the hash can tell.
    member.object_store.upload_object(container=CONTAINER, name=corrupted, data=b"x" * size)
    member.object_store.delete_object(deleted, container=CONTAINER)
    member.object_store.upload_object(container=CONTAINER, name="snds/EXTRA/unexpected.csv.gz",
                                      data=b"not from the source")
    proc = migrate("verify", run_dir, check=1)
    found = re.findall(r"^(missing|extra|size mismatch|hash mismatch): (.+)$", proc.stdout,
                       re.MULTILINE)
    assert sorted(found) == sorted([("hash mismatch", corrupted), ("missing", deleted),
                                    ("extra", "snds/EXTRA/unexpected.csv.gz")])
    evidence = json.loads(latest(run_dir, "verify-*/evidence.json").read_text())
    assert evidence["ok"] is False
    assert evidence["differences"] == {"missing": [deleted],
                                       "extra": ["snds/EXTRA/unexpected.csv.gz"],
                                       "size_mismatch": [], "hash_mismatch": [corrupted]}
    # The copy repairs what it owns (the extra object is reported, never deleted by it).
    member.object_store.delete_object("snds/EXTRA/unexpected.csv.gz", container=CONTAINER)
    migrate("copy", run_dir, check=0)
    migrate("verify", run_dir, check=0)


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return []
    return [int(p) for p in text.split()]


def test_killed_copy_resumes_moving_only_what_was_missing(
        migrated: dict[str, Any], member: Any, run_dir: Path) -> None:
    empty_destination(member)
    proc = subprocess.Popen(
        [sys.executable, "-m", "citadelle", "migrate", "copy", ENV, "--target", "lab", "--run-dir",
         str(run_dir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed = False
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if len(destination_names(member)) >= SEED_OBJECTS // 4:
            for child in _children(proc.pid):
                if "rclone" in Path(f"/proc/{child}/cmdline").read_text(errors="replace"):
                    os.kill(child, signal.SIGKILL)  # the engine dies mid-copy
                    killed = True
            break
        time.sleep(0.2)
    out, err = proc.communicate(timeout=120)
    assert killed, f"the copy ended before it could be interrupted: {out}{err}"
    assert proc.returncode == 1 and "rerun to resume" in err
    present = len(destination_names(member))
    assert 0 < present < SEED_OBJECTS
    rerun = migrate("copy", run_dir, check=0)
    moved = int(re.search(r"shard-0-snds on lab-host: (\d+) objects", rerun.stdout).group(1))
    missing = SEED_OBJECTS - present
    # The rerun moves what was missing, plus at most the uploads in flight at the kill (one
    # per transfer slot, dev's `transfers`): Swift may have kept them truncated, and rclone
    # replaces them because their size or hash differs.
    log = latest(run_dir, "copy-*/shard-0-snds.log").read_text().splitlines()
    replaced = sum(1 for line in log if '"Copied (replaced existing)"' in line)
    assert missing <= moved <= missing + 8 and moved == missing + replaced
    migrate("verify", run_dir, check=0)


def _one_line_refusal(proc: subprocess.CompletedProcess[str], text: str) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("citadelle: error: "), proc.stderr
    assert text in lines[0]


def test_destination_outside_the_allow_list_is_refused(migrated: dict[str, Any], member: Any,
                                                        run_dir: Path) -> None:
    before = destination_names(member)
    proc = migrate("copy", run_dir, "--destination-url",
                   "https://objects.us-east-1.example.com/v1/AUTH_x")
    _one_line_refusal(proc, "is not an allow-listed object-storage endpoint of dev")
    assert destination_names(member) == before


def test_bad_input_is_refused_in_one_line(migrated: dict[str, Any], run_dir: Path,
                                          tmp_path: Path, cloud_lab: Any) -> None:
    _one_line_refusal(migrate("inventory", run_dir, "--container", "other"),
                      "container 'other' is not a declared migration source container")
    _one_line_refusal(migrate("copy", run_dir, "--source-url", "https://evil.blob.example.com"),
                      "not the declared migration source of dev")
    foreign = json.loads((run_dir / "source-manifest.json").read_text())
    foreign["environment"] = "prod"
    (tmp_path / "prod.json").write_text(json.dumps(foreign))
    _one_line_refusal(migrate("copy", run_dir, "--manifest", str(tmp_path / "prod.json")),
                      "made for environment 'prod', not 'dev'")
    clouds = json.loads(cloud_lab.clouds_yaml.read_text())
    clouds["clouds"][lab.CLOUD_NAME]["auth"]["password"] = os.urandom(12).hex()
    (tmp_path / "clouds.yaml").write_text(json.dumps(clouds))
    _one_line_refusal(migrate("copy", run_dir, "--clouds-yaml", str(tmp_path / "clouds.yaml")),
                      "authentication refused")


def test_source_unreachable_is_refused(migrated: dict[str, Any], source: Source,
                                       run_dir: Path) -> None:
    source.down()
    try:
        _one_line_refusal(migrate("copy", run_dir), "unreachable")
    finally:
        source.up()


def test_objects_are_encrypted_at_rest_under_a_barbican_root_secret(
        migrated: dict[str, Any], member: Any, source: Source) -> None:
    marker = b"CITADELLE-PLAINTEXT-MARKER-" + os.urandom(8).hex().encode()
    member.object_store.upload_object(container=CONTAINER, name="marker.txt", data=marker * 64)
    assert member.object_store.download_object("marker.txt", container=CONTAINER) == marker * 64
    data_files = list((lab.SWIFT.devices).rglob("*.data"))
    assert len(data_files) >= SEED_OBJECTS
    one = migrated["manifest"]["objects"][0]["key"]
    head = source.client().get_blob_client("snds", one.split("/", 1)[1]).download_blob(
        offset=0, length=64).readall()
    for path in data_files:
        stored = path.read_bytes()
        assert marker not in stored and head not in stored, path
    member.object_store.delete_object("marker.txt", container=CONTAINER)
    # The root secret: in Barbican (read as Swift's service user), in no configuration file.
    key_id = lab.ROOT_SECRET_ID_FILE.read_text().strip()
    secrets = lab.load_secrets()
    clouds = json.loads(lab.CLOUDS_YAML.read_text())
    auth = dict(clouds["clouds"][lab.ADMIN_CLOUD_NAME]["auth"])
    auth.update(username="swift", password=secrets.swift_password, project_name="service")
    import base64

    import openstack
    swift_user = openstack.connect(auth=auth, region_name="fr-par-1", load_yaml_config=False,
                                   load_envvars=False)
    secret = swift_user.key_manager.get_secret(key_id)
    payload = swift_user.key_manager.get(
        f"/secrets/{key_id}/payload", headers={"Accept": "application/octet-stream"}).content
    assert secret.algorithm == "aes" and secret.bit_length == 256 and len(payload) == 32
    forms = (payload, base64.b64encode(payload), payload.hex().encode())
    for conf in (f for f in lab.SWIFT.etc.rglob("*") if f.is_file()):
        text = conf.read_bytes()
        assert not any(form in text for form in forms), conf
        assert b"encryption_root_secret" not in text, conf
    assert key_id in lab.SWIFT.keymaster_conf.read_text()


# --- the dedicated channel: the copy on the transfer gateway clone, fenced by nftables


def _connect_from(lab: Any, clone: str, port: int) -> str:
    """Open a TCP connection from the clone to the host's loopback port; bash says how it went."""
    return lab.ssh(clone, f"timeout 10 bash -c 'exec 3<>/dev/tcp/10.0.2.2/{port}' 2>&1; "
                   "echo exit=$?").stdout.strip()


def _fence(lab: Any, clone: str) -> str:
    return lab.ssh(clone, "nft list table inet citadelle_transfer_egress", sudo=True).stdout


def _uncounted(ruleset: str) -> str:
    return re.sub(r"counter packets \d+ bytes \d+", "counter", ruleset)


def _dropped(lab: Any, clone: str) -> int:
    """Packets the gateway's egress fence has dropped so far (its counter rule)."""
    ruleset = _fence(lab, clone)
    found = re.search(r"counter packets (\d+)", ruleset)
    assert found is not None, ruleset
    return int(found.group(1))


@pytest.mark.vm
@pytest.mark.timeout(3600)  # the session's hardened converge may start here
@pytest.mark.snc("13.2", "12.14")
@pytest.mark.bp028("R28", "R80")
def test_copy_fans_out_to_two_gateways_whose_firewalls_refuse_other_destinations(
        migrated: dict[str, Any], member: Any, run_dir: Path, hardened_converge: Any) -> None:
    from citadelle.lab.collector import PORT as COLLECTOR_PORT
    from citadelle.lab.vm import free_port

    # The session's gateway clone, converged by the roles: /home noexec, /etc sealed by AIDE;
    # and a second, fresh gateway clone beside it for the time of this test: the shards are
    # shared between the two, one engine each, in one Ansible run.
    lab, clone, second = hardened_converge.lab, "gw", "gw-b"
    assert hardened_converge.inventory.clone(clone).role == "gateway"
    lab.up({second: "gateway"})
    other_port = free_port()
    # Another destination on the host: reachable from the clone until the channel is fenced.
    other = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1",
                              str(other_port)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        time.sleep(1)
        assert _connect_from(lab, clone, other_port).endswith("exit=0")
        empty_destination(member)
        started = time.monotonic()
        copy = migrate("copy", run_dir, "--gateway", clone, "--gateway", second,
                       "--lab-run-dir", str(lab.run_dir), check=0)
        seconds = time.monotonic() - started
        assert f"on {clone}: " in copy.stdout and f"on {second}: " in copy.stdout, copy.stdout
        verify = migrate("verify", run_dir, check=0)
        assert "verified, every byte" in verify.stdout
        evidence = json.loads(latest(run_dir, "verify-*/evidence.json").read_text())
        assert evidence["gateways"] == [f"lab clone {clone}", f"lab clone {second}"]
        assert evidence["ok"] is True
        # The engine's credentials never reach the copy's run folder (Ansible's records).
        key = Source().account_key()
        copy_run = latest(run_dir, "copy-*/copy-run.json").parent
        assert [p for p in copy_run.rglob("*") if p.is_file()
                and key in p.read_text(errors="ignore")] == []
        # The fence stays: the other destination is dropped by the clone's own nftables (the
        # connection times out), not refused by Citadelle, and the fence's counter sees it.
        before = _dropped(lab, clone)
        assert _connect_from(lab, clone, other_port).endswith("exit=124")
        after_bash = _dropped(lab, clone)
        assert after_bash > before
        rclone = lab.ssh(clone, "/opt/citadelle-transfer/rclone lsf --contimeout 5s --retries 1 "
                         f"--low-level-retries 1 --http-url http://10.0.2.2:{other_port}/ "
                         ":http: 2>&1; echo exit=$?").stdout
        assert not rclone.strip().endswith("exit=0") and _dropped(lab, clone) > after_bash
        fence = _fence(lab, clone)
        assert "policy drop" in fence
        # The clone keeps its time source and log collector (udp 123, the collector's port).
        assert "udp dport 123 accept" in fence and f"tcp dport {COLLECTOR_PORT} accept" in fence
        # The same channel, the same fence (but for what each counter has seen).
        assert _uncounted(_fence(lab, second)) == _uncounted(fence)
        # The transfer left the sealed set as it was: AIDE finds no change on the gateway.
        integrity = yaml.safe_load((ROLES_DIR / "bp028_integrity/vars/main.yml").read_text())
        aide = lab.ssh(clone, f"aide --config {integrity['bp028_integrity_config']} --check",
                       sudo=True, timeout=900)
        assert aide.returncode == 0, aide.stdout[:4000]
        print(f"\ncopy of {SEED_OBJECTS} objects through two gateways: {seconds:.1f} s "
              f"(host: {migrated['copy_seconds']:.1f} s)")
    finally:
        other.terminate()
        other.wait(timeout=10)
        # The session's later checks see the lab as its converge left it.
        lab.ssh(clone, "nft delete table inet citadelle_transfer_egress", sudo=True)
        lab.down([second])
