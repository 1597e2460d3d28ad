"""One research workspace ("espace projet"): an approved project's isolated corner of the platform.

Per workspace, and derived from its id only, so that adding or removing one never changes
another's resources:

- a namespace ``ws-<id>`` under PSA ``restricted``, annotated with its approval reference,
  expiry date and extractions (the policy gate refuses it once expired);
- default-deny ingress and egress; one policy allows egress to DNS and to the object-storage
  endpoint on 443 only (SecNumCloud 9.7, 13.2): no policy names another namespace but kube-system;
- a RoleBinding of the project's members group to the research ClusterRole, in this
  namespace only; the default service account mounts no token;
- ResourceQuota and LimitRange from the approved quotas (no LoadBalancer, no NodePort);
- a dedicated 256-bit key in Barbican, readable (ACL) only by the workspace's service user
  (SecNumCloud 10.5);
- a private, versioned object-storage container for its extractions, readable only by that
  service user (Swift ACL ``*:<user id>``, never a referrer ACL).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_openstack as openstack
import pulumi_random as random

from infra.components.baseline import (
    RESEARCH_ROLE,
    NamespaceQuota,
    allow_dns,
    network_policy,
    no_token_automount,
    restricted_namespace,
    role_binding,
)
from infra.components.keys import aes_key
from infra.components.kubernetes import KubeObject

HTTPS_PORT = 443


@dataclass(frozen=True)
class WorkspaceArgs:
    prefix: str
    environment: str
    id: str
    approval_ref: str
    members_group: str
    quota: NamespaceQuota
    extractions: tuple[str, ...]
    expires: dt.date
    reader: str
    psa_version: str
    object_storage_url: str
    object_storage_cidrs: tuple[str, ...]
    data_classification: str
    storage_policy: str | None = None
    # Where the workspace's data is read and written while it migrates (citadelle:dataLocations):
    # the Azure source until its cutover switches it to the EU container.
    source_location: tuple[str, str] | None = None


def namespace_name(workspace_id: str) -> str:
    return f"ws-{workspace_id}"


def container_name(prefix: str, workspace_id: str) -> str:
    return f"{prefix}-ws-{workspace_id}"


def workspace_egress(ns: str, cidrs: tuple[str, ...]) -> dict[str, Any]:
    """The workspace's whole outside world: cluster DNS and the object-storage endpoint."""
    dns = allow_dns(ns)["spec"]["egress"]
    storage = {
        "to": [{"ipBlock": {"cidr": cidr}} for cidr in cidrs],
        "ports": [{"protocol": "TCP", "port": HTTPS_PORT}],
    }
    return network_policy(ns, "allow-egress", egress=[*dns, storage])


def workspace_manifests(args: WorkspaceArgs) -> list[dict[str, Any]]:
    ns = namespace_name(args.id)
    labels = {"citadelle.io/environment": args.environment, "citadelle.io/workspace": args.id}
    annotations = {
        "citadelle.io/approval-ref": args.approval_ref,
        "citadelle.io/expires": args.expires.isoformat(),
        "citadelle.io/members-group": args.members_group,
        "citadelle.io/extractions": ",".join(args.extractions),
        "citadelle.io/storage-container": container_name(args.prefix, args.id),
        "citadelle.io/storage-endpoint": args.object_storage_url,
        "citadelle.io/data-location": "destination",
    }
    if args.source_location is not None:
        annotations.update({"citadelle.io/storage-endpoint": args.source_location[0],
                            "citadelle.io/storage-container": args.source_location[1],
                            "citadelle.io/data-location": "source"})
    objects = restricted_namespace(ns, args.psa_version, quota=args.quota, labels=labels,
                                   annotations=annotations, dns=False)
    objects += [
        workspace_egress(ns, args.object_storage_cidrs),
        role_binding(ns, "research-members", RESEARCH_ROLE, args.members_group),
    ]
    return objects


class Workspace(pulumi.ComponentResource):
    """A research workspace (type citadelle:workspaces:Workspace)."""

    def __init__(
        self, name: str, args: WorkspaceArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("citadelle:workspaces:Workspace", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        base = f"{args.prefix}-ws-{args.id}"
        manifests = workspace_manifests(args)
        self.namespace = KubeObject(args.prefix, manifests[0], child)
        after_ns = pulumi.ResourceOptions(parent=self, depends_on=[self.namespace])
        for manifest in manifests[1:]:
            KubeObject(args.prefix, manifest, after_ns)
        KubeObject(args.prefix, no_token_automount(namespace_name(args.id)), after_ns,
                   patch=True)

        material: pulumi.Input[str] = random.RandomBytes(f"{base}-key", length=32,
                                                         opts=child).base64
        self.key = aes_key(f"{base}-key", f"{base}-key", material,
                           metadata={"purpose": "workspace", "workspace": args.id,
                                     "environment": args.environment},
                           readers=[args.reader], opts=child)
        self.container = openstack.objectstorage.Container(
            f"{base}-extractions",
            name=container_name(args.prefix, args.id),
            # Read only by the workspace's service user; writes only by the project's own
            # tokens (the transfer intake). No referrer (.r:) ACL: never public.
            container_read=f"*:{args.reader}",
            container_write="",
            versioning=True,
            storage_policy=args.storage_policy,
            metadata={
                "environment": args.environment,
                "data-classification": args.data_classification,
                "workspace": args.id,
                "approval-ref": args.approval_ref,
                "expires": args.expires.isoformat(),
                "extractions": ",".join(args.extractions),
                "key-ref": self.key.secret_ref,
            },
            opts=child,
        )
        self.register_outputs(
            {
                "namespace": namespace_name(args.id),
                "container": self.container.name,
                "keyRef": self.key.secret_ref,
                "expires": args.expires.isoformat(),
            }
        )
