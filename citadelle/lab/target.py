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
from urllib.parse import urlsplit

from citadelle import paths
from citadelle.environment import Environment
from citadelle.environment.outputs import StackOutputs
from citadelle.environment.targets import Access, TransferEndpoints
from citadelle.errors import CitadelleError
from citadelle.lab import collector, ntp
from citadelle.lab.cloud import lab as cloud_lab
from citadelle.lab.collector import Collector
from citadelle.lab.core import Lab
from citadelle.lab.ntp import TimeServer
from citadelle.lab.outputs import lab_outputs, placement
from citadelle.lab.source import ACCOUNT, Source
from citadelle.migrate.fanout import endpoint

# Lab clones standing in for one server of each node role, and the unhardened one.
LAB_CLONES = {"bastion": "bastion", "gw": "gateway", "node1": "node"}
BASELINE_CLONE = "baseline"
# Where the migration's shards run without --gateway: rclone on this machine.
TRANSFER_HOST = "lab-host"


def lab_volumes(env: Environment, clones: dict[str, str]) -> dict[str, int]:
    """GiB of encrypted data volume each clone gets: its server group's ``dataVolumeGb``."""
    compute = env.settings.compute
    sizes = {"bastion": compute.bastion.data_volume_gb,
             "gateway": compute.gateway.data_volume_gb,
             **{p.name: p.data_volume_gb for p in compute.node_pools}}
    volumes = {name: sizes[placement(env, role)[1]] for name, role in clones.items()}
    return {name: size for name, size in volumes.items() if size}


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
        return self.lab().access()

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

    def transfer_endpoints(self, env: Environment, cloud: str | None) -> TransferEndpoints:
        """The migration's endpoints in the lab: Azurite as the source, the loopback cloud's
        Swift as the destination, both certified by the lab CA; without --gateway the shards
        run on this machine."""
        source = Source(self.root)
        return TransferEndpoints(source_url=source.endpoint, account=ACCOUNT,
                                 key=source.account_key(), source_ca=source.ca_cert,
                                 cloud=cloud or cloud_lab.CLOUD_NAME,
                                 clouds_yaml=cloud_lab.CLOUDS_YAML, gateways=(TRANSFER_HOST,),
                                 loopback=True)

    def gateway_inventory(self, env: Environment, names: Sequence[str],
                          inventory: Path | None) -> Path | None:
        """The environment's inventory of the gateway clones ``names``, as `citadelle
        inventory` writes it; None without names (the copy runs on this machine)."""
        # Imported here: the inventory renderer is a deploy stage the lab only feeds.
        from citadelle.deploy.inventory import write_inventory  # noqa: PLC0415

        if not names:
            return None
        lab = self.lab()
        live = {c.name: c for c in lab.clones() if c.role == "gateway"}
        missing = [name for name in names if name not in live]
        if missing:
            raise CitadelleError(f"--gateway {', '.join(missing)}: no running lab clone of role "
                                 "gateway by that name (citadelle lab up --clones NAME=gateway)")
        outputs = lab_outputs(env, tuple(live[name] for name in names), lab.admin_user,
                              lab.admin_group)
        out = (self.run_dir or self.root) / "transfer" / "inventory.yml"
        return write_inventory(env, outputs, self.access(env), out, target=self.name,
                               source="the gateway clones").inventory

    def gateway_url(self, url: str) -> str:
        """A loopback URL of this machine as a clone reaches it (QEMU's user-mode gateway)."""
        found = endpoint(url)
        if found["host"] not in ("127.0.0.1", "localhost"):
            raise CitadelleError(f"lab gateway: {url} is not a lab (loopback) endpoint")
        return urlsplit(url)._replace(
            netloc=f"{collector.GUEST_ADDRESS}:{found['port']}").geturl()

    def gateway_label(self, name: str) -> str:
        return f"lab clone {name}"
