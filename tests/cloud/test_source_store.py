"""The lab source on Azurite's SQL metadata store: a private MariaDB on a Unix socket.

What the 100,000-object delta benchmark needs from it (docs/migration.md): the blobs' metadata
is in the database (not in Azurite's scanning store), the listing the sync reads is complete,
the freeze's stored access policies work as on the default store, and the store survives a
restart. Real processes: Debian's mariadbd and the pinned Azurite.
"""

from __future__ import annotations

import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import ContainerClient

from citadelle.errors import CitadelleError
from citadelle.lab.source import ACCOUNT, Source
from citadelle.lab.sourcedb import DATABASE
from citadelle.migrate import freeze, inventory
from citadelle.migrate.context import SourceAccess

pytestmark = [pytest.mark.cloud, pytest.mark.snc("19.1"), pytest.mark.timeout(300)]

OBJECTS = 30
CONTAINER = "snds"


def sql(src: Source, statement: str) -> str:
    proc = subprocess.run(["mariadb", "--no-defaults", f"--socket={src.database.socket}",
                           "--batch", "--skip-column-names", DATABASE, "--execute", statement],
                          capture_output=True, text=True, check=True, timeout=30)
    return proc.stdout.strip()


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Source]:
    src = Source(tmp_path_factory.mktemp("lab-sql"))
    src.up(store="sql")
    result = src.seed(CONTAINER, total_bytes=1 << 20, objects=OBJECTS, seed=3)
    assert result.objects == OBJECTS
    yield src
    src.down()


def access(src: Source) -> SourceAccess:
    return SourceAccess(url=src.endpoint, account=ACCOUNT, key=src.account_key(),
                        containers=(CONTAINER,), ca_file=src.ca_cert)


def test_the_blobs_metadata_is_in_the_database(source: Source) -> None:
    assert source.store() == "sql"
    rows = sql(source, f"SELECT COUNT(*) FROM Blobs WHERE accountName = '{ACCOUNT}' "
               f"AND containerName = '{CONTAINER}' AND deleting = 0")
    assert int(rows) == OBJECTS
    # The lookup Azurite makes per request is served by this index, not by a scan.
    index = sql(source, "SELECT GROUP_CONCAT(COLUMN_NAME ORDER BY SEQ_IN_INDEX) FROM "
                f"information_schema.STATISTICS WHERE TABLE_SCHEMA = '{DATABASE}' AND "
                "TABLE_NAME = 'Blobs' AND NON_UNIQUE = 0 AND INDEX_NAME <> 'PRIMARY'")
    assert index.startswith("accountName,containerName,blobName,snapshot")


def test_the_database_has_no_network_listener(source: Source) -> None:
    assert sql(source, "SELECT @@skip_networking") == "1"
    # The socket is reachable only by the lab's user: its directory is private.
    assert stat.S_IMODE(source.database.socket.parent.stat().st_mode) == 0o700


def test_the_sync_listing_sees_every_blob(source: Source) -> None:
    listed = inventory.list_source(access(source), [CONTAINER], page_size=7)
    names = {blob.name for blob in source.client().get_container_client(CONTAINER).list_blobs()}
    assert len(names) == OBJECTS
    assert {container for container, _ in listed} == {CONTAINER}
    assert {blob.name for _, blob in listed} == names
    assert all(blob.etag for _, blob in listed)


def test_the_freeze_refuses_writes_on_the_sql_store(source: Source) -> None:
    src = access(source)
    freeze.set_writable(src, CONTAINER, writable=True)
    writer = ContainerClient.from_container_url(freeze.sas_url(src, CONTAINER,
                                                               freeze.WRITE_POLICY),
                                                connection_verify=str(source.ca_cert),
                                                retry_total=0)
    writer.upload_blob("writer/0", b"before the freeze", overwrite=True)
    freeze.set_writable(src, CONTAINER, writable=False)
    assert freeze.policy_ids(src, CONTAINER) == {freeze.READ_POLICY}
    proof = freeze.prove_frozen(src, CONTAINER, budget=30)
    assert proof.status == 403
    with pytest.raises(HttpResponseError) as refused:
        writer.upload_blob("writer/1", b"during the freeze", overwrite=True)
    assert refused.value.status_code == 403


def test_another_store_is_refused_while_running(source: Source) -> None:
    with pytest.raises(CitadelleError, match="runs with the sql metadata store"):
        source.up(store="loki")
    with pytest.raises(CitadelleError, match="not one of loki, sql"):
        source.up(store="mongo")


def test_the_store_and_its_data_survive_a_restart(source: Source) -> None:
    before = {b.name: b.etag for b in source.client().get_container_client(CONTAINER)
              .list_blobs()}
    assert source.down() is True
    assert source.pid() is None and source.database.pid() is None
    source.up()  # no store named: the one used last
    assert source.store() == "sql" and source.database.pid() is not None
    after = {b.name: b.etag for b in source.client().get_container_client(CONTAINER)
             .list_blobs()}
    assert after == before


def test_the_socket_fits_sun_path_from_a_deep_lab_dir(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    socket = Source(deep).database.socket
    assert len(str(socket)) < 108 and not str(socket).startswith(str(deep))
