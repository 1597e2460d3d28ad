"""The dedicated channel in the lab: rclone runs on the transfer gateway clone, fenced by nftables.

The gateway clone reaches the host's loopback services as 10.0.2.2 (QEMU user networking), where
the lab's source (Azurite), Keystone and Swift answer; their certificates are valid for that
address. Before a shard runs, the gateway's egress is closed to everything but those three
(BP-028 R80: only the flows the host needs): an nftables ``output`` chain with policy
drop, admitting established flows, loopback and the channel's endpoints. A connection to any
other destination is dropped by the gateway's kernel (it times out), whatever the software asks
for; the fence's counter rule counts what it drops.

The engine's credentials reach the clone on SSH's standard input only (never its command line
or a file), rclone's log comes back to the run folder, and the binary is the same hash-locked
rclone as on the host (static, copied once, checked by SHA-256).
"""

from __future__ import annotations

import hashlib
import shlex
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from citadelle.errors import CitadelleError
from citadelle.lab.collector import GUEST_ADDRESS
from citadelle.lab.core import Lab
from citadelle.lab.vm import SSHTarget
from citadelle.migrate import engine
from citadelle.migrate.context import MigrationContext

REMOTE_DIR = "citadelle-transfer"  # in the admin's home (0700), where ssh starts
TABLE = "citadelle_transfer_egress"


@dataclass(frozen=True)
class Channel:
    """The endpoints as the gateway sees them, and the ports its egress admits."""

    source_endpoint: str
    auth_url: str
    storage_url: str
    ports: tuple[int, ...]


def _guest(url: str) -> tuple[str, int]:
    """``url`` with the host's loopback replaced by the address the clone uses for it."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if parts.hostname not in ("127.0.0.1", "localhost"):
        raise CitadelleError(f"lab gateway: {url} is not a lab (loopback) endpoint")
    return parts._replace(netloc=f"{GUEST_ADDRESS}:{port}").geturl(), port


def channel(ctx: MigrationContext) -> Channel:
    source, source_port = _guest(ctx.source.url)
    auth, auth_port = _guest(ctx.destination.auth_url)
    storage, storage_port = _guest(ctx.destination.storage_url)
    return Channel(source, auth, storage, tuple(sorted({source_port, auth_port, storage_port})))


def egress_ruleset(ports: Iterable[int]) -> str:
    """The gateway's egress: the channel's endpoints and nothing else (idempotent: the table is
    replaced as a whole)."""
    allowed = ", ".join(str(p) for p in sorted(set(ports)))
    return "\n".join([
        f"table inet {TABLE}",
        f"delete table inet {TABLE}",
        f"table inet {TABLE} {{",
        "  chain output {",
        "    type filter hook output priority filter; policy drop;",
        "    ct state established,related accept",
        '    oif "lo" accept',
        f"    ip daddr {GUEST_ADDRESS} tcp dport {{ {allowed} }} accept",
        '    counter comment "egress outside the transfer channel"',
        "  }",
        "}",
        "",
    ])


class Gateway:
    """One lab clone acting as the transfer gateway."""

    def __init__(self, lab: Lab, name: str) -> None:
        self.lab, self.name = lab, name
        self.target: SSHTarget = lab.target(name)

    def _ssh(self, remote: str, stdin: bytes | None = None,
             timeout: float = 600) -> subprocess.CompletedProcess[bytes]:
        try:
            return subprocess.run(self.target.command(remote), input=stdin,
                                  capture_output=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise CitadelleError(f"lab gateway {self.name}: {remote!r} timed out") from None

    def _root(self, script: str) -> subprocess.CompletedProcess[str]:
        password = self.lab.credentials().password
        result = self._ssh("sudo -S -p '' sh -s", f"{password}\n{script}".encode())
        return subprocess.CompletedProcess(result.args, result.returncode,
                                           result.stdout.decode(errors="replace"),
                                           result.stderr.decode(errors="replace"))

    def close_egress(self, ports: Iterable[int]) -> None:
        script = f"nft -f - <<'EOF'\n{egress_ruleset(ports)}EOF\n"
        proc = self._root(script)
        if proc.returncode != 0:
            raise CitadelleError(f"lab gateway {self.name}: nftables egress not applied: "
                                 f"{proc.stderr.strip()[-300:]}")

    def ruleset(self) -> str:
        return self._root(f"nft list table inet {TABLE}").stdout

    def install(self, files: Mapping[str, Path]) -> None:
        """Copy files (remote name -> local path) unless the same bytes are there already."""
        self._ssh(f"mkdir -p {REMOTE_DIR} && chmod 0700 {REMOTE_DIR}")
        for remote, local in files.items():
            data = local.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            path = f"{REMOTE_DIR}/{remote}"
            check = self._ssh(f"sha256sum {shlex.quote(path)} 2>/dev/null")
            if check.stdout.decode().split(" ", 1)[0] == digest:
                continue
            proc = self._ssh(f"cat > {shlex.quote(path)}.tmp && chmod 0700 "
                             f"{shlex.quote(path)}.tmp && mv {shlex.quote(path)}.tmp "
                             f"{shlex.quote(path)}", stdin=data)
            if proc.returncode != 0:
                raise CitadelleError(f"lab gateway {self.name}: copying {remote} failed: "
                                     f"{proc.stderr.decode(errors='replace').strip()}")

    def run_rclone(self, args: list[str], env: Mapping[str, str]) -> tuple[int, str]:
        """Run rclone on the clone; the environment (credentials) goes through stdin."""
        exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())
        command = " ".join(shlex.quote(a) for a in [f"{REMOTE_DIR}/rclone", *args])
        proc = self._ssh("sh -s", f"{exports}exec {command}\n".encode(), timeout=3600)
        return proc.returncode, proc.stderr.decode(errors="replace")

    def fetch(self, remote: str, local: Path) -> None:
        proc = self._ssh(f"cat {shlex.quote(f'{REMOTE_DIR}/{remote}')}")
        local.write_bytes(proc.stdout)


def run_shard(gateway: Gateway, ctx: MigrationContext, container: str, files_from: Path,
              log: Path, *, ca_file: Path) -> engine.ShardResult:
    """One shard on the gateway: egress closed, files installed, rclone run, log fetched."""
    chan = channel(ctx)
    gateway.close_egress(chan.ports)
    gateway.install({"rclone": engine.rclone_binary(), "ca.crt": ca_file,
                     files_from.name: files_from})
    remote_log = f"{log.name}"
    args = engine.copy_args(ctx, container, Path(f"{REMOTE_DIR}/{files_from.name}"),
                            Path(f"{REMOTE_DIR}/{remote_log}"), [Path(f"{REMOTE_DIR}/ca.crt")])
    env = engine.remote_env(ctx, source_endpoint=chan.source_endpoint, auth_url=chan.auth_url,
                            storage_url=chan.storage_url)
    gateway._ssh(f"rm -f {shlex.quote(f'{REMOTE_DIR}/{remote_log}')}")
    returncode, stderr = gateway.run_rclone(args, env)
    gateway.fetch(remote_log, log)
    if stderr.strip():
        (log.parent / f"{log.stem}.stderr").write_text(stderr)
    stats = engine.stats_of(log)
    return engine.ShardResult(log.stem, returncode, int(stats.get("transfers", 0)),
                              int(stats.get("bytes", 0)), int(stats.get("errors", 0)), log)
