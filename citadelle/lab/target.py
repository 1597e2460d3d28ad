"""The VM lab as a deployment target: clones stand in for the environment's servers.

``up`` replaces ``pulumi up`` (one clone per node role, restored from the golden snapshot); the
stack outputs it produces have the program's shape, every clone reached directly on its
forwarded loopback port with its host key pinned. The access it gives is the lab's own key and
sudo password, and the role variables it imposes are what a clone behind QEMU user-mode
networking can have: the host's Debian mirror, the lab PKI's log-upload identity, and SSH
admitted from the user-mode gateway (which plays the admin tier).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from citadelle import paths
from citadelle.environment import Environment
from citadelle.environment.outputs import StackOutputs
from citadelle.environment.targets import Access
from citadelle.errors import CitadelleError
from citadelle.lab import collector, ntp
from citadelle.lab.cloud import lab as cloud_lab
from citadelle.lab.collector import Collector
from citadelle.lab.core import Lab
from citadelle.lab.credentials import ensure_credentials
from citadelle.lab.grub import ensure_grub_password_hash
from citadelle.lab.image import host_mirrors
from citadelle.lab.ntp import TimeServer
from citadelle.lab.outputs import Clone
from citadelle.lab.source import ACCOUNT, Source
from citadelle.migrate.context import StandInEndpoints
from citadelle.migrate.fanout import endpoint

# Lab clones standing in for one server of each node role, and the unhardened one.
LAB_CLONES = {"bastion": "bastion", "gw": "gateway", "node1": "node"}
BASELINE_CLONE = "baseline"
# Where the migration's shards run without --gateway: rclone on this machine.
TRANSFER_HOST = "lab-host"


def placement(env: Environment, role: str) -> tuple[str, str]:
    """(tier, server group) a clone of ``role`` stands in for: a node is the first app pool."""
    if role == "node":
        pool = next(p for p in env.settings.compute.node_pools if p.tier == "app")
        return pool.tier, pool.name
    return ("admin", "bastion") if role == "bastion" else ("transfer", "gateway")


def lab_volumes(env: Environment, clones: dict[str, str]) -> dict[str, int]:
    """GiB of encrypted data volume each clone gets: its server group's ``dataVolumeGb``."""
    compute = env.settings.compute
    sizes = {"bastion": compute.bastion.data_volume_gb,
             "gateway": compute.gateway.data_volume_gb,
             **{p.name: p.data_volume_gb for p in compute.node_pools}}
    volumes = {name: sizes[placement(env, role)[1]] for name, role in clones.items()}
    return {name: size for name, size in volumes.items() if size}


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


@dataclass(frozen=True)
class LabTarget:
    """The local VM lab under ``root`` (clones in ``run_dir``, default: ``root``)."""

    root: Path = paths.LAB_DIR
    run_dir: Path | None = None
    name: str = "lab"

    @property
    def label(self) -> str:
        return f"the lab's clones ({self.outputs_file})"

    @property
    def outputs_file(self) -> Path:
        return (self.run_dir or self.root) / "stack-outputs.json"

    def lab(self) -> Lab:
        return Lab(self.root, run_dir=self.run_dir)

    def require_hardening_secrets(self) -> None:
        """Nothing to ask: the lab draws its own GRUB password (``lab_role_vars``)."""

    def up(self, env: Environment, log: Path) -> tuple[StackOutputs, str]:
        started = time.monotonic()
        lab = self.lab()
        inventory = lab.up(LAB_CLONES, lab_volumes(env, LAB_CLONES))
        outputs = lab_outputs(env, inventory.clones, lab.admin_user, lab.admin_group)
        self.outputs_file.write_text(json.dumps(outputs.to_json(), indent=2) + "\n",
                                     encoding="utf-8")
        names = ", ".join(f"{c.name} ({c.role}, 127.0.0.1:{c.port})" for c in inventory.clones)
        return outputs, f"lab clones up in {time.monotonic() - started:.0f} s: {names}"

    def outputs(self, env: Environment) -> StackOutputs:
        lab = self.lab()
        clones = lab.clones()
        if not clones:
            raise CitadelleError("lab: no clones are running (citadelle lab up)")
        return lab_outputs(env, clones, lab.admin_user, lab.admin_group)

    def access(self, env: Environment) -> Access:
        creds = ensure_credentials(self.root)
        return Access(identity_file=creds.private_key, become_password_file=creds.password_file,
                      role_vars=lab_role_vars(self.root))

    def prepare(self, env: Environment) -> list[str]:
        return self.prepare_lines()

    @contextmanager
    def baseline(self, env: Environment, out: Path) -> Iterator[Path | None]:
        """A clone restored from the golden snapshot, never hardened: stock Debian."""
        # Imported here: the inventory renderer is a deploy stage the lab only feeds.
        from citadelle.deploy.inventory import write_inventory  # noqa: PLC0415

        lab = self.lab()
        clones = {BASELINE_CLONE: "node"}
        clone = lab.up(clones, lab_volumes(env, clones)).clone(BASELINE_CLONE)
        try:
            # The one stock clone stands for each server role (a host of the inventory per
            # role, all reaching it), so every check a role's host gets is tried on stock
            # Debian: a check never tried there proves nothing (citadelle.evidence.report).
            outputs = lab_outputs(env, tuple(
                replace(clone, name=f"{BASELINE_CLONE}-{role}", role=role)
                for role in ("bastion", "gateway", "node")), lab.admin_user, lab.admin_group)
            yield write_inventory(env, outputs, self.access(env), out / "inventory.yml",
                                  target=self.name, source="the unhardened baseline clone"
                                  ).inventory
        finally:
            lab.down([BASELINE_CLONE])

    def prepare_lines(self) -> list[str]:
        """Start the lab's log collector and NTP server, the clones' endpoints on 10.0.2.2."""
        pids = Collector(self.root).start()
        time_pid = TimeServer(self.root).start()
        return [f"lab log collector on 127.0.0.1:{collector.PORT} (PIDs "
                f"{', '.join(map(str, pids.values()))})",
                f"lab NTP server on 127.0.0.1:{ntp.PORT} (PID {time_pid})"]

    def transfer_endpoints(self) -> StandInEndpoints:
        """The migration's endpoints in the lab: Azurite as the source, the loopback cloud's
        Swift as the destination, both certified by the lab CA."""
        source = Source(self.root)
        return StandInEndpoints(source_url=source.endpoint, account=ACCOUNT,
                                key=source.account_key(), source_ca=source.ca_cert,
                                cloud=cloud_lab.CLOUD_NAME, clouds_yaml=cloud_lab.CLOUDS_YAML,
                                gateway=TRANSFER_HOST)

    def gateway_inventory(self, names: Sequence[str]) -> Path:
        lab = self.lab()
        live = {c.name for c in lab.status() if c.alive and c.role == "gateway"}
        missing = [name for name in names if name not in live]
        if missing:
            raise CitadelleError(f"--gateway {', '.join(missing)}: no running lab clone of role "
                                 "gateway by that name (citadelle lab up --clones NAME=gateway)")
        return lab.inventory().inventory

    def gateway_url(self, url: str) -> str:
        """A loopback URL of this machine as a clone reaches it (QEMU's user-mode gateway)."""
        found = endpoint(url)
        if found["host"] not in ("127.0.0.1", "localhost"):
            raise CitadelleError(f"lab gateway: {url} is not a lab (loopback) endpoint")
        return urlsplit(url)._replace(
            netloc=f"{collector.GUEST_ADDRESS}:{found['port']}").geturl()

    def gateway_role_vars(self) -> dict[str, Any]:
        return lab_role_vars(self.root)
