"""Cryptography on the host: SSH algorithms, TLS of the log forwarding, data volumes.

SecNumCloud 3.2 10.2 (encryption of flows, ANSSI SSH/TLS guides), 10.1 (encryption at rest);
expected algorithms are the bp028_ssh lists, the TLS files the bp028_audit ones.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from checks.target import Case, Result, Target, key_values

SSHD_LISTS = {
    "kexalgorithms": "bp028_ssh_kex_algorithms",
    "ciphers": "bp028_ssh_ciphers",
    "macs": "bp028_ssh_macs",
    "hostkeyalgorithms": "bp028_ssh_host_key_algorithms",
    "pubkeyacceptedalgorithms": "bp028_ssh_host_key_algorithms",
}


def algorithm_cases(target: Target) -> Iterator[Case]:
    for key, variable in SSHD_LISTS.items():
        yield Case(key, (key, list(target.vars[variable])))


def volume_cases(target: Target) -> Iterator[Case]:
    size = target.vars.get("citadelle_data_volume_gb")
    if size:
        yield Case("data-volume", int(size))


CASES = {"algorithms": algorithm_cases, "volume_gb": volume_cases}


@pytest.mark.snc("10.2")
@pytest.mark.bp028("R67")
def test_sshd_algorithms(target: Target, algorithms: tuple[str, list[str]]) -> None:
    key, expected = algorithms
    effective = key_values(target.output("sshd -T -C user=nobody,host=localhost,addr=127.0.0.1"))
    assert effective.get(key, "").split(",") == expected


@pytest.mark.snc("10.2", "12.7")
@pytest.mark.bp028("R71")
def test_log_forwarding_uses_mutual_tls(target: Target) -> None:
    conf = key_values(target.host.file("/etc/systemd/journal-upload.conf").content_string, "=")
    assert conf.get("url", "").startswith("https://")
    assert conf.get("trustedcertificatefile") == target.vars["bp028_audit_forward_ca_file"]
    assert conf.get("servercertificatefile") == target.vars["bp028_audit_forward_client_cert"]
    assert conf.get("serverkeyfile") == target.vars["bp028_audit_forward_key_credential_path"]


def _collector_reply(target: Target, *, with_certificate: bool) -> Result:
    """An HTTP request to the log collector over TLS from the host, as the upload makes it."""
    url = urlsplit(str(target.vars["bp028_audit_forward_url"]))
    options = [f"-connect {url.hostname}:{url.port or 443}",
               f"-CAfile {target.vars['bp028_audit_forward_ca_file']}", "-verify_return_error",
               "-quiet"]
    if with_certificate:
        options += [f"-cert {target.vars['bp028_audit_forward_client_cert']}",
                    f"-key {target.vars['bp028_audit_forward_client_key']}"]
    return target.root("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | timeout 20 openssl s_client "
                       + " ".join(options) + " 2>&1")


@pytest.mark.snc("10.2", "12.7")
@pytest.mark.bp028("R71")
def test_log_collector_demands_this_host_certificate(target: Target) -> None:
    # A handshake from the host, not the config: the collector's certificate verifies against
    # the configured CA and, shown this host's client certificate, the collector answers HTTP;
    # the same request without it gets no answer (mutual TLS, not just TLS).
    with_certificate = _collector_reply(target, with_certificate=True).stdout
    assert "HTTP/1." in with_certificate, with_certificate[-400:]
    without = _collector_reply(target, with_certificate=False).stdout
    assert "HTTP/1." not in without, without[-400:]


@pytest.mark.snc("10.2", "12.7")
@pytest.mark.bp028("R71")
def test_log_forwarding_key_stays_root_only(target: Target) -> None:
    # The upload runs as a dynamic user: it reads a credential copy, the key file stays 0600 root.
    service = target.vars["bp028_audit_upload_service"]
    credential = (f"{target.vars['bp028_audit_forward_key_credential_id']}:"
                  f"{target.vars['bp028_audit_forward_client_key']}")
    # `systemctl cat`: the unit and drop-ins systemd loaded (`show` prints it as unprintable).
    lines = target.output(f"systemctl cat {service}").splitlines()
    assert f"LoadCredential={credential}" in lines
    key = target.vars["bp028_audit_forward_client_key"]
    assert target.output(f"stat -c '%U %G %a' {key}").split() == ["root", "root", "600"]


def _devices(tree: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for device in tree:
        yield device
        yield from _devices(device.get("children") or [])


@pytest.mark.snc("10.1")
@pytest.mark.applies(when="citadelle_data_volume_gb")
def test_data_volume_is_attached(target: Target, volume_gb: int) -> None:
    """The declared data volume is there, at its size, apart from the system disk.

    Its encryption is the volume type's, front-end: the hypervisor opens the LUKS container
    and the guest sees a plain disk, so the guest cannot prove it. The gate (the volume type)
    and the cloud audit (the type's encryption spec) carry that half of 10.1.
    """
    tree = json.loads(target.output("lsblk -J -b -o NAME,TYPE,SIZE,MOUNTPOINT"))
    data_disks = [d for d in tree["blockdevices"] if d["type"] == "disk"
                  and not any(c.get("mountpoint") in ("/", "/boot") for c in _devices([d]))]
    sizes = sorted(int(d["size"]) for d in data_disks)
    assert volume_gb * 2**30 in sizes, \
        f"no {volume_gb} GiB data volume attached (disks besides the system one: {sizes})"
