"""Azurite's SQL metadata store in the lab: a private MariaDB (Debian's ``mariadb-server``).

Azurite's default store (LokiJS) looks each blob up by scanning the account, so every request
costs time in proportion to the blobs stored (docs/migration.md, "Why the lab cannot hold
100,000 objects"). Azurite's supported SQL store keeps the blobs in a table with a unique index
on account, container, name and snapshot: `citadelle lab source up --store sql` runs Azurite on
it to hold the issue-sized datasets. The database listens on a Unix socket only (no TCP port)
in a 0700 directory and Azurite signs in as the operating-system user through ``unix_socket``
authentication, so there is no password to keep.
"""

from __future__ import annotations

import getpass
import shutil
import subprocess
from pathlib import Path
from urllib.parse import quote

from citadelle.errors import CitadelleError
from citadelle.files import private_dir
from citadelle.lab.supervisor import await_ready, launch, recorded, stop_recorded
from citadelle.sockets import UNIX_PATH_MAX, socket_dir

DATABASE = "azurite_blob"
SOCKET_NAME = "mariadb.sock"
INSTALL_HINT = "run scripts/install (Debian's mariadb-server)"


class MetadataDatabase:
    """The MariaDB server holding Azurite's blob metadata, under ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.datadir = directory / "db"
        self.pid_file = directory / "mariadb.pid"
        self.log = directory / "mariadb.log"
        # The checkout may sit deep enough that the socket would not fit sun_path there.
        self.socket = socket_dir(directory, UNIX_PATH_MAX - len(SOCKET_NAME) - 1) / SOCKET_NAME

    @property
    def url(self) -> str:
        """Azurite's ``AZURITE_DB``: Sequelize's MySQL dialect, mysql2 over the socket."""
        return (f"mysql://{getpass.getuser()}@localhost/{DATABASE}"
                f"?socketPath={quote(str(self.socket), safe='/')}")

    def _marker(self) -> str:
        return str(self.datadir)

    def pid(self) -> int | None:
        return recorded(self.pid_file, self._marker())

    def up(self, timeout: float = 60.0) -> int:
        """Initialise the data directory once, start the server unless it runs, create the
        database; return the server's PID once it answers."""
        pid = self.pid()
        if pid is not None:
            return pid
        server, installer, client = (_binary(name) for name in
                                     ("mariadbd", "mariadb-install-db", "mariadb"))
        private_dir(self.directory)
        private_dir(self.socket.parent)
        user = getpass.getuser()
        if not (self.datadir / "mysql").is_dir():
            # The operating-system user gets the only socket-authenticated administrator.
            _run([installer, "--no-defaults", f"--datadir={self.datadir}", f"--user={user}",
                  "--auth-root-authentication-method=socket", f"--auth-root-socket-user={user}",
                  "--skip-test-db"], "initialise its data directory")
        pid = launch([server, "--no-defaults", f"--datadir={self.datadir}", f"--user={user}",
                      f"--socket={self.socket}", "--skip-networking",
                      f"--pid-file={self.directory / 'mariadbd.pid'}",
                      f"--log-error={self.log}"], self.log, self.pid_file)
        await_ready(pid, self._marker(),
                    lambda: self._sql(client, f"CREATE DATABASE IF NOT EXISTS {DATABASE}"),
                    what=f"lab source: MariaDB on {self.socket}", log=self.log, timeout=timeout,
                    interval=0.3)
        return pid

    def down(self) -> bool:
        # InnoDB flushes on SIGTERM; a large buffer pool can take a while.
        return stop_recorded(self.pid_file, self._marker(), what="mariadb", grace=30.0)

    def _sql(self, client: str, statement: str) -> bool:
        if not self.socket.exists():
            return False
        proc = subprocess.run([client, "--no-defaults", f"--socket={self.socket}",
                               "--execute", statement], capture_output=True, text=True,
                              check=False, timeout=30)
        return proc.returncode == 0


def _binary(name: str) -> str:
    found = shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")
    if found is None:
        raise CitadelleError(f"lab source: {name} not found; {INSTALL_HINT}")
    return found


def _run(args: list[str], what: str) -> None:
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = " / ".join((proc.stdout + proc.stderr).strip().splitlines()[-3:])
        raise CitadelleError(f"lab source: MariaDB could not {what}: {tail}")
