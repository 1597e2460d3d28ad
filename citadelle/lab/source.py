"""The migration source in the lab: Azurite, the Azure Blob API, over HTTPS on 127.0.0.1.

Azurite (npm ``azurite``, pinned with its integrity in package-lock.json) stands in for the
Azure storage account holding the SNDS copy. It serves one account whose key is generated on
first use and kept 0600 under ``.lab/source`` (never the emulator's well-known key), with a
server certificate of the lab CA valid for 127.0.0.1 and 10.0.2.2 (how the transfer gateway
clone reaches the host). Started and stopped by PID, like every lab process. Its blob metadata
is in Azurite's default store (LokiJS, ``source/data``) or, with ``store="sql"``, in a private
MariaDB (``source/sql``, see ``sourcedb``) for datasets of 100,000 objects and more.

Azurite's behaviour mirrors Azure's where the migration cares: Content-MD5 is kept for blobs
uploaded in one Put Blob and absent for blobs committed from blocks (Put Block List), so large
blobs can only be verified by reading them.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import ssl
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from citadelle.errors import CitadelleError
from citadelle.files import private_dir, write_file
from citadelle.lab import synthetic
from citadelle.lab.collector import Collector
from citadelle.lab.sourcedb import MetadataDatabase
from citadelle.lab.supervisor import await_ready, launch, recorded, stop_recorded
from citadelle.paths import LAB_DIR, REPO_ROOT

HOST = "127.0.0.1"
# Another checkout's lab on the same machine may hold the default port.
PORT = int(os.environ.get("CITADELLE_LAB_SOURCE_PORT", "17443"))
ACCOUNT = "sndslab"
AZURITE = REPO_ROOT / "node_modules" / ".bin" / "azurite-blob"
INSTALL_HINT = "run scripts/install (npm ci installs the pinned Azurite)"
DEFAULT_CONTAINER = "snds"
DEFAULT_BYTES = 1 << 30
DEFAULT_OBJECTS = 5000
# Large blobs go up in blocks of at most this size, at least MIN_BLOCKS of them.
MAX_BLOCK = 4 << 20
MIN_BLOCKS = 4
# Azurite's metadata stores: its default (LokiJS, a scan per request) and its SQL one.
STORES = ("loki", "sql")


@dataclass(frozen=True)
class SeedResult:
    container: str
    objects: int
    bytes: int
    block_blobs: int
    seconds: float


class Source:
    """Azurite's process, account and certificate under ``<lab root>/source``."""

    def __init__(self, root: Path = LAB_DIR) -> None:
        # Resolved: the PID marker is a path, and a lab reached through a link is the same lab.
        self.root = root.resolve()
        self.directory = self.root / "source"
        self.data = self.directory / "data"
        self.database = MetadataDatabase(self.directory / "sql")
        self.store_file = self.directory / "store"
        self.pid_file = self.directory / "azurite.pid"
        self.log = self.directory / "azurite.log"
        self.account_file = self.directory / "account.json"

    @property
    def endpoint(self) -> str:
        """The account's blob endpoint, as an ``https://<account>.blob.core.windows.net``."""
        return f"https://{HOST}:{PORT}/{ACCOUNT}"

    @property
    def ca_cert(self) -> Path:
        return Collector(self.root).ca_cert

    def store(self) -> str:
        """The metadata store Azurite was last started with (``loki`` unless told)."""
        try:
            recorded = self.store_file.read_text().strip()
        except FileNotFoundError:
            return "loki"
        return recorded if recorded in STORES else "loki"

    def _location(self, store: str) -> Path:
        # Each store keeps its own blobs: metadata in one store, extents in the other would
        # not be the same account.
        return self.data if store == "loki" else self.database.directory / "extents"

    def _marker(self) -> str:
        return str(self._location(self.store()))

    def account_key(self) -> str:
        """The account key, generated once (512 random bits, base64 as Azure's)."""
        private_dir(self.directory)
        if not self.account_file.is_file():
            key = base64.b64encode(secrets.token_bytes(64)).decode()
            write_file(self.account_file, json.dumps({"account": ACCOUNT, "key": key}), 0o600)
        data: dict[str, str] = json.loads(self.account_file.read_text())
        return data["key"]

    def pid(self) -> int | None:
        return recorded(self.pid_file, self._marker())

    def running(self) -> bool:
        return self.pid() is not None

    def up(self, timeout: float = 60.0, store: str | None = None) -> int:
        """Start Azurite unless it runs; return its PID once it answers over TLS.

        ``store`` (``loki`` or ``sql``) picks the metadata store; None keeps the running one,
        else the last one used. Asking for another store than the running one is refused.
        """
        if store is not None and store not in STORES:
            raise CitadelleError(f"lab source: store {store!r} is not one of "
                                 f"{', '.join(STORES)}")
        pid = self.pid()
        if pid is not None:
            if store is not None and store != self.store():
                raise CitadelleError(f"lab source runs with the {self.store()} metadata store; "
                                     f"run `citadelle lab source down` before starting it "
                                     f"with the {store} one")
            return pid
        store = store or self.store()
        if not AZURITE.exists():
            raise CitadelleError(f"lab source: {AZURITE} not found; {INSTALL_HINT}")
        if self._answers():
            raise CitadelleError(f"lab source: {HOST}:{PORT} is taken by another process")
        key = self.account_key()
        cert, cert_key = Collector(self.root).server_certificate("azurite")
        location = self._location(store)
        location.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "AZURITE_ACCOUNTS": f"{ACCOUNT}:{key}"}
        env.pop("AZURITE_DB", None)
        if store == "sql":
            self.database.up()
            env["AZURITE_DB"] = self.database.url
        write_file(self.store_file, f"{store}\n", 0o600)
        args = [str(AZURITE), "--blobHost", HOST, "--blobPort", str(PORT),
                "--location", str(location), "--cert", str(cert), "--key", str(cert_key),
                # Clients (the SDK, rclone 1.75) speak newer API versions than Azurite knows.
                "--skipApiVersionCheck", "--loose", "--disableTelemetry"]
        pid = launch(args, self.log, self.pid_file, env=env)
        await_ready(pid, self._marker(), self._answers, what=f"lab source: Azurite on "
                    f"{self.endpoint}", log=self.log, timeout=timeout)
        return pid

    def down(self) -> bool:
        azurite = stop_recorded(self.pid_file, self._marker(), what="azurite")
        # After Azurite, which holds connections to it.
        database = self.database.down()
        return azurite or database

    def _answers(self) -> bool:
        context = ssl.create_default_context(cafile=str(self.ca_cert)) \
            if self.ca_cert.is_file() else ssl._create_unverified_context()  # noqa: S323
        try:
            urllib.request.urlopen(f"https://{HOST}:{PORT}/", timeout=1, context=context)
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False
        return True

    # -- data ------------------------------------------------------------------------------

    def client(self) -> Any:
        """An azure-storage-blob service client for the lab account, TLS checked with the CA."""
        # Imported here: the Azure SDK costs half a second other commands should not pay.
        from azure.storage.blob import BlobServiceClient  # noqa: PLC0415

        if not self.running():
            raise CitadelleError("lab source is not running: run `citadelle lab source up`")
        return BlobServiceClient(
            account_url=self.endpoint,
            credential={"account_name": ACCOUNT, "account_key": self.account_key()},
            connection_verify=str(self.ca_cert),
        )

    def seed(self, container: str = DEFAULT_CONTAINER, total_bytes: int = DEFAULT_BYTES,
             objects: int = DEFAULT_OBJECTS, seed: int = 1, workers: int = 4) -> SeedResult:
        """Write the synthetic dataset into ``container`` (created if missing); idempotent for
        a given seed: the same names get the same bytes."""
        from azure.core.exceptions import ResourceExistsError  # noqa: PLC0415

        started = time.monotonic()
        specs = synthetic.plan_dataset(total_bytes, objects, seed)
        service = self.client()
        client = service.get_container_client(container)
        with contextlib.suppress(ResourceExistsError):
            client.create_container()

        def upload(spec: synthetic.ObjectSpec) -> int:
            data = synthetic.render(spec)
            blob = client.get_blob_client(spec.name)
            if spec.large:
                count = max(MIN_BLOCKS, -(-len(data) // MAX_BLOCK))
                size = -(-len(data) // count)
                ids = []
                for index in range(count):
                    block_id = base64.b64encode(f"{index:08d}".encode()).decode()
                    blob.stage_block(block_id, data[index * size : (index + 1) * size])
                    ids.append(block_id)
                blob.commit_block_list(ids)
            else:
                blob.upload_blob(data, overwrite=True)
            return len(data)

        with ThreadPoolExecutor(max_workers=workers) as pool:
            sizes = list(pool.map(upload, specs))
        return SeedResult(container, len(specs), sum(sizes), sum(s.large for s in specs),
                          time.monotonic() - started)


def parse_size(text: str) -> int:
    """``1GiB``, ``200MiB``, ``5000000`` to bytes."""
    units = {"KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30, "TIB": 1 << 40, "B": 1}
    upper = text.strip().upper()
    unit = next((u for u in units if upper.endswith(u)), "")
    number, factor = upper[: len(upper) - len(unit)], units.get(unit, 1)
    try:
        value = int(float(number) * factor)
    except ValueError:
        raise CitadelleError(f"size {text!r}: expected e.g. 1GiB, 200MiB or a byte count") \
            from None
    if value <= 0:
        raise CitadelleError(f"size {text!r}: must be positive")
    return value

