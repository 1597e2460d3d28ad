"""The lab's own credentials, generated on first use and kept 0600 under .lab/, never committed.

- ``.lab/keys/id_ed25519``: the admin user's SSH key, authorised in the base image;
- ``.lab/secrets/admin-password``: the admin user's password, used only for sudo (Ansible's
  ``ansible_become_password``), so hardening can require a password for sudo (BP-028 R39).

Both feed the image recipe (public key, password digest): regenerating either rebuilds the image.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

from citadelle.errors import CitadelleError
from citadelle.files import private_dir
from citadelle.lab.image import tool


@dataclass(frozen=True)
class LabCredentials:
    private_key: Path
    public_key_line: str
    password_file: Path

    @property
    def password(self) -> str:
        return self.password_file.read_text().strip()


def ensure_credentials(lab_dir: Path) -> LabCredentials:
    """Create the key pair and the password if missing; idempotent."""
    keys, secret_dir = lab_dir / "keys", lab_dir / "secrets"
    private_dir(keys)
    private_dir(secret_dir)
    key = keys / "id_ed25519"
    if not key.is_file() or not key.with_suffix(".pub").is_file():
        key.unlink(missing_ok=True)
        key.with_suffix(".pub").unlink(missing_ok=True)
        proc = subprocess.run(
            [tool("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-C", "citadelle-lab", "-f",
             str(key)], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise CitadelleError(f"lab: ssh-keygen failed: {proc.stderr.strip()}")
    key.chmod(0o600)
    password_file = secret_dir / "admin-password"
    if not password_file.is_file():
        fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(24) + "\n")
    password_file.chmod(0o600)
    public = key.with_suffix(".pub").read_text().strip()
    return LabCredentials(private_key=key, public_key_line=public, password_file=password_file)
