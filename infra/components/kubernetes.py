"""The Kubernetes cluster of an environment and the explicit provider every object goes through.

Two modes, chosen in stack config (``citadelle:kubernetes.mode``):

- ``magnum``: an OpenStack Magnum ClusterTemplate and Cluster in the app tier of the landing
  zone: no floating IP on masters or nodes, the API behind a private Octavia load balancer
  (SecNumCloud 13.2), masters and worker node groups spread over the availability zones
  (SecNumCloud 17.4), a pinned Kubernetes version, the hardened image, etcd and boot volumes of
  the LUKS volume type (SecNumCloud 10.1) and API audit logging on (SecNumCloud 12.6). The label
  names are those of the Cluster API driver (magnum-cluster-api); docs/kubernetes.md lists them.
- ``existing``: a cluster run by the provider or by the team; its kubeconfig is the config
  secret ``citadelle:kubeconfig``.

Either way the only way to the cluster is one explicit ``pulumi_kubernetes.Provider`` built from
a kubeconfig that stays a Pulumi secret: nothing ever reads an ambient ``~/.kube/config``.

Magnum has no switch for the API server's EncryptionConfiguration nor for the audit policy's
content, so the component renders both (KMS v2 through cloud-provider-openstack's
barbican-kms-plugin, keyed by the environment's Barbican ``kubernetes`` KEK) as the cluster's
security profile; the baseline publishes it in the cluster and docs/kubernetes.md records the
residual risk and how it is checked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_openstack as openstack
import yaml

# Where cloud-provider-openstack's barbican-kms-plugin listens on the control-plane nodes.
KMS_ENDPOINT = "unix:///var/lib/kms/kms.sock"
KMS_NAME = "barbican"
# ANSSI TLS guide: TLS 1.2 with ECDHE and AEAD suites only.
API_TLS_CIPHERS = (
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,"
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
)


@dataclass(frozen=True)
class NodeGroupSpec:
    name: str
    flavor: str
    count: int


@dataclass(frozen=True)
class ClusterArgs:
    prefix: str
    environment: str
    mode: str  # "magnum" or "existing"
    version: str  # e.g. v1.31.4
    region: str
    auth_url: str
    availability_zones: tuple[str, ...]
    image: str
    master_count: int
    master_flavor: str
    node_groups: tuple[NodeGroupSpec, ...]
    network_id: pulumi.Input[str]
    subnet_id: pulumi.Input[str]
    external_network_id: pulumi.Input[str]
    dns_nameservers: tuple[str, ...]
    registry: str
    volume_type: pulumi.Input[str]
    pod_cidr: str
    service_cidr: str
    etcd_volume_gb: int
    audit_log_max_age_days: int
    kms_key_ref: pulumi.Input[str]
    kubeconfig: pulumi.Input[str] | None = None  # existing mode: the config secret
    render_dir: str | None = None


def type_token(api_version: str, kind: str, patch: bool = False) -> str:
    """pulumi-kubernetes' type token for an object (core group is ``core``)."""
    group, _, version = api_version.rpartition("/")
    return f"kubernetes:{group or 'core'}/{version}:{kind}{'Patch' if patch else ''}"


def object_name(prefix: str, manifest: Mapping[str, Any], patch: bool = False) -> str:
    """Stable logical name from the object's identity: nothing else changes it."""
    metadata = manifest["metadata"]
    scope = f"{metadata['namespace']}-" if "namespace" in metadata else ""
    kind = manifest["kind"].lower() + ("patch" if patch else "")
    return f"{prefix}-{scope}{kind}-{metadata['name']}"


class KubeObject(pulumi.CustomResource):
    """One Kubernetes object, registered exactly as pulumi-kubernetes' typed class registers it.

    Same type token, same inputs (the manifest: apiVersion, kind, metadata, spec/data/...), so
    the provider plugin, the policy pack and the recording all see the object unchanged; the
    typed ``pulumi_kubernetes.core.v1`` module alone costs 0.8 s of import on every plan.
    """

    def __init__(
        self,
        prefix: str,
        manifest: Mapping[str, Any],
        opts: pulumi.ResourceOptions,
        patch: bool = False,
    ) -> None:
        super().__init__(
            type_token(manifest["apiVersion"], manifest["kind"], patch),
            object_name(prefix, manifest, patch),
            dict(manifest),
            opts,
        )


