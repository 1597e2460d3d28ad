"""The migration's pure parts: config refusals, sharding, projections, comparison, evidence."""

from __future__ import annotations

import base64
import json
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from citadelle.deploy.inventory import hosts_in
from citadelle.errors import CitadelleError
from citadelle.migrate import evidence, fanout, inventory, manifest, plan
from citadelle.migrate.context import SourceAccess, Tuning
from citadelle.migrate.manifest import Entry

from .test_config_errors import _error, _set

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("migration.destinationContainer", "archive",
         "citadelle:migration.destinationContainer: 'archive' is not a declared container"),
        ("migration.bandwidthLimit", "fast",
         "citadelle:migration.bandwidthLimit: 'fast' is not a bandwidth"),
        ("migration.source.url", "http://sndsdev.blob.core.windows.net",
         "citadelle:migration.source.url: 'http://sndsdev.blob.core.windows.net' must be an "
         "https:// URL"),
        ("migration.source.account", "SNDS_dev",
         "citadelle:migration.source.account: 'SNDS_dev' is not an Azure storage account name"),
        ("migration.linkGbps", 0, "citadelle:migration.linkGbps: Input should be greater than 0"),
    ],
)
def test_bad_migration_config_is_one_line(tmp_path: Path, path: str, value: Any,
                                          expected: str) -> None:
    assert expected in _error(tmp_path, _set(path, value))


def objects(*sizes: int) -> list[dict[str, Any]]:
    return [{"key": f"snds/o{i}", "size": size} for i, size in enumerate(sizes)]


def test_shards_are_balanced_by_bytes_and_cover_every_object() -> None:
    objs = objects(500, 400, 300, 200, 100, 90, 80, 70, 60, 50)
    shards = plan.shard(objs, ["gw-0", "gw-1", "gw-2"])
    keys = [k for s in shards for k in s.keys]
    assert sorted(keys) == sorted(o["key"] for o in objs) and len(keys) == len(set(keys))
    loads = sorted(s.bytes for s in shards)
    assert sum(loads) == 1850 and loads[-1] - loads[0] <= 500  # within the largest object


def test_projection_follows_the_link_and_the_bandwidth_limit() -> None:
    tuning = Tuning(link_gbps=10, bandwidth_limit="off", transfers=8, checkers=16)
    estimate, _ = plan.estimate(objects(10**9), ["gw-0", "gw-1"], tuning)
    assert estimate["aggregate_bytes_per_second"] == pytest.approx(1.25e9)
    assert estimate["projection"]["1 PB"]["duration_seconds"] == pytest.approx(800_000)
    assert estimate["projection"]["10 PB"]["duration_days"] == pytest.approx(92.59, abs=0.01)
    limited = Tuning(link_gbps=10, bandwidth_limit="100M", transfers=8, checkers=16)
    estimate, _ = plan.estimate(objects(10**9), ["gw-0", "gw-1"], limited)
    assert estimate["aggregate_bytes_per_second"] == 2 * 100 * 2**20


def test_comparison_names_each_kind_of_difference() -> None:
    source = {k: Entry(k, s, h) for k, s, h in
              [("a", 1, "h1"), ("b", 2, "h2"), ("c", 3, "h3"), ("d", 4, "h4")]}
    destination = {k: Entry(k, s, h) for k, s, h in
                   [("a", 1, "h1"), ("b", 2, "XX"), ("c", 9, "h3"), ("e", 5, "h5")]}
    result = manifest.compare(source, destination)
    assert result.as_json() == {"missing": ["d"], "extra": ["e"], "size_mismatch": ["c"],
                                "hash_mismatch": ["b"]}
    assert not result.ok and manifest.compare(source, source).ok


def _evidence(tmp_path: Path) -> Path:
    src = manifest.build("dev", "source", "https://s", ["snds"], [Entry("snds/a", 1, "h")])
    dst = manifest.build("dev", "destination", "https://d", ["c"], [Entry("snds/a", 1, "h")])
    manifest.write(tmp_path / "source-manifest.json", src)
    manifest.write(tmp_path / "destination-manifest.json", dst)
    result = manifest.compare(manifest.entries(src), manifest.entries(dst))
    evidence.write(tmp_path / "evidence.json", {
        "environment": "dev", "ok": result.ok, "differences": result.as_json(),
        "source": {"manifest": "source-manifest.json", "manifest_sha256": manifest.digest(src),
                   **src["totals"]},
        "destination": {"manifest": "destination-manifest.json",
                        "manifest_sha256": manifest.digest(dst), **dst["totals"]},
    })
    return tmp_path / "evidence.json"


def test_evidence_holds_until_anything_is_edited(tmp_path: Path) -> None:
    path = _evidence(tmp_path)
    assert evidence.check(path) == []
    data = json.loads(path.read_text())
    data["source"]["bytes"] = 2
    path.write_text(json.dumps(data))
    assert evidence.check(path) == [
        "the evidence's digest does not match its content (edited)",
        "source counts differ from the manifest's"]


