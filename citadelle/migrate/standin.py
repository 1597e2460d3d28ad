"""What a stand-in for the platform (the VM lab) supplies to the migration stage.

The migration never imports the lab: with ``--lab`` it asks the lab target, found through the
target registry (``citadelle.environment.targets``), for the endpoints it serves (Azurite as the
source, the loopback cloud's Swift as the destination) and, with ``--gateway``, for a runner
that sends each shard through a clone standing in for the transfer gateway.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol, runtime_checkable

from citadelle.environment.targets import make_target
from citadelle.errors import CitadelleError
from citadelle.migrate.context import MigrationContext, StandInEndpoints
from citadelle.migrate.engine import ShardResult

# (container, file of the shard's object names, rclone log) -> the shard's result
ShardRunner = Callable[[str, Path, Path], ShardResult]


@runtime_checkable
class TransferStandIn(Protocol):
    def transfer_endpoints(self) -> StandInEndpoints: ...

    def shard_runner(self, ctx: MigrationContext, gateway: str, ca: Path) -> ShardRunner: ...


def lab_stand_in(run_dir: Path | None = None) -> TransferStandIn:
    """The lab target (clones in ``run_dir``), as the migration's stand-in."""
    target = make_target("lab", lab_run_dir=run_dir)
    if not isinstance(target, TransferStandIn):
        raise CitadelleError("the lab target serves no migration endpoints")
    return target