def spread(count: int, zones: tuple[str, ...]) -> list[tuple[str, int]]:
    """``count`` nodes over ``zones``, round-robin; zones left empty are dropped."""
    share = [count // len(zones) + (1 if i < count % len(zones) else 0) for i in range(len(zones))]
    return [(zone, n) for zone, n in zip(zones, share, strict=True) if n]


def encryption_configuration() -> dict[str, Any]:
    """Secrets encrypted at rest by KMS v2; identity last only to read pre-existing objects."""
    return {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "EncryptionConfiguration",
        "resources": [
            {
                "resources": ["secrets"],
                "providers": [
                    {
                        "kms": {
                            "apiVersion": "v2",
                            "name": KMS_NAME,
                            "endpoint": KMS_ENDPOINT,
                            "timeout": "3s",
                        }
                    },
                    {"identity": {}},
                ],
            }
        ],
    }


def audit_policy() -> dict[str, Any]:
    """API audit policy: who did what, never the content of secrets or health data."""
    secrets = [{"group": "", "resources": ["secrets", "configmaps", "serviceaccounts/token"]},
               {"group": "authentication.k8s.io", "resources": ["tokenreviews"]}]
    return {
        "apiVersion": "audit.k8s.io/v1",
        "kind": "Policy",
        "omitStages": ["RequestReceived"],
        "rules": [
            {"level": "None", "users": ["system:kube-proxy"], "verbs": ["watch"]},
            {"level": "None", "nonResourceURLs": ["/healthz*", "/livez*", "/readyz*",
                                                   "/version"]},
            {"level": "Metadata", "resources": secrets},
            {
                "level": "RequestResponse",
                "resources": [
                    {"group": "rbac.authorization.k8s.io"},
                    {"group": "networking.k8s.io", "resources": ["networkpolicies"]},
                    {"group": "admissionregistration.k8s.io"},
                    {"group": "", "resources": ["namespaces", "resourcequotas", "limitranges"]},
                ],
            },
            {"level": "Request", "resources": [
                {"group": "", "resources": ["pods/exec", "pods/attach", "pods/portforward"]}]},
            {"level": "Metadata"},
        ],
    }


def kms_plugin_config(auth_url: str, region: str, key_id: str) -> str:
    """cloud-provider-openstack barbican-kms-plugin config, without its credential.

    The plugin authenticates with the cluster's application credential (Magnum's cloud config
    on the control plane); only the key it uses is declared here.
    """
    return (
        "[Global]\n"
        f"auth-url = {auth_url}\n"
        f"region = {region}\n"
        "[KeyManager]\n"
        f"key-id = {key_id}\n"
    )


def barbican_uuid(secret_ref: str) -> str:
    """The secret's UUID: the last path segment of its Barbican reference."""
    return secret_ref.rstrip("/").rsplit("/", 1)[-1]


class KubernetesCluster(pulumi.ComponentResource):
    """The cluster (Magnum or existing) and its provider (type citadelle:kubernetes:Cluster)."""

    def __init__(
        self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("citadelle:kubernetes:Cluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.cluster: openstack.containerinfra.Cluster | None = None
        self.node_groups: list[openstack.containerinfra.NodeGroup] = []
        if args.mode == "magnum":
            kubeconfig = self._magnum(args, child)
        elif args.kubeconfig is not None:
            kubeconfig = pulumi.Output.secret(args.kubeconfig)
        else:
            raise ValueError("kubernetes.mode 'existing' needs the kubeconfig config secret")

        self.provider = k8s.Provider(
            f"{args.prefix}-kubernetes",
            kubeconfig=kubeconfig,
            # A stable identity: rotating the kubeconfig's credentials never replaces objects.
            cluster_identifier=f"{args.prefix}-k8s",
            enable_server_side_apply=True,
            render_yaml_to_directory=args.render_dir,
            opts=child,
        )
        key_id = pulumi.Output.from_input(args.kms_key_ref).apply(barbican_uuid)
        self.kms_key_ref = pulumi.Output.from_input(args.kms_key_ref)
        self.security_profile: dict[str, pulumi.Input[str]] = {
            "encryption-configuration.yaml": yaml.safe_dump(
                encryption_configuration(), sort_keys=False
            ),
            "audit-policy.yaml": yaml.safe_dump(audit_policy(), sort_keys=False),
            "barbican-kms-plugin.conf": key_id.apply(
                lambda kid: kms_plugin_config(args.auth_url, args.region, kid)
            ),
            "kms-key-ref": self.kms_key_ref,
            "kubernetes-version": args.version,
        }
        self.api_address: pulumi.Output[str | None] = (
            self.cluster.api_address
            if self.cluster is not None
            else pulumi.Output.from_input(None)
        )
        self.register_outputs(
            {
                "mode": args.mode,
                "version": args.version,
                "apiAddress": self.api_address,
                "kmsKeyRef": self.kms_key_ref,
                "nodeGroups": [g.name for g in self.node_groups],
            }
        )

    def _magnum(self, args: ClusterArgs, child: pulumi.ResourceOptions) -> pulumi.Output[str]:
        volume_type = pulumi.Output.from_input(args.volume_type)
        labels: dict[str, pulumi.Input[str]] = {
            "kube_tag": args.version,
            # System images come from the in-region registry only (SecNumCloud 19.6).
            "container_infra_prefix": f"{args.registry}/magnum",
            "master_lb_floating_ip_enabled": "false",
            "audit_log_enabled": "true",
            "audit_log_max_age": str(args.audit_log_max_age_days),
            "keystone_auth_enabled": "true",
            "api_server_tls_cipher_suites": API_TLS_CIPHERS,
            "auto_healing_enabled": "true",
            "boot_volume_type": volume_type,
            "etcd_volume_type": volume_type,
            "etcd_volume_size": str(args.etcd_volume_gb),
            "calico_ipv4pool": args.pod_cidr,
            "service_cluster_ip_range": args.service_cidr,
        }
        template = openstack.containerinfra.ClusterTemplate(
            f"{args.prefix}-k8s-template",
            name=f"{args.prefix}-k8s-{args.version}",
            coe="kubernetes",
            server_type="vm",
            image=args.image,
            master_flavor=args.master_flavor,
            flavor=args.node_groups[0].flavor,
            # Calico enforces NetworkPolicy; flannel would silently ignore the baseline's.
            network_driver="calico",
            volume_driver="cinder",
            external_network_id=args.external_network_id,
            fixed_network=args.network_id,
            fixed_subnet=args.subnet_id,
            dns_nameserver=",".join(args.dns_nameservers),
            floating_ip_enabled=False,
            master_lb_enabled=True,
            tls_disabled=False,
            registry_enabled=False,
            public=False,
            hidden=False,
            labels=labels,
            opts=child,
        )
        placements = [
            (group, zone, count)
            for group in args.node_groups
            for zone, count in spread(group.count, args.availability_zones)
        ]
        first_group, first_zone, first_count = placements[0]
        self.cluster = openstack.containerinfra.Cluster(
            f"{args.prefix}-k8s",
            name=f"{args.prefix}-k8s",
            cluster_template_id=template.id,
            master_count=args.master_count,
            master_flavor=args.master_flavor,
            # The default worker group is the first group's share in the first zone.
            flavor=first_group.flavor,
            node_count=first_count,
            fixed_network=args.network_id,
            fixed_subnet=args.subnet_id,
            floating_ip_enabled=False,
            master_lb_enabled=True,
            merge_labels=True,
            labels={
                "control_plane_availability_zones": ",".join(args.availability_zones),
                "availability_zone": first_zone,
            },
            create_timeout=90,
            opts=child,
        )
        for group, zone, count in placements[1:]:
            self.node_groups.append(
                openstack.containerinfra.NodeGroup(
                    f"{args.prefix}-k8s-{group.name}-{zone}",
                    name=f"{group.name}-{zone}",
                    cluster_id=self.cluster.id,
                    role="worker",
                    flavor_id=group.flavor,
                    image_id=args.image,
                    node_count=count,
                    min_node_count=count,
                    merge_labels=True,
                    labels={"availability_zone": zone},
                    opts=child,
                )
            )
        raw: pulumi.Output[str] = self.cluster.kubeconfig.apply(lambda k: k["raw_config"])
        return pulumi.Output.secret(raw)
