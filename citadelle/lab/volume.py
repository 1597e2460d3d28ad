"""A clone's data volume: a LUKS image opened by QEMU and hot-plugged, as Nova attaches one.

The environment's volume type is encrypted with ``control_location=front-end``
(``infra/components/keys.py``): the hypervisor opens the LUKS container and the guest sees a
plain block device. The lab does the same with QEMU's own LUKS driver, so a clone standing in
for a server with ``dataVolumeGb`` sees a disk of exactly that size while the image on this
machine holds only ciphertext (SecNumCloud 10.1). The image is sparse; the passphrase, the
stand-in for the Barbican key, lives next to it, readable by its owner only, and goes with the
clone.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

from citadelle.errors import CitadelleError
from citadelle.lab.image import tool
from citadelle.lab.qmp import QMP

IMAGE = "data.luks"
KEY = "data.key"
# The guest sees this serial in /dev/disk/by-id/virtio-<serial>.
SERIAL = "citadelle-data"
# QEMU's name for the secret object holding the passphrase (an identifier, not the secret).
KEY_OBJECT = "data-key"
# The passphrase only guards a throwaway image: spend little time on key derivation.
ITER_TIME_MS = 100
# QEMU sizes the key derivation by timing a first PBKDF2 round with the thread's CPU clock; on a
# fast CPU that round can fit inside one clock tick, and qemu-img gives up with this message
# (measured: one run in three on this machine). Nothing is written then: try again.
BENCHMARK_MISS = "Unable to get accurate CPU usage"
CREATE_ATTEMPTS = 5


def create_image(directory: Path, size_gb: int) -> Path:
    """A sparse LUKS image of ``size_gb`` GiB of payload in ``directory``, with its key."""
    if size_gb < 1:
        raise CitadelleError(f"lab: data volume of {size_gb} GiB: at least 1")
    key = directory / KEY
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(secrets.token_urlsafe(32))
    image = directory / IMAGE
    for _ in range(CREATE_ATTEMPTS):
        proc = subprocess.run(
            [tool("qemu-img"), "create", "-q", "-f", "luks",
             "--object", f"secret,id=key,file={key},format=raw",
             "-o", f"key-secret=key,iter-time={ITER_TIME_MS}", str(image), f"{size_gb}G"],
            capture_output=True, text=True, check=False)
        if proc.returncode == 0 or BENCHMARK_MISS not in proc.stderr:
            break
    if proc.returncode != 0:
        raise CitadelleError(f"lab: qemu-img create {image} failed: {proc.stderr.strip()}")
    return image


def attach(qmp: Path, directory: Path) -> None:
    """Hot-plug the clone's LUKS image as a virtio disk, opened by QEMU with its key."""
    with QMP(qmp) as session:
        session.execute("object-add", **{"qom-type": "secret", "id": KEY_OBJECT,
                                         "file": str(directory / KEY), "format": "raw"})
        session.execute("blockdev-add", **{
            "driver": "luks", "node-name": "data", "key-secret": KEY_OBJECT,
            "file": {"driver": "file", "filename": str(directory / IMAGE)}})
        session.execute("device_add", driver="virtio-blk-pci", drive="data", id="data-disk",
                        serial=SERIAL)