def test_evidence_sees_a_rewritten_result(tmp_path: Path) -> None:
    path = _evidence(tmp_path)
    data = json.loads(path.read_text())
    data["differences"]["missing"] = ["snds/ghost"]
    data.pop("digest")
    path.write_text(json.dumps(evidence.seal({k: v for k, v in data.items() if k != "kind"})))
    assert evidence.check(path) == ["the recorded result differs from the manifests' comparison"]


def test_a_manifest_of_another_environment_is_refused(tmp_path: Path) -> None:
    src = manifest.build("prod", "source", "https://s", ["snds"], [])
    manifest.write(tmp_path / "m.json", src)
    with pytest.raises(CitadelleError, match="made for environment 'prod', not 'dev'"):
        manifest.load(tmp_path / "m.json", "dev")


def test_gateway_egress_admits_the_channel_endpoints_once_each() -> None:
    egress = fanout.channel_egress([
        "https://sndsprod.blob.core.windows.net", "https://keystone.example.eu:5000/v3",
        "https://swift.example.eu/v1/AUTH_x", "https://keystone.example.eu:5000/v3"])
    assert egress == [
        {"host": "keystone.example.eu", "port": 5000, "proto": "tcp"},
        {"host": "sndsprod.blob.core.windows.net", "port": 443, "proto": "tcp"},
        {"host": "swift.example.eu", "port": 443, "proto": "tcp"}]


def test_gateway_keeps_its_time_log_and_update_services_during_the_transfer() -> None:
    from citadelle.environment import Environment
    from citadelle.environment.projections import role_vars

    settings = Environment.load("prod").settings
    egress = fanout.platform_egress(role_vars(settings))
    ntp = [e["host"] for e in egress if e["proto"] == "udp"]
    assert ntp == list(settings.endpoint_hosts("ntp")) and ntp
    assert all(e["port"] == 123 for e in egress if e["proto"] == "udp")
    tcp = {(e["host"], e["port"]) for e in egress if e["proto"] == "tcp"}
    services = [fanout.endpoint(url) for url in (
        settings.endpoint_urls("log-collector")[0], *settings.endpoint_urls("package-mirror"))]
    assert tcp == {(e["host"], e["port"]) for e in services} and len(tcp) >= 2


def _resolved(host: str, port: int, proto: str, *addresses: str) -> dict[str, Any]:
    # The shape of ansible.builtin.getent's result for the `ahosts` database, one per endpoint.
    return {"item": {"host": host, "port": port, "proto": proto},
            "ansible_facts": {"getent_ahosts": {a: ["STREAM", host] for a in addresses}}}


def test_the_gateway_fence_admits_each_endpoint_in_its_own_address_family() -> None:
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar, trust_as_template

    from citadelle.paths import PLAYBOOKS_DIR

    resolv = "search lab\nnameserver 10.0.2.3\nnameserver 2001:db8::53\nnameserver 10.0.2.3\n"
    variables = {
        "ansible_managed": "Ansible managed",
        "citadelle_transfer_resolved": {"results": [
            _resolved("source.example", 443, "tcp", "2001:db8::10", "192.0.2.10"),
            _resolved("swift.example", 8080, "tcp", "192.0.2.20"),
            _resolved("ntp.example", 123, "udp", "2001:db8::123")]},
        "citadelle_transfer_resolv_conf": {"content": base64.b64encode(resolv.encode()).decode()},
    }
    text = (PLAYBOOKS_DIR / "templates/transfer-egress.nft.j2").read_text()
    fence = Templar(loader=DataLoader(), variables=variables).template(trust_as_template(text))
    rules = [line.strip() for line in fence.splitlines() if line.strip().endswith(" accept")]
    assert rules == [
        "ct state established,related accept",
        'oif "lo" accept',
        "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit } accept",
        "ip daddr { 192.0.2.10 } tcp dport 443 accept",
        "ip6 daddr { 2001:db8::10 } tcp dport 443 accept",
        "ip daddr { 192.0.2.20 } tcp dport 8080 accept",
        "ip6 daddr { 2001:db8::123 } udp dport 123 accept",
        "ip daddr { 10.0.2.3 } udp dport 53 accept",
        "ip daddr { 10.0.2.3 } tcp dport 53 accept",
        "ip6 daddr { 2001:db8::53 } udp dport 53 accept",
        "ip6 daddr { 2001:db8::53 } tcp dport 53 accept",
    ]
    assert "policy drop;" in fence


def test_shards_go_to_the_inventory_gateway_group() -> None:
    hosts = {"citadelle-prod-gateway-2": {"group_names": ["gateway"]},
             "citadelle-prod-bastion-1": {"group_names": ["bastion"]},
             "citadelle-prod-gateway-1": {"group_names": ["gateway"]}}
    assert hosts_in(hosts, "gateway") == ["citadelle-prod-gateway-1", "citadelle-prod-gateway-2"]


