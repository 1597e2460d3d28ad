"""What a stand-in for the platform (the VM lab) supplies to the migration stage.

The migration never imports the lab: with ``--lab`` it asks the lab target, found through the
target registry (``citadelle.environment.targets``), for the endpoints it serves (Azurite as the
source, the loopback cloud's Swift as the destination) and, with ``--gateway``, for what the
transfer play needs to run on a clone standing in for a transfer gateway (its inventory, the
addresses it sees the endpoints at, its time and log services).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from citadelle.environment.targets import make_target
from citadelle.errors import CitadelleError
from citadelle.migrate.context import StandInEndpoints


@runtime_checkable
class TransferStandIn(Protocol):
    def transfer_endpoints(self) -> StandInEndpoints: ...

    def gateway_inventory(self, names: Sequence[str]) -> Path:
        """An inventory holding the live gateway clones ``names`` (refused if one is not)."""
        ...

    def gateway_url(self, url: str) -> str:
        """``url`` as a gateway clone reaches it."""
        ...

    def gateway_role_vars(self) -> Mapping[str, Any]:
        """The time and log services the clones use, as the roles name them."""
        ...


def lab_stand_in(run_dir: Path | None = None) -> TransferStandIn:
    """The lab target (clones in ``run_dir``), as the migration's stand-in."""
    target = make_target("lab", lab_run_dir=run_dir)
    if not isinstance(target, TransferStandIn):
        raise CitadelleError("the lab target serves no migration endpoints")
    return target
