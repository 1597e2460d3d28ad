"""Conformance against the loopback cloud: it passes, and each breakage fails its own check."""

from __future__ import annotations

import json
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sarif_kit.validate import validation_errors

from citadelle.audit import conformance
from citadelle.audit.allowlist import AllowList
from citadelle.audit.model import Result, Status
from citadelle.lab.cloud import configs, lab, provision
from citadelle.lab.cloud.provision import connect
from citadelle.paths import REPO_ROOT
from citadelle.plan.plan import plan_environment

CITADELLE = str(REPO_ROOT / ".venv" / "bin" / "citadelle")
LAB_ALLOW = AllowList(
    networks=("127.0.0.0/8",), regions=(configs.REGION,), availability_zones=("fr-par-1a",)
)
FOREIGN_URL = "http://placement.us-east-1.example.com:8778"


def run_conformance(cloud_lab: Any, mode: str = "lab") -> list[Result]:
    # A fresh member session each time: the catalog lives in the token.
    member = connect(lab.CLOUD_NAME, str(cloud_lab.clouds_yaml))
    ctx = conformance.Context(
        conn=member, allow=LAB_ALLOW, mode=mode, region=configs.REGION, image=None,
        planned=conformance.planned_usage(plan_environment("dev")),
    )  # fmt: skip
    return conformance.run(ctx)


def failed(results: list[Result]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for r in results:
        if r.status is Status.FAIL:
            out.setdefault(r.check.id, []).append(r.message)
    return out


@pytest.mark.snc("19.2", "19.6", "10.1", "10.5", "13.2", "17.4")
def test_loopback_cloud_conforms(cloud_lab):
    results = run_conformance(cloud_lab)
    assert failed(results) == {}
    statuses = {r.check.id: r.status for r in results if r.status is not Status.NOT_CHECKED}
    assert statuses == {
        "endpoint-location": Status.PASS,
        "region-allowed": Status.PASS,
        "key-manager": Status.PASS,
        "encrypted-volume-type": Status.PASS,
        "default-security-group": Status.PASS,
        "image-signature": Status.NOT_APPLICABLE,
        "availability-zones": Status.PASS,
        "quotas": Status.PASS,
        "object-store-endpoint": Status.PASS,
        "no-public-container": Status.PASS,
    }


@pytest.mark.snc("10.1")
def test_object_encryption_needs_the_info_key_and_then_passes(cloud_lab, monkeypatch):
    [unsigned] = [r for r in run_conformance(cloud_lab) if r.check.id == "object-encryption"]
    assert unsigned.status is Status.NOT_CHECKED
    monkeypatch.setenv("CITADELLE_SWIFT_INFO_KEY", lab.SWIFT.info_key_file.read_text().strip())
    [signed] = [r for r in run_conformance(cloud_lab) if r.check.id == "object-encryption"]
    assert signed.status is Status.PASS and "encryption middleware enabled" in signed.message
    monkeypatch.setenv("CITADELLE_SWIFT_INFO_KEY", "not-the-key")
    [wrong] = [r for r in run_conformance(cloud_lab) if r.check.id == "object-encryption"]
    assert wrong.status is Status.FAIL


def test_lab_mode_reports_tls_as_not_checked(cloud_lab):
    tls = [r for r in run_conformance(cloud_lab) if r.check.id == "endpoint-tls"]
    assert [r.status for r in tls] == [Status.NOT_CHECKED]


@pytest.mark.snc("10.2")
def test_prod_mode_fails_plain_http_endpoints(cloud_lab):
    tls = failed(run_conformance(cloud_lab, mode="prod"))["endpoint-tls"]
    plain = [m for m in tls if m.endswith(": not https")]
    # The object store speaks TLS, with a certificate of the lab CA no system trusts.
    untrusted = [m for m in tls if not m.endswith(": not https")]
    assert len(plain) == 9
    assert len(untrusted) == 1 and "CERTIFICATE_VERIFY_FAILED" in untrusted[0]


@pytest.mark.snc("10.5")
def test_key_manager_check_cleans_up_its_order_and_secret(cloud_lab, member):
    before = {s.secret_ref for s in member.key_manager.secrets()}
    result = next(r for r in run_conformance(cloud_lab) if r.check.id == "key-manager")
    assert "deleted" in result.message and "roles [member, reader]" in result.message
    assert {s.secret_ref for s in member.key_manager.secrets()} == before
    assert list(member.key_manager.orders()) == []


# --- breakages: each applies one change as the provider's admin (or the member), then restores


def _remove_luks_type(admin: Any) -> Callable[[], None]:
    volume_type = admin.block_storage.find_type(provision.LUKS_TYPE)
    encryption = admin.block_storage.get_type_encryption(volume_type.id)
    admin.block_storage.delete_type_encryption(encryption=encryption, volume_type=volume_type)
    admin.block_storage.delete_type(volume_type)

    def restore() -> None:
        restored = admin.block_storage.create_type(name=provision.LUKS_TYPE, is_public=True)
        admin.block_storage.create_type_encryption(restored, **provision.LUKS_SPEC)

    return restore


def _foreign_endpoint(admin: Any) -> Callable[[], None]:
    service = admin.identity.create_service(name="placement", type="placement")
    admin.identity.create_endpoint(
        service_id=service.id, interface="public", url=FOREIGN_URL, region_id=configs.REGION
    )

    def restore() -> None:
        for endpoint in admin.identity.endpoints(service_id=service.id):
            admin.identity.delete_endpoint(endpoint)
        admin.identity.delete_service(service)

    return restore


def _public_container(member: Any) -> Callable[[], None]:
    member.object_store.put("/hand-public", headers={"X-Container-Read": ".r:*,.rlistings"}
                            ).raise_for_status()

    def restore() -> None:
        member.object_store.delete("/hand-public").raise_for_status()

    return restore


def _remove_key_manager_endpoint(admin: Any) -> Callable[[], None]:
    service = next(s for s in admin.identity.services() if s.type == "key-manager")
    removed = [(e.interface, e.url) for e in admin.identity.endpoints(service_id=service.id)]
    for endpoint in admin.identity.endpoints(service_id=service.id):
        admin.identity.delete_endpoint(endpoint)

    def restore() -> None:
        for interface, url in removed:
            admin.identity.create_endpoint(
                service_id=service.id, interface=interface, url=url, region_id=configs.REGION
            )

    return restore


def _open_default_group(admin: Any, member: Any) -> Callable[[], None]:
    group = next(iter(member.network.security_groups(
        name="default", project_id=member.current_project_id)))  # fmt: skip
    rule = member.network.create_security_group_rule(
        security_group_id=group.id, direction="ingress", ether_type="IPv4", protocol="tcp",
        port_range_min=22, port_range_max=22, remote_ip_prefix="0.0.0.0/0",
    )  # fmt: skip

    def restore() -> None:
        member.network.delete_security_group_rule(rule)

    return restore


@dataclass(frozen=True)
class Breakage:
    name: str
    check: str
    apply: Callable[[Any, Any], Callable[[], None]]
    expect: str


BREAKAGES = [
    Breakage("encrypted volume type removed", "encrypted-volume-type",
             lambda a, m: _remove_luks_type(a), "not LUKS-encrypted"),
    Breakage("endpoint on a non-allow-listed host", "endpoint-location",
             lambda a, m: _foreign_endpoint(a), FOREIGN_URL),
    Breakage("key manager endpoint removed", "key-manager",
             lambda a, m: _remove_key_manager_endpoint(a), "no key-manager endpoint"),
    Breakage("default group opened to the world", "default-security-group",
             _open_default_group, "from 0.0.0.0/0"),
    Breakage("public container", "no-public-container",
             lambda a, m: _public_container(m), "public: hand-public"),
]  # fmt: skip


@pytest.mark.parametrize("breakage", BREAKAGES, ids=lambda b: b.name)
def test_breakage_fails_its_check(cloud_lab, admin, member, breakage: Breakage):
    restore = breakage.apply(admin, member)
    try:
        failures = failed(run_conformance(cloud_lab))
    finally:
        restore()
    assert list(failures) == [breakage.check]
    assert any(breakage.expect in m for m in failures[breakage.check])
    assert failed(run_conformance(cloud_lab)) == {}


# --- the command line


def audit_cli(cli_env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CITADELLE, "audit-cloud", *args], env=cli_env, capture_output=True, text=True,
        check=False, timeout=120,
    )  # fmt: skip


