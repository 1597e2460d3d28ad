"""The lab collector's PKI (citadelle.lab.collector): what each clone gets to upload its journal."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from citadelle.errors import CitadelleError
from citadelle.lab.collector import GUEST_ADDRESS, GUEST_CA_FILE, Collector

pytestmark = pytest.mark.unit


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_client_certificate_names_the_clone_and_chains_to_the_lab_ca(tmp_path: Path) -> None:
    collector = Collector(tmp_path)
    collector.issue(["node1"])
    cert, ca = _cert(collector.client_cert("node1")), _cert(collector.ca_cert)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "node1"
    assert cert.issuer == ca.subject
    public = ca.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    cert.verify_directly_issued_by(ca)
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_private_keys_are_owner_only(tmp_path: Path) -> None:
    collector = Collector(tmp_path)
    collector.issue(["node1"])
    for key in (collector.client_key("node1"), collector.pki / "ca.key"):
        assert key.stat().st_mode & 0o777 == 0o600
    assert collector.pki.stat().st_mode & 0o777 == 0o700


def test_issuing_twice_keeps_the_certificate(tmp_path: Path) -> None:
    collector = Collector(tmp_path)
    collector.issue(["node1"])
    first = _cert(collector.client_cert("node1")).serial_number
    collector.issue(["node1", "node2"])
    assert _cert(collector.client_cert("node1")).serial_number == first
    assert collector.client_cert("node2").is_file()


def test_a_new_ca_reissues_the_clients(tmp_path: Path) -> None:
    collector = Collector(tmp_path)
    collector.issue(["node1"])
    first = _cert(collector.client_cert("node1")).serial_number
    collector.ca_cert.unlink()
    collector.issue(["node1"])
    cert = _cert(collector.client_cert("node1"))
    assert cert.serial_number != first
    cert.verify_directly_issued_by(_cert(collector.ca_cert))


def test_collector_certificate_covers_the_address_clones_use(tmp_path: Path) -> None:
    collector = Collector(tmp_path)
    collector._leaf("collector", server=True)
    names = _cert(collector.client_cert("collector")).extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value
    assert {str(ip) for ip in names.get_values_for_type(x509.IPAddress)} == {GUEST_ADDRESS,
                                                                            "127.0.0.1"}


@pytest.mark.parametrize("name", ["ca", "collector"])
def test_pki_names_are_not_clone_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(CitadelleError, match="reserved"):
        Collector(tmp_path).issue([name])


def test_role_variables_point_at_each_host_own_files(tmp_path: Path) -> None:
    variables = Collector(tmp_path).tls_vars()
    assert variables["bp028_audit_forward_ca_file"] == GUEST_CA_FILE
    assert variables["bp028_audit_forward_client_key_src"] == \
        f"{tmp_path}/collector/pki/{{{{ inventory_hostname }}}}.key"
    assert variables["bp028_audit_forward_client_cert_src"].endswith(
        "/{{ inventory_hostname }}.crt")


def test_a_lab_reached_through_a_link_is_the_same_lab(tmp_path):
    # PID markers are paths: a deploy from a checkout whose .lab is a link must recognise the
    # collector and NTP server the lab already runs, not try to start second ones.
    from citadelle.lab.ntp import TimeServer

    real = tmp_path / "lab"
    real.mkdir()
    link = tmp_path / "checkout-lab"
    link.symlink_to(real)
    assert Collector(link).directory == Collector(real).directory == real / "collector"
    assert TimeServer(link).marker == TimeServer(real).marker
