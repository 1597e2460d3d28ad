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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from citadelle import paths
from citadelle.environment import Environment
from citadelle.environment.outputs import StackOutputs
from citadelle.environment.targets import Access
from citadelle.errors import CitadelleError
from citadelle.lab import collector
from citadelle.lab.collector import Collector
from citadelle.lab.core import Lab
from citadelle.lab.credentials import ensure_credentials
from citadelle.lab.image import host_mirrors
from citadelle.lab.outputs import Clone

# Lab clones standing in for one server of each node role.
LAB_CLONES = {"bastion": "bastion", "gw": "gateway", "node1": "node"}
# The tier and server group each node role's clone stands in for.
ROLE_PLACEMENT = {"bastion": ("admin", "bastion"), "gateway": ("transfer", "gateway"),
                  "node": ("app", "node")}


def lab_outputs(env: Environment, clones: tuple[Clone, ...], user: str, group: str) \
        -> StackOutputs:
    """The stack outputs of ``env`` as the lab's clones realise them."""
    servers = {}
    for clone in sorted(clones, key=lambda c: c.name):
        tier, pool = ROLE_PLACEMENT[clone.role]
        servers[clone.name] = {
            "role": clone.role, "privateIp": clone.private_ip, "sshHost": "127.0.0.1",
            "sshPort": clone.port, "hostKeyEd25519": clone.host_key_ed25519,
            "tier": tier, "pool": pool}
    return StackOutputs.parse({"environment": env.name, "adminUser": user,
                               "adminGroup": group, "region": env.settings.openstack.region,
                               "servers": servers})


def lab_role_vars(root: Path = paths.LAB_DIR) -> dict[str, Any]:
    """What a clone behind QEMU user-mode networking can have, over the environment's values."""
    mirror, security_mirror = host_mirrors()
    return {
        # The clones cannot reach the platform's mirror: they keep the host's, and the
        # localisation check reports the difference (waived in waivers/lab.yaml).
        "bp028_packages_mirror_url": mirror,
        "bp028_packages_security_mirror_url": security_mirror,
        # SSH forwarded from the host arrives from the user-mode gateway.
        "bp028_firewall_admin_cidrs": [f"{collector.GUEST_ADDRESS}/32"],
        # The lab's PKI stands in for the environment's log-upload identity.
        **Collector(root).tls_vars(),
    }


def lab_harden_vars(root: Path = paths.LAB_DIR) -> dict[str, Any]:
    """`citadelle lab harden`: the lab's role variables, plus its own services as endpoints.

    The gateway 10.0.2.2 is how a clone reaches the host, hence the lab's log collector; the
    lab has no NTP server there, so chrony keeps retrying.
    """
    return {
        **lab_role_vars(root),
        "bp028_time_ntp_servers": [collector.GUEST_ADDRESS],
        "bp028_audit_forward_url": f"https://{collector.GUEST_ADDRESS}:{collector.PORT}",
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

    def up(self, env: Environment, log: Path) -> tuple[StackOutputs, str]:
        started = time.monotonic()
        lab = self.lab()
        inventory = lab.up(LAB_CLONES)
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

    def prepare_lines(self) -> list[str]:
        pids = Collector(self.root).start()
        return [f"lab log collector on 127.0.0.1:{collector.PORT} (PIDs "
                f"{', '.join(map(str, pids.values()))})"]