def test_named_gateways_must_be_gateways_of_the_inventory(tmp_path: Path) -> None:
    import argparse
    import types

    import yaml

    from citadelle.environment import Environment
    from citadelle.environment.targets import CloudTarget
    from citadelle.migrate import command

    inventory_file = tmp_path / "inventory.yml"
    inventory_file.write_text(yaml.safe_dump({"all": {
        "vars": {"bp028_time_ntp_servers": ["ntp1.example.eu"],
                 "bp028_audit_forward_url": "https://logs.example.eu:6514"},
        "children": {
            "gateway": {"hosts": {"citadelle-prod-gateway-1": {},
                                  "citadelle-prod-gateway-2": {
                                      "bp028_time_ntp_servers": ["ntp2.example.eu"]}}},
            "bastion": {"hosts": {"citadelle-prod-bastion-1": {}}}}}}))
    ctx = types.SimpleNamespace(env=Environment.load("prod", CloudTarget()), environment="prod")
    egress: list[list[str]] = []

    def chosen(*names: str) -> list[str]:
        args = argparse.Namespace(inventory=inventory_file, gateways=list(names) or None)
        found = command._gateways(args, ctx)  # type: ignore[arg-type]
        assert found is not None and found.inventory == inventory_file
        egress.append([f"{e['host']}:{e['port']}/{e['proto']}" for e in found.platform_egress])
        return found.names

    assert chosen() == ["citadelle-prod-gateway-1", "citadelle-prod-gateway-2"]
    # Each chosen gateway keeps the services its own inventory variables name.
    assert egress[-1] == ["logs.example.eu:6514/tcp", "ntp1.example.eu:123/udp",
                          "ntp2.example.eu:123/udp"]
    assert chosen("citadelle-prod-gateway-1") == ["citadelle-prod-gateway-1"]
    assert egress[-1] == ["logs.example.eu:6514/tcp", "ntp1.example.eu:123/udp"]
    assert chosen("citadelle-prod-gateway-2", "citadelle-prod-gateway-2") == [
        "citadelle-prod-gateway-2"]
    with pytest.raises(CitadelleError) as refused:
        chosen("citadelle-prod-gateway-1", "citadelle-prod-bastion-1", "gw-9")
    assert str(refused.value) == (
        f"--gateway citadelle-prod-bastion-1, gw-9: not a gateway of {inventory_file} "
        "(citadelle-prod-gateway-1, citadelle-prod-gateway-2)")


def test_the_evidence_report_lists_and_rechecks_the_latest_transfer(tmp_path: Path) -> None:
    from citadelle.evidence.report import migration_evidence

    folder = tmp_path / "migrate" / "dev-lab" / "verify-20261204T000000Z"
    folder.mkdir(parents=True)
    path = _evidence(folder)
    [row] = migration_evidence("dev", base=tmp_path)
    assert (row.ok, row.objects, row.bytes, row.recheck) == (True, 1, 1, "holds")
    (folder / "source-manifest.json").write_text("{}")
    [row] = migration_evidence("dev", base=tmp_path)
    assert "source manifest source-manifest.json does not match its recorded digest" in row.recheck
    assert path.is_file() and migration_evidence("prod", base=tmp_path) == []


@pytest.mark.snc("19.2", "19.6")
def test_only_the_allow_listed_object_store_is_a_destination() -> None:
    from citadelle.environment import Environment
    from citadelle.migrate.context import check_destination

    settings = Environment.load("dev").settings
    check_destination(settings, "https://s3.fr-par-1.snc.ovhcloud.com/v1/AUTH_x", loopback=False)
    check_destination(settings, "https://127.0.0.1:18080/v1/AUTH_x", loopback=True)
    for url, loopback, reason in (
            ("https://127.0.0.1:18080/v1/AUTH_x", False, "is not an allow-listed object-storage"),
            ("https://objects.us-east-1.example.com/v1/AUTH_x", True, "is not an allow-listed"),
            # A name that looks like a loopback address is a name.
            ("https://127.0.0.1.example.com/v1/AUTH_x", True, "is not an allow-listed"),
            ("https://registry.citadelle.internal/v1/AUTH_x", False, "is not an allow-listed"),
            ("http://s3.fr-par-1.snc.ovhcloud.com/v1/AUTH_x", False, "not https")):
        with pytest.raises(CitadelleError, match=reason):
            check_destination(settings, url, loopback=loopback)


def test_an_unreachable_source_is_one_line_within_seconds() -> None:
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    access = SourceAccess(url=f"http://127.0.0.1:{port}/acct", account="acct",
                          key=base64.b64encode(b"k" * 64).decode(), containers=("snds",),
                          ca_file=None)
    with pytest.raises(CitadelleError, match="not a declared migration source container"):
        inventory.list_source(access, ["other"])
    started = time.monotonic()
    with pytest.raises(CitadelleError) as refused:
        inventory.list_source(access, ["snds"])
    message = str(refused.value)
    assert message.startswith(f"source http://127.0.0.1:{port}/acct: unreachable (")
    assert "\n" not in message and len(message) < 260
    assert time.monotonic() - started < 10