def test_cli_conformance_of_dev_passes_in_lab_mode_with_all_formats(
    cloud_lab, cli_env, tmp_path, timings
):
    started = time.monotonic()
    proc = audit_cli(
        cli_env, "conformance", "--env", "dev", "--os-cloud", lab.CLOUD_NAME, "--mode", "lab",
        "--json", str(tmp_path / "a.json"), "--sarif", str(tmp_path / "a.sarif"),
        "--junit", str(tmp_path / "a.xml"),
    )  # fmt: skip
    timings["audit-cloud conformance --env dev (CLI)"] = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads((tmp_path / "a.json").read_text())
    assert {r["check"]["id"] for r in data["results"]} == {c.id for c in conformance.CHECKS}
    sarif = json.loads((tmp_path / "a.sarif").read_text())
    assert validation_errors(sarif) == []
    assert sarif["runs"][0]["results"] == []
    suite = ET.parse(tmp_path / "a.xml").getroot()
    assert (suite.get("tests"), suite.get("failures")) == (str(len(conformance.CHECKS)), "0")


def test_cli_prod_mode_exits_1_on_plain_http(cloud_lab, cli_env):
    proc = audit_cli(cli_env, "conformance", "--env", "dev", "--os-cloud", lab.CLOUD_NAME)
    assert proc.returncode == 1
    assert "fail            high      endpoint-tls" in proc.stdout


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"password": "wrong-password"}, "authentication refused (HTTP 401)"),
        ({"auth_url": "http://127.0.0.1:9/v3"}, "identity endpoint unreachable"),
    ],
    ids=["bad credentials", "unreachable cloud"],
)
def test_cli_cannot_audit_exits_2_with_one_line(cloud_lab, cli_env, tmp_path, change, expected):
    clouds = json.loads(cloud_lab.clouds_yaml.read_text())
    clouds["clouds"][lab.CLOUD_NAME]["auth"].update(change)
    path = tmp_path / "clouds.yaml"
    path.write_text(json.dumps(clouds))
    proc = audit_cli({**cli_env, "OS_CLIENT_CONFIG_FILE": str(path)}, "conformance", "--env",
                     "dev", "--os-cloud", lab.CLOUD_NAME, "--mode", "lab")  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and expected in proc.stderr
    assert proc.stderr.startswith("citadelle: error: ")


def test_cli_unknown_cloud_exits_2(cloud_lab, cli_env):
    proc = audit_cli(cli_env, "drift", "--env", "dev", "--os-cloud", "no-such-cloud")
    assert proc.returncode == 2
    assert proc.stderr.startswith("citadelle: error: cloud 'no-such-cloud'")
    assert proc.stderr.count("\n") == 1
