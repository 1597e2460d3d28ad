"""The transfer fanned out to the gateways: one rclone per gateway, driven by Ansible.

``citadelle migrate copy`` hands each gateway its shards through ``playbooks/transfer.yml``
(ansible-runner): the gateway fences its egress to the channel (the source, Keystone, Swift),
its resolvers and the platform's time and log services (BP-028 R80, SecNumCloud 13.2), gets the
hash-locked rclone (checked there by SHA-256), the CA certificates and its shard lists, runs its
shards, and the JSON logs and exit codes come back to the copy's run folder. The engine's
credentials travel in the environment of the Ansible process only (the run folder never keeps
it, ``citadelle.deploy.harden.run_playbook``) and the task that uses them is ``no_log``.

The same play serves the lab, where the gateway is a clone that sees the host's loopback
services at another address (``view``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from citadelle import paths
from citadelle.deploy.harden import run_playbook
from citadelle.errors import CitadelleError
from citadelle.migrate import engine
from citadelle.migrate.context import MigrationContext

PLAYBOOK = paths.PLAYBOOKS_DIR / "transfer.yml"
# The controller's environment variable the play reads the engine's remotes from.
ENGINE_ENV = "CITADELLE_TRANSFER_ENV"
NTP_PORT = 123


@dataclass(frozen=True)
class Job:
    """One rclone copy: the objects of one container in one shard, on one gateway."""

    label: str
    gateway: str
    container: str
    files_from: Path  # the object names, in the copy's run folder

    @property
    def log(self) -> Path:
        """rclone's JSON log of the job, beside its object names."""
        return self.files_from.with_name(f"{self.label}.log")


@dataclass(frozen=True)
class Gateways:
    """Where the shards run: the inventory's gateways, the platform services they keep
    (``platform_egress``), how they see the endpoints (a lab clone sees this machine's loopback
    elsewhere) and how the evidence names them."""

    inventory: Path
    names: list[str]
    platform_egress: list[dict[str, Any]]
    view: Callable[[str], str] = str
    label: Callable[[str], str] = str


def endpoint(url: str) -> dict[str, Any]:
    """The host, port (the scheme's when none is given) and protocol ``url`` connects to."""
    parts = urlsplit(url)
    if not parts.hostname:
        raise CitadelleError(f"transfer channel: {url!r} has no host")
    return {"host": parts.hostname, "port": parts.port or (443 if parts.scheme == "https" else 80),
            "proto": "tcp"}


def channel_egress(urls: Iterable[str]) -> list[dict[str, Any]]:
    """The channel's endpoints (host, port, proto) the gateway's fence admits."""
    found = {(e["host"], e["port"]): e for e in map(endpoint, urls)}
    return [found[k] for k in sorted(found)]


def platform_egress(role_vars: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The platform's services a gateway keeps during the transfer, as the roles name them: its
    NTP servers and the log collector its journal goes to (SecNumCloud 12.7, 12.8), and its
    package mirrors, so security updates (BP-028 R61) go on while the fence stays up."""
    found = [{"host": str(h), "port": NTP_PORT, "proto": "udp"}
             for h in role_vars.get("bp028_time_ntp_servers") or []]
    urls = [role_vars.get(key) for key in ("bp028_audit_forward_url", "bp028_packages_mirror_url",
                                           "bp028_packages_security_mirror_url")]
    found += channel_egress(str(url) for url in urls if url)
    return found


def fan_out(ctx: MigrationContext, jobs: Sequence[Job], gateways: Gateways, cas: Sequence[Path],
            run: Path) -> list[engine.ShardResult]:
    """Run ``jobs`` on their gateways; one result per job, its log in ``run``."""
    source, auth, storage = (gateways.view(u) for u in (ctx.source.url, ctx.destination.auth_url,
                                                ctx.destination.storage_url))
    remote_cas = [f"ca-{index}.crt" for index in range(len(cas))]
    by_host: dict[str, list[dict[str, Any]]] = {}
    for job in jobs:
        args = engine.copy_args(ctx, job.container, Path(job.files_from.name),
                                Path(job.log.name), [Path(c) for c in remote_cas])
        by_host.setdefault(job.gateway, []).append(
            {"label": job.label, "files_from": str(job.files_from), "args": args})
    binary = engine.rclone_binary()
    extravars = {
        "citadelle_transfer_jobs": by_host,
        "citadelle_transfer_egress": channel_egress([source, auth, storage]),
        "citadelle_transfer_platform_egress": gateways.platform_egress,
        "citadelle_transfer_rclone": str(binary),
        "citadelle_transfer_rclone_sha256": hashlib.sha256(binary.read_bytes()).hexdigest(),
        "citadelle_transfer_ca_files": [{"src": str(c), "dest": r}
                                        for c, r in zip(cas, remote_cas, strict=True)],
        "citadelle_transfer_results_dir": str(run.resolve()),
    }
    remotes = engine.remote_env(ctx, source_endpoint=source, auth_url=auth, storage_url=storage)
    result = run_playbook(PLAYBOOK, gateways.inventory, limit=",".join(sorted(by_host)),
                          extravars=extravars, run_dir=run / "ansible",
                          envvars={ENGINE_ENV: json.dumps(remotes)})
    if not result.ok:
        raise CitadelleError("transfer on the gateways failed before the engine's results came "
                             f"back:\n{result.summary()}")
    return [_result(job, run) for job in jobs]


def _result(job: Job, run: Path) -> engine.ShardResult:
    record = run / f"{job.label}.result.json"
    if not record.is_file():
        raise CitadelleError(f"transfer: {job.gateway} returned no result for {job.label}")
    data = json.loads(record.read_text(encoding="utf-8"))
    record.unlink()
    if data["stderr"].strip():
        (run / f"{job.label}.stderr").write_text(data["stderr"], encoding="utf-8")
    stats = engine.stats_of(job.log)
    return engine.ShardResult(job.label, int(data["returncode"]), int(stats.get("transfers", 0)),
                              int(stats.get("bytes", 0)), int(stats.get("errors", 0)), job.log)
