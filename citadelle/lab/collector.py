"""The lab's log collector: systemd-journal-remote behind mutual TLS, on the host's loopback.

A clone reaches the host's 127.0.0.1 as 10.0.2.2 (QEMU user-mode networking), so the journal
upload that bp028_audit configures (BP-028 R71, SecNumCloud 12.7) delivers to a real collector
in the lab, as it does to the environment's collector in a real deployment.

Debian builds systemd-journal-remote without GnuTLS (no ``--trust``: it cannot check client
certificates), so stunnel terminates TLS in front of it: TLS 1.2 or later, a client certificate
signed by the lab CA required, and each accepted certificate logged. journal-remote itself
listens on loopback only, over plain HTTP, where only stunnel reaches it.

The lab's PKI lives under ``.lab/collector/pki`` (0700, never committed): a CA, the collector's
certificate for 10.0.2.2 and 127.0.0.1, and one client certificate per clone whose common name
is the clone's name.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import re
import socket
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from citadelle.errors import CitadelleError
from citadelle.files import private_dir, write_file
from citadelle.lab.supervisor import launch, log_tail, recorded, stop_recorded
from citadelle.paths import LAB_DIR

JOURNAL_REMOTE = Path("/lib/systemd/systemd-journal-remote")
STUNNEL = Path("/usr/bin/stunnel4")
JOURNALCTL = Path("/usr/bin/journalctl")
PORT = 19532  # systemd-journal-remote's registered https port, what the clones upload to
LISTEN = f"127.0.0.1:{PORT}"
BACKEND = f"127.0.0.1:{PORT + 1}"
GUEST_ADDRESS = "10.0.2.2"  # the host's loopback as a clone sees it
GUEST_CA_FILE = "/etc/ssl/certs/citadelle-lab-log-ca.pem"
HOST_TEMPLATE = "{{ inventory_hostname }}"  # Ansible renders it per host: each clone's own files
CA_VALIDITY = datetime.timedelta(days=365)
LEAF_VALIDITY = datetime.timedelta(days=90)
# Clones restored from the golden snapshot reset their clock on resume; tolerate small skews.
CLOCK_SKEW = datetime.timedelta(hours=1)
RENEW_BEFORE = datetime.timedelta(days=7)
INSTALL_HINT = "install Debian's systemd-journal-remote and stunnel4 (scripts/install does)"


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    write_file(path, key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()).decode(), 0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    write_file(path, cert.public_bytes(serialization.Encoding.PEM).decode())


def _still_valid(cert_path: Path) -> bool:
    if not cert_path.is_file():
        return False
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    return cert.not_valid_after_utc - RENEW_BEFORE > _now()


class Collector:
    """The lab's collector process and PKI under ``<lab root>/collector``."""

    def __init__(self, root: Path = LAB_DIR) -> None:
        # Resolved: the PID markers are paths, and a lab reached through a link is the same lab.
        self.directory = root.resolve() / "collector"
        self.pki = self.directory / "pki"
        self.journal_dir = self.directory / "journal"
        self.pid_file = self.directory / "collector.pid"
        self.log = self.directory / "collector.log"

    # -- PKI ---------------------------------------------------------------------------------

    @property
    def ca_cert(self) -> Path:
        return self.pki / "ca.crt"

    def client_key(self, name: str) -> Path:
        return self.pki / f"{name}.key"

    def client_cert(self, name: str) -> Path:
        return self.pki / f"{name}.crt"

    def _ca(self) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        """The lab CA, created (with a fresh collector certificate) when missing or expiring."""
        private_dir(self.directory)
        private_dir(self.pki)
        key_path = self.pki / "ca.key"
        if not (key_path.is_file() and _still_valid(self.ca_cert)):
            key = ec.generate_private_key(ec.SECP256R1())
            name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Citadelle lab"),
                              x509.NameAttribute(NameOID.COMMON_NAME, "Citadelle lab log CA")])
            cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                    .public_key(key.public_key()).serial_number(x509.random_serial_number())
                    .not_valid_before(_now() - CLOCK_SKEW).not_valid_after(_now() + CA_VALIDITY)
                    .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                    .add_extension(x509.KeyUsage(
                        digital_signature=False, content_commitment=False,
                        key_encipherment=False, data_encipherment=False, key_agreement=False,
                        key_cert_sign=True, crl_sign=True, encipher_only=False,
                        decipher_only=False), critical=True)
                    .sign(key, hashes.SHA256()))
            _write_key(key_path, key)
            _write_cert(self.ca_cert, cert)
            # Leaves of a previous CA would no longer verify.
            for leaf in self.pki.glob("*.crt"):
                if leaf != self.ca_cert:
                    leaf.unlink()
        loaded = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        if not isinstance(loaded, ec.EllipticCurvePrivateKey):
            raise CitadelleError(f"lab collector: {key_path} is not the lab CA's EC key")
        return loaded, x509.load_pem_x509_certificate(self.ca_cert.read_bytes())

    def _leaf(self, name: str, *, server: bool) -> None:
        ca_key, ca = self._ca()  # first: a renewed CA removes the leaves it did not sign
        cert_path, key_path = self.client_cert(name), self.client_key(name)
        if key_path.is_file() and _still_valid(cert_path):
            return
        key = ec.generate_private_key(ec.SECP256R1())
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                   .issuer_name(ca.subject).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(_now() - CLOCK_SKEW).not_valid_after(_now() + LEAF_VALIDITY)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                                  critical=True)
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
        if server:
            builder = builder.add_extension(x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.ip_address(GUEST_ADDRESS)),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        _write_key(key_path, key)
        _write_cert(cert_path, cert)

    def tls_vars(self) -> dict[str, str]:
        """bp028_audit variables installing the lab PKI's files on each clone (per host name)."""
        return {
            "bp028_audit_forward_ca_file": GUEST_CA_FILE,
            "bp028_audit_forward_ca_src": str(self.ca_cert),
            "bp028_audit_forward_client_key_src": str(self.client_key(HOST_TEMPLATE)),
            "bp028_audit_forward_client_cert_src": str(self.client_cert(HOST_TEMPLATE)),
        }

    def server_certificate(self, name: str) -> tuple[Path, Path]:
        """A server certificate of the lab CA for another lab service (for 127.0.0.1 and
        10.0.2.2, how the clones reach it); returns (certificate, key) paths."""
        if name in {"ca", "collector"}:
            raise CitadelleError(f"lab PKI: {name!r} is reserved")
        self._leaf(name, server=True)
        return self.client_cert(name), self.client_key(name)

    def issue(self, names: Iterable[str]) -> None:
        """A client certificate for each clone name (kept while valid; idempotent)."""
        for name in names:
            if name in {"ca", "collector"}:
                raise CitadelleError(f"lab collector: {name!r} is reserved for the PKI")
            self._leaf(name, server=False)

    # -- processes ---------------------------------------------------------------------------

    @property
    def journal_file(self) -> Path:
        return self.journal_dir / "received.journal"

    def _processes(self) -> dict[str, tuple[Path, str]]:
        """Each process's PID file and the command-line marker that identifies it."""
        return {"systemd-journal-remote": (self.directory / "journal-remote.pid",
                                           f"--output={self.journal_file}"),
                "stunnel": (self.directory / "stunnel.pid", str(self.directory / "stunnel.conf"))}

    def pids(self) -> dict[str, int]:
        """The collector's live processes by name."""
        live = {name: recorded(pid_file, marker)
                for name, (pid_file, marker) in self._processes().items()}
        return {name: pid for name, pid in live.items() if pid is not None}

    def running(self) -> bool:
        return len(self.pids()) == len(self._processes())

    def _stunnel_conf(self) -> str:
        return "\n".join([
            "; Generated by citadelle.lab.collector: TLS in front of systemd-journal-remote.",
            "foreground = yes", "pid =", "syslog = no",
            "debug = notice",
            "[journal-upload]", f"accept = {LISTEN}", f"connect = {BACKEND}",
            f"cert = {self.client_cert('collector')}", f"key = {self.client_key('collector')}",
            f"CAfile = {self.ca_cert}", "requireCert = yes", "verifyChain = yes",
            "sslVersionMin = TLSv1.2", ""])

    @property
    def tls_log(self) -> Path:
        return self.directory / "stunnel.log"

    def start(self, timeout: float = 15.0) -> dict[str, int]:
        """Start the collector unless it runs already; return its PIDs once it listens."""
        if self.running():
            return self.pids()
        self.stop()  # half of it left by a killed session
        for binary in (JOURNAL_REMOTE, STUNNEL):
            if not binary.is_file():
                raise CitadelleError(f"lab collector: {binary} not found; {INSTALL_HINT}")
        for address in (LISTEN, BACKEND):
            if _listening(address):
                raise CitadelleError(f"lab collector: {address} is taken by another process; "
                                     "stop it (the clones' journal upload uses this port)")
        self._ca()
        self._leaf("collector", server=True)
        self.journal_dir.mkdir(parents=True, exist_ok=True)
        conf = self.directory / "stunnel.conf"
        conf.write_text(self._stunnel_conf())
        commands = {
            "systemd-journal-remote": [str(JOURNAL_REMOTE), f"--listen-http={BACKEND}",
                                       f"--output={self.journal_file}", "--split-mode=none"],
            "stunnel": [str(STUNNEL), str(conf)],
        }
        for name, (pid_file, _) in self._processes().items():
            launch(commands[name], self.directory / f"{name}.log", pid_file)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dead = sorted(set(commands) - set(self.pids()))
            if dead:
                self.stop()
                tails = "; ".join(f"{name}: {log_tail(self.directory / f'{name}.log')}"
                                  for name in dead)
                raise CitadelleError(f"lab collector: exited at start ({tails})")
            if _listening(LISTEN) and _listening(BACKEND):
                return self.pids()
            time.sleep(0.1)
        self.stop()
        raise CitadelleError(f"lab collector: not listening on {LISTEN} after {timeout:.0f} s; "
                             f"see the logs in {self.directory}")

    def stop(self) -> list[str]:
        """Stop the collector's processes by PID; received journals stay. Returns what ran."""
        return [name for name, (pid_file, marker) in self._processes().items()
                if stop_recorded(pid_file, marker, what=name)]

    # -- what was received -------------------------------------------------------------------

    def entries(self, *matches: str) -> list[dict[str, Any]]:
        """Received entries, filtered by journalctl FIELD=VALUE matches (e.g. _HOSTNAME=node1)."""
        files = sorted(self.journal_dir.glob("received*.journal"))
        if not files:
            return []
        proc = subprocess.run(
            [str(JOURNALCTL), "--no-pager", "-o", "json", *[f"--file={f}" for f in files],
             *matches], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise CitadelleError(f"lab collector: journalctl failed: {proc.stderr.strip()}")
        return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]

    def accepted_clients(self) -> set[str]:
        """Common names of the client certificates the TLS terminator accepted."""
        if not self.tls_log.is_file():
            return set()
        return set(re.findall(r"Certificate accepted at depth=0: .*?CN=([^,/\s]+)",
                              self.tls_log.read_text(errors="replace")))

    def received(self) -> dict[str, int]:
        """Entries received per sending host."""
        counts: dict[str, int] = {}
        for entry in self.entries():
            host = str(entry.get("_HOSTNAME", "?"))
            counts[host] = counts.get(host, 0) + 1
        return dict(sorted(counts.items()))


def _listening(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, int(port))) == 0
