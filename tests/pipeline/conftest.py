"""A fresh, unhardened lab clone for the pipeline's negative case (restored from the lab's
golden snapshot in seconds; killed by PID at the end of the module, pass or fail).

The hardened clones come from the session fixture ``hardened_lab`` of the VM tests, which
converges bastion, gateway and node once for the whole session.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from citadelle.lab import Lab, LabInventory
from citadelle.paths import LAB_DIR


@pytest.fixture(scope="module")
def pristine_clone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabInventory]:
    lab = Lab(root=LAB_DIR, run_dir=tmp_path_factory.mktemp("pristine-lab"))
    try:
        yield lab.up({"pristine": "node"})
    finally:
        lab.down()
