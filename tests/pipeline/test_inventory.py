"""`citadelle inventory`: stack outputs + config -> Ansible inventory; bad outputs refused."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from citadelle.cli import main
from citadelle.deploy.inventory import host_vars, write_inventory
from citadelle.environment import Environment
from citadelle.environment.outputs import StackOutputs
from citadelle.environment.targets import Access
from citadelle.errors import CitadelleError

pytestmark = pytest.mark.unit

# A syntactically valid ed25519 public key (the host key is only pinned, never used to connect).
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFP+qKVsgKVUzae9fHCI8QkewZkWEhhoiYv8IdCFjiKd"

def dev_outputs() -> dict[str, Any]:
    """What `pulumi stack output --json -s dev` returns after an up (addresses from dev's CIDRs)."""
    return copy.deepcopy({
        "environment": "dev",
        "region": "fr-par-1",
        "adminUser": "citadelle-admin",
        "adminGroup": "citadelle-admins",
        "bastion": {"publicIp": "192.0.2.10", "publicIps": ["192.0.2.10"], "sshPort": 22,
                    "hostKeyEd25519": HOST_KEY},
        "servers": {
            "citadelle-dev-bastion-1": {"role": "bastion", "privateIp": "10.30.1.5",
                                        "sshPort": None},
            "citadelle-dev-gateway-1": {"role": "gateway", "privateIp": "10.30.2.5",
                                        "sshPort": None},
            "citadelle-dev-workers-1": {"role": "node", "privateIp": "10.30.16.5",
                                        "sshPort": None},
            "citadelle-dev-datastore-1": {"role": "node", "privateIp": "10.30.32.5",
                                          "sshPort": None},
        },
    })


def direct_outputs() -> dict[str, Any]:
    """Servers reached directly on forwarded loopback ports, host keys known (the lab's shape)."""
    return {
        "environment": "dev",
        "servers": {"bastion": {"role": "bastion", "privateIp": "10.0.2.15",
                                "sshHost": "127.0.0.1", "sshPort": 40022,
                                "hostKeyEd25519": HOST_KEY},
                    "node1": {"role": "node", "privateIp": "10.0.2.15", "sshHost": "127.0.0.1",
                              "sshPort": 40023, "hostKeyEd25519": HOST_KEY}},
        "adminUser": "citadelle-admin",
        "adminGroup": "citadelle-admins",
    }


def _write(tmp_path: Path, outputs: Any, access: Access | None = None,
           **options: Any) -> tuple[dict[str, Any], Path]:
    files = write_inventory(Environment.load("dev"), StackOutputs.parse(outputs),
                            access or Access(), tmp_path / "inventory.yml", target="cloud",
                            source="test", **options)
    return yaml.safe_load(files.inventory.read_text()), files.inventory


def _drop(outputs: dict[str, Any], dotted: str) -> dict[str, Any]:
    *parents, last = dotted.split(".")
    node = outputs
    for part in parents:
        node = node[part]
    del node[last]
    return outputs


@pytest.mark.parametrize("key", [
    "environment", "adminUser", "adminGroup", "servers", "bastion", "bastion.publicIp",
    "bastion.sshPort", "bastion.hostKeyEd25519", "servers.citadelle-dev-gateway-1.role",
    "servers.citadelle-dev-gateway-1.privateIp",
])
def test_missing_key_is_refused_naming_it(tmp_path: Path, key: str) -> None:
    with pytest.raises(CitadelleError) as err:
        _write(tmp_path, _drop(dev_outputs(), key))
    assert err.value.message == f"stack outputs: missing key '{key}'"
    assert not (tmp_path / "inventory.yml").exists()


@pytest.mark.parametrize(("change", "message"), [
    ({"servers": {"x": {"role": "db", "privateIp": "10.30.1.9"}}},
     "stack outputs: key 'servers.x.role' is 'db'; allowed: bastion, gateway, node"),
    ({"bastion": {"publicIp": "bastion.example", "sshPort": 22, "hostKeyEd25519": HOST_KEY}},
     "stack outputs: key 'bastion.publicIp' is not an IP address (got 'bastion.example')"),
    ({"bastion": {"publicIp": "192.0.2.10", "sshPort": "22", "hostKeyEd25519": HOST_KEY}},
     "stack outputs: key 'bastion.sshPort' must be a int (got '22')"),
    ({"bastion": {"publicIp": "192.0.2.10", "sshPort": 22, "hostKeyEd25519": "ssh-rsa AAAA"}},
     "stack outputs: key 'bastion.hostKeyEd25519' is not an OpenSSH ed25519 public key "
     "('ssh-ed25519 <base64>')"),
    ({"environment": "prod"},
     "stack outputs: key 'environment' is 'prod' but the inventory is for 'dev'; pass the "
     "outputs of stack dev"),
    ({"servers": {}}, "stack outputs: key 'servers' is empty; nothing to reach"),
], ids=["role", "public-ip", "port-type", "host-key", "environment", "no-servers"])
def test_bad_value_is_refused(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    with pytest.raises(CitadelleError) as err:
        _write(tmp_path, dev_outputs() | change)
    assert err.value.message == message


def test_cli_prints_one_line_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    source = tmp_path / "outputs.json"
    source.write_text(json.dumps(_drop(dev_outputs(), "bastion.hostKeyEd25519")))
    code = main(["inventory", "dev", "--from", str(source), "--out",
                 str(tmp_path / "inventory.yml")])
    err = capsys.readouterr().err
    assert code == 2
    assert err == "citadelle: error: stack outputs: missing key 'bastion.hostKeyEd25519'\n"


def test_groups_per_node_role_and_header(tmp_path: Path) -> None:
    inventory, path = _write(tmp_path, dev_outputs())
    children = inventory["all"]["children"]
    assert {g: sorted(children[g]["hosts"]) for g in children} == {
        "bastion": ["citadelle-dev-bastion-1"], "gateway": ["citadelle-dev-gateway-1"],
        "node": ["citadelle-dev-datastore-1", "citadelle-dev-workers-1"]}
    assert path.read_text().startswith("# Generated by `citadelle inventory dev`")
    assert "&id" not in path.read_text()


def test_variables_come_from_the_environment_config(tmp_path: Path) -> None:
    settings = Environment.load("dev").settings
    hosts = host_vars(_write(tmp_path, dev_outputs())[0])
    bastion, worker = hosts["citadelle-dev-bastion-1"], hosts["citadelle-dev-workers-1"]
    assert worker["bp028_time_ntp_servers"] == list(settings.endpoint_hosts("ntp"))
    assert worker["citadelle_ntp_servers"] == list(settings.endpoint_hosts("ntp"))
    assert worker["citadelle_log_collectors"] == list(settings.endpoint_urls("log-collector"))
    assert worker["citadelle_dns_resolvers"] == list(settings.endpoint_hosts("dns"))
    assert worker["bp028_audit_forward_url"] == settings.endpoint_urls("log-collector")[0]
    assert set(settings.endpoint_urls("package-mirror")) == {
        worker["bp028_packages_mirror_url"], worker["bp028_packages_security_mirror_url"]}
    assert worker["bp028_ssh_admin_group"] == settings.admin.group
    assert bastion["bp028_level"] == settings.hardening.bastion_level
    assert worker["bp028_level"] == settings.hardening.level
    # SSH to the bastion from the operators' ranges, to the others from the admin tier only.
    assert bastion["bp028_firewall_admin_cidrs"] == list(settings.network.admin_cidrs)
    assert worker["bp028_firewall_admin_cidrs"] == [settings.network.tiers["admin"].cidr]
    assert worker["bp028_firewall_allowed_services"] == [{
        "name": "app", "port": settings.network.app_port, "proto": "tcp",
        "sources": [settings.network.tiers["edge"].cidr]}]
    assert hosts["citadelle-dev-datastore-1"]["citadelle_data_volume_gb"] == next(
        p.data_volume_gb for p in settings.compute.node_pools if p.name == "datastore")


def test_real_environment_jumps_through_the_pinned_bastion(tmp_path: Path) -> None:
    inventory, _ = _write(tmp_path, dev_outputs())
    common = inventory["all"]["vars"]["ansible_ssh_common_args"]
    assert common == f"-F {tmp_path / 'ssh_config'}"
    ssh_config = (tmp_path / "ssh_config").read_text()
    jump = ssh_config.split("Host citadelle-dev-jump\n", 1)[1].split("\n\n", 1)[0]
    assert "  HostName 192.0.2.10" in jump
    assert "  StrictHostKeyChecking yes" in jump
    assert f"  UserKnownHostsFile {tmp_path / 'known_hosts'}" in jump
    worker = ssh_config.split("Host citadelle-dev-workers-1\n", 1)[1].split("\n\n", 1)[0]
    assert "  HostName 10.30.16.5" in worker and "  ProxyJump citadelle-dev-jump" in worker
    assert (tmp_path / "known_hosts").read_text() == f"citadelle-dev-jump {HOST_KEY}\n"


def test_direct_outputs_reach_hosts_on_their_port_with_keys_pinned(tmp_path: Path) -> None:
    access = Access(identity_file=tmp_path / "id_ed25519",
                    role_vars={"bp028_firewall_admin_cidrs": ["10.0.2.2/32"]})
    inventory, _ = _write(tmp_path, direct_outputs(), access)
    hosts = host_vars(inventory)
    assert hosts["node1"]["ansible_host"] == "node1"
    assert hosts["node1"]["bp028_firewall_admin_cidrs"] == ["10.0.2.2/32"]
    assert hosts["node1"]["ansible_ssh_private_key_file"] == str(tmp_path / "id_ed25519")
    ssh_config = (tmp_path / "ssh_config").read_text()
    node = ssh_config.split("Host node1\n", 1)[1].split("\n\n", 1)[0]
    assert "ProxyJump" not in ssh_config
    assert "  HostName 127.0.0.1" in node and "  Port 40023" in node
    assert "  StrictHostKeyChecking yes" in node and "  HostKeyAlias node1" in node
    assert (tmp_path / "known_hosts").read_text() == (
        f"bastion {HOST_KEY}\nnode1 {HOST_KEY}\n")


def test_control_path_fits_the_socket_limit_from_a_deep_checkout(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    _write(deep, dev_outputs())
    paths = {line.split()[1] for line in (deep / "ssh_config").read_text().splitlines()
             if line.strip().startswith("ControlPath")}
    assert len(paths) == 1
    control = paths.pop()
    # %C expands to 40 characters, ssh adds a 17-character suffix while binding.
    assert len(control.replace("%C", "c" * 40)) + 17 < 108
    assert Path(control).parent.stat().st_mode & 0o777 == 0o700


def test_regenerating_gives_the_same_inventory(tmp_path: Path) -> None:
    first = _write(tmp_path, dev_outputs())[1].read_text()
    assert _write(tmp_path, dev_outputs())[1].read_text() == first


def test_without_saved_outputs_the_pulumi_cli_is_required(tmp_path: Path, monkeypatch,
                                                           capsys: pytest.CaptureFixture[str]):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["inventory", "dev", "--out", str(tmp_path / "inventory.yml")]) == 2
    assert capsys.readouterr().err == (
        "citadelle: error: the Pulumi CLI is not on PATH (needed to read the stack outputs); "
        "install it from the in-region mirror (docs/sovereignty.md) or pass saved outputs with "
        "--from FILE (or use --target lab)\n")


def test_role_overrides_never_replace_the_allow_list(tmp_path: Path) -> None:
    inventory, _ = _write(tmp_path, dev_outputs(),
                          extra_vars={"bp028_time_ntp_servers": ["10.0.2.2"]})
    worker = host_vars(inventory)["citadelle-dev-workers-1"]
    assert worker["bp028_time_ntp_servers"] == ["10.0.2.2"]
    assert worker["citadelle_ntp_servers"] == list(Environment.load("dev").settings
                                                   .endpoint_hosts("ntp"))
    with pytest.raises(CitadelleError) as err:
        _write(tmp_path, dev_outputs(), extra_vars={"citadelle_ntp_servers": ["10.0.2.2"]})
    assert err.value.message == ("inventory: citadelle_ntp_servers is the config's allow-list; "
                                 "it cannot be overridden")
