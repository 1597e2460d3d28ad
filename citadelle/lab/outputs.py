"""The lab's clones as an environment's servers: their stack outputs and the lab's own files.

A clone stands in for one server of its role's group (:func:`placement`); :func:`lab_outputs`
gives the stack outputs of an environment realised by the clones, in the program's shape, and
:func:`lab_role_vars` what a clone behind QEMU user-mode networking imposes on the roles. The
lab's own inventory and ssh_config (`citadelle lab up`) are those of the environment it stands
in for, rendered by the one inventory renderer (``citadelle.deploy.inventory``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from citadelle import paths
from citadelle.environment import Environment
from citadelle.environment.outputs import StackOutputs
from citadelle.environment.targets import Access
from citadelle.lab import collector
from citadelle.lab.collector import Collector
from citadelle.lab.grub import ensure_grub_password_hash
from citadelle.lab.image import host_mirrors

ROLES: tuple[str, ...] = ("bastion", "gateway", "node")
# The environment the lab's own inventory is rendered for: the main command's
# (`citadelle deploy dev --target lab`); `citadelle inventory ENV --target lab` gives another's.
LAB_ENVIRONMENT = "dev"


@dataclass(frozen=True)
class Clone:
    """One running clone as recorded in ``clones/<name>/clone.json``."""

    name: str
    role: str
    port: int
    pid: int
    private_ip: str
    host_key_ed25519: str
    directory: Path
    # GiB of the encrypted data volume attached to it (citadelle.lab.volume), 0 for none.
    data_volume_gb: int = 0

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role, "port": self.port, "pid": self.pid,
                "private_ip": self.private_ip, "host_key_ed25519": self.host_key_ed25519,
                "data_volume_gb": self.data_volume_gb}

    @classmethod
    def from_json(cls, directory: Path, data: dict[str, Any]) -> Clone:
        return cls(name=str(data["name"]), role=str(data["role"]), port=int(data["port"]),
                   pid=int(data["pid"]), private_ip=str(data["private_ip"]),
                   host_key_ed25519=str(data["host_key_ed25519"]), directory=directory,
                   data_volume_gb=int(data.get("data_volume_gb", 0)))


@dataclass(frozen=True)
class LabInventory:
    """What ``Lab.up`` returns: the live clones and the files describing them."""

    clones: tuple[Clone, ...]
    ssh_config: Path
    inventory: Path

    def clone(self, name: str) -> Clone:
        for clone in self.clones:
            if clone.name == name:
                return clone
        raise KeyError(name)

    def by_role(self, role: str) -> tuple[Clone, ...]:
        return tuple(c for c in self.clones if c.role == role)


def placement(env: Environment, role: str) -> tuple[str, str]:
    """(tier, server group) a clone of ``role`` stands in for: a node is the first app pool."""
    if role == "node":
        pool = next(p for p in env.settings.compute.node_pools if p.tier == "app")
        return pool.tier, pool.name
    return ("admin", "bastion") if role == "bastion" else ("transfer", "gateway")


def lab_outputs(env: Environment, clones: tuple[Clone, ...], user: str, group: str) \
        -> StackOutputs:
    """The stack outputs of ``env`` as the lab's clones realise them."""
    servers = {}
    for clone in sorted(clones, key=lambda c: c.name):
        tier, pool = placement(env, clone.role)
        servers[clone.name] = {
            "role": clone.role, "privateIp": clone.private_ip, "sshHost": "127.0.0.1",
            "sshPort": clone.port, "hostKeyEd25519": clone.host_key_ed25519,
            "tier": tier, "pool": pool}
    return StackOutputs.parse({"environment": env.name, "adminUser": user,
                               "adminGroup": group, "region": env.settings.openstack.region,
                               "servers": servers})


def lab_role_vars(root: Path = paths.LAB_DIR) -> dict[str, Any]:
    """What a clone behind QEMU user-mode networking can have, over the environment's values.

    The user-mode gateway 10.0.2.2 is where forwarded SSH comes from and how a clone reaches
    the host, hence the lab's log collector (mutual TLS with the identity the lab PKI issued to
    the clone) and its NTP server (``citadelle.lab.ntp``); APT stays on the host's Debian
    mirror. The localisation checks report these differences from the allow-list (waived in
    waivers/lab.yaml).
    """
    mirror, security_mirror = host_mirrors()
    return {
        "bp028_packages_mirror_url": mirror,
        "bp028_packages_security_mirror_url": security_mirror,
        "bp028_firewall_admin_cidrs": [f"{collector.GUEST_ADDRESS}/32"],
        "bp028_time_ntp_servers": [collector.GUEST_ADDRESS],
        "bp028_audit_forward_url": f"https://{collector.GUEST_ADDRESS}:{collector.PORT}",
        **Collector(root).tls_vars(),
        # The lab's own GRUB superuser password (BP-028 R5), for the environment's secret one.
        "bp028_kernel_grub_password_hash": ensure_grub_password_hash(root),
    }


def write_outputs(root: Path, run_dir: Path, clones: tuple[Clone, ...], *, user: str, group: str,
                  access: Access) -> LabInventory:
    """The lab's inventory, ssh_config and known_hosts: `citadelle inventory dev --target lab`
    for the live clones."""
    # Imported here: the inventory renderer is a deploy stage the lab only feeds.
    from citadelle.deploy.inventory import write_inventory  # noqa: PLC0415

    ordered = tuple(sorted(clones, key=lambda c: c.name))
    result = LabInventory(clones=ordered, ssh_config=run_dir / "ssh_config",
                          inventory=run_dir / "inventory.yml")
    if not ordered:
        # No clone, no host to reach: files naming gone clones would mislead.
        for path in (result.inventory, result.ssh_config, run_dir / "known_hosts"):
            path.unlink(missing_ok=True)
        return result
    env = Environment.load(LAB_ENVIRONMENT)
    write_inventory(env, lab_outputs(env, ordered, user, group), access, result.inventory,
                    target="lab", source=f"the lab's clones under {root}")
    return result
