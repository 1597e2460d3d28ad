"""The loopback cloud itself: loopback only, secrets private, the master KEK inside the token."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from citadelle.lab.cloud import configs, lab


def _listening(pid: int) -> set[str]:
    out = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, check=True).stdout
    return {line.split()[3] for line in out.splitlines() if f"pid={pid}," in line}


@pytest.mark.parametrize("service", lab.SERVICES)
def test_service_listens_on_loopback_only(cloud_lab, service):
    pid = lab.running()[service]
    assert _listening(pid) == {f"127.0.0.1:{lab.service_port(service)}"}


@pytest.mark.parametrize(
    "path", [lab.CLOUDS_YAML, lab.SECRETS_FILE, lab.STATE / "etc" / "cinder.conf"], ids=str
)
def test_credentials_are_private(cloud_lab, path: Path):
    assert path.stat().st_mode & 0o777 == 0o600


@pytest.mark.snc("10.5")
def test_master_kek_is_generated_in_the_token_sensitive_and_never_extractable(cloud_lab):
    pin = lab.load_secrets().hsm_pin
    out = subprocess.run(
        ["pkcs11-tool", "--module", str(configs.SOFTHSM_LIBRARY), "--token-label",
         configs.HSM_LABEL, "--login", "--pin", pin, "--list-objects", "--type", "secrkey"],
        env={**os.environ, "SOFTHSM2_CONF": str(lab.STATE / "etc" / "softhsm2.conf")},
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    objects = out.split("Secret Key Object")
    mkek = next(o for o in objects if f"label:      {configs.MKEK_LABEL}" in o)
    assert "AES length 32" in mkek
    assert "never extractable" in mkek and "always sensitive" in mkek and "local" in mkek
    hmac = next(o for o in objects if f"label:      {configs.HMAC_LABEL}" in o)
    assert "generic" in hmac.lower()
