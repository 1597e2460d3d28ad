"""Object storage containers: data lake, workspace extractions, backups.

SecNumCloud 10.1 and 13.2: no container is ever public (no read ACL, in particular no ``.r:*``
referrer ACL), every container is versioned so a deletion or an overwrite can be undone, and the
provider's encrypted storage policy is used where the stack names one.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_openstack as openstack


@dataclass(frozen=True)
class StorageArgs:
    prefix: str
    containers: tuple[str, ...]
    environment: str
    data_classification: str
    storage_policy: str | None = None


class ObjectStorage(pulumi.ComponentResource):
    """Private, versioned Swift containers (type citadelle:storage:ObjectStorage)."""

    def __init__(
        self, name: str, args: StorageArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("citadelle:storage:ObjectStorage", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.containers: dict[str, openstack.objectstorage.Container] = {}
        for purpose in args.containers:
            self.containers[purpose] = openstack.objectstorage.Container(
                f"{name}-{purpose}",
                name=f"{args.prefix}-{purpose}",
                # Empty ACLs: only the owning project's tokens can read or write.
                container_read="",
                container_write="",
                versioning=True,
                storage_policy=args.storage_policy,
                metadata={
                    "environment": args.environment,
                    "data-classification": args.data_classification,
                    "purpose": purpose,
                },
                opts=child,
            )
        self.register_outputs({"containers": {p: c.name for p, c in self.containers.items()}})
