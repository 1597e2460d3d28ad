"""Journal forwarding delivered end to end (BP-028 R71; SecNumCloud 12.7 and 10.2).

The session's hardened clones (tests/conftest.py) upload their journal to the lab's collector
(citadelle.lab.collector) over mutual TLS: an entry logged on each clone must arrive, each
clone must have presented its own certificate, and the collector must refuse a client with no
certificate or one from another CA (while accepting the lab's, so the refusals can fail).
"""

from __future__ import annotations

import datetime
import secrets
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from citadelle.lab.collector import PORT, Collector

# The clones of the session converge: HARDENED_CLONES in tests/conftest.py.
HOSTS = ["bastion", "gw", "node1"]
# The upload retries every 30 s (the role's RestartSec) while the collector is unreachable.
DELIVERY_TIMEOUT_S = 150.0
REQUEST = b"POST /upload HTTP/1.1\r\nHost: collector\r\nContent-Length: 0\r\n\r\n"


def _wait_for(collector: Collector, *matches: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + DELIVERY_TIMEOUT_S
    while True:
        entries = collector.entries(*matches)
        if entries or time.monotonic() > deadline:
            return entries
        time.sleep(2)


@pytest.mark.vm
@pytest.mark.timeout(1800)
@pytest.mark.snc("12.7")
@pytest.mark.bp028("R71")
@pytest.mark.parametrize("host", HOSTS)
def test_an_entry_logged_on_the_clone_reaches_the_collector(hardened_converge: Any,
                                                            log_collector: Collector,
                                                            host: str) -> None:
    token = f"citadelle-probe-{secrets.token_hex(8)}"
    proc = hardened_converge.lab.ssh(host, f"logger -t citadelle-probe {token}", timeout=120)
    assert proc.returncode == 0, proc.stderr
    received = _wait_for(log_collector, "SYSLOG_IDENTIFIER=citadelle-probe", f"MESSAGE={token}")
    assert [entry["_HOSTNAME"] for entry in received] == [host]


@pytest.mark.vm
@pytest.mark.timeout(1800)
@pytest.mark.snc("10.2", "12.7")
@pytest.mark.bp028("R71")
def test_each_clone_presented_its_own_certificate(hardened_converge: Any,
                                                  log_collector: Collector) -> None:
    for host in HOSTS:  # the entries above prove delivery; wait for each clone's first upload
        _wait_for(log_collector, f"_HOSTNAME={host}")
    assert set(HOSTS) <= log_collector.accepted_clients()


def _reply(context: ssl.SSLContext) -> bytes:
    """The collector's first bytes to an upload over ``context``; b"" when refused."""
    with socket.create_connection(("127.0.0.1", PORT), timeout=10) as raw:
        try:
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.sendall(REQUEST)
                return tls.recv(64)
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
            return b""


def _client_context(collector: Collector) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(collector.ca_cert))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _lab_client_context(collector: Collector) -> ssl.SSLContext:
    """A client presenting a certificate of the lab CA (not a clone's)."""
    collector.issue(["tls-probe"])
    context = _client_context(collector)
    context.load_cert_chain(collector.client_cert("tls-probe"), collector.client_key("tls-probe"))
    return context


def _foreign_identity(directory: Path) -> tuple[Path, Path]:
    """A self-signed client certificate: right shape, wrong CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "node1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    key_path, cert_path = directory / "foreign.key", directory / "foreign.crt"
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


@pytest.mark.snc("10.2", "12.7")
@pytest.mark.bp028("R71")
def test_the_collector_answers_a_client_of_the_lab_ca(log_collector: Collector) -> None:
    context = _lab_client_context(log_collector)
    assert _reply(context).startswith(b"HTTP/1.1 ")


@pytest.mark.snc("10.2", "12.7")
@pytest.mark.bp028("R71")
def test_the_collector_refuses_a_client_without_certificate(log_collector: Collector) -> None:
    assert _reply(_client_context(log_collector)) == b""


@pytest.mark.snc("10.2", "12.7")
@pytest.mark.bp028("R71")
def test_the_collector_refuses_a_certificate_of_another_ca(log_collector: Collector,
                                                           tmp_path: Path) -> None:
    context = _client_context(log_collector)
    context.load_cert_chain(*_foreign_identity(tmp_path))
    assert _reply(context) == b""


@pytest.mark.snc("10.2")
@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1])
def test_the_collector_refuses_tls_before_1_2(log_collector: Collector,
                                              version: ssl.TLSVersion) -> None:
    context = _lab_client_context(log_collector)
    context.minimum_version = context.maximum_version = version
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    refusals = log_collector.tls_log.read_text().count("unsupported protocol")
    assert _reply(context) == b""
    # The client did offer the old version (so the refusal is the collector's).
    assert log_collector.tls_log.read_text().count("unsupported protocol") == refusals + 1


def test_status_command_lists_what_the_collector_accepted(log_collector: Collector) -> None:
    context = _lab_client_context(log_collector)
    assert _reply(context).startswith(b"HTTP/1.1 ")
    proc = subprocess.run([sys.executable, "-m", "citadelle", "lab", "collector", "status"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].startswith("collector: up, systemd-journal-remote pid ")
    accepted = proc.stdout.splitlines()[1].removeprefix("client certificates accepted: ")
    assert "tls-probe" in accepted.split(", ")
