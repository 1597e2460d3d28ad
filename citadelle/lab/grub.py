"""The lab's GRUB superuser password (BP-028 R5), generated once and kept 0600 under .lab/.

- ``.lab/secrets/grub-password``: the password itself, for an operator at a clone's console;
- ``.lab/secrets/grub-password.pbkdf2``: its ``grub-mkpasswd-pbkdf2`` form (salt drawn once),
  the value of ``bp028_kernel_grub_password_hash``; stable, so converges stay idempotent.

A real environment supplies its own hash from its secrets (docs/hardening.md).
"""

from __future__ import annotations

import hashlib
import secrets
from pathlib import Path

from citadelle.files import private_dir, write_file

# GRUB's own defaults (grub-mkpasswd-pbkdf2): 10000 iterations, 64-byte salt and digest.
ITERATIONS = 10000
SALT_BYTES = 64


def grub_pbkdf2(password: str, salt: bytes, iterations: int = ITERATIONS) -> str:
    """What grub-mkpasswd-pbkdf2 prints for ``password`` with this salt."""
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, 64)
    return f"grub.pbkdf2.sha512.{iterations}.{salt.hex().upper()}.{digest.hex().upper()}"


def ensure_grub_password_hash(lab_dir: Path) -> str:
    """The lab's GRUB password hash, creating the password and hash on first use."""
    secret_dir = private_dir(lab_dir / "secrets")
    password_file = secret_dir / "grub-password"
    hash_file = secret_dir / "grub-password.pbkdf2"
    if not password_file.is_file():
        write_file(password_file, secrets.token_urlsafe(24) + "\n", 0o600)
        hash_file.unlink(missing_ok=True)
    if not hash_file.is_file():
        password = password_file.read_text().strip()
        hashed = grub_pbkdf2(password, secrets.token_bytes(SALT_BYTES))
        write_file(hash_file, hashed + "\n", 0o600)
    return hash_file.read_text().strip()
