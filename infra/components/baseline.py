"""The in-cluster baseline: restricted namespaces, default-deny flows, least-privilege RBAC.

- Every namespace the program declares enforces, audits and warns Pod Security Admission
  ``restricted`` at a pinned version (no privileged, hostPath, hostNetwork or root container:
  SecNumCloud 9.7 isolation); the only exceptions are the system
  namespaces named in config with a reason, which the program does not declare.
- Every namespace starts with a default-deny ingress and egress NetworkPolicy (SecNumCloud
  13.2); only the flows it needs are added: DNS to kube-system, the edge to the ingress
  controller, the ingress controller to the platform's backends, the backends to the data tier.
- RBAC: operators read the whole cluster except secrets and run the platform's namespaces;
  auditors read the same, nothing more; research projects act only in their own workspace
  (SecNumCloud 9.3 least privilege). No binding to ``cluster-admin``. Default service accounts
  never automount a token.
- ResourceQuota and LimitRange in every namespace; LoadBalancer Services nowhere and NodePort
  only in the ingress namespace, enforced by quota and by a ValidatingAdmissionPolicy.
- Images only from the in-region registry and pinned by digest (SecNumCloud 19.6), enforced
  in the API server by a ValidatingAdmissionPolicy outside the system namespaces.

The manifests are plain functions of the Args so tests and ``citadelle render`` read exactly
what is declared.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi

from citadelle.environment.settings import APPS_NAMESPACE, INGRESS_NAMESPACE, SYSTEM_NAMESPACE
from infra.components.kubernetes import KubeObject

PSA_MODES = ("enforce", "audit", "warn")
DNS_NAMESPACE = "kube-system"
INGRESS_SELECTOR = {"app.kubernetes.io/component": "ingress-controller"}
OPERATOR_ROLE, AUDITOR_ROLE, RESEARCH_ROLE = (
    "citadelle-operator",
    "citadelle-auditor",
    "citadelle-research",
)
MANAGED_BY = {"app.kubernetes.io/managed-by": "citadelle"}


@dataclass(frozen=True)
class NamespaceQuota:
    cpu: int
    memory_gi: int
    storage_gi: int
    node_ports: int = 0
    pods: int | None = None  # None: bounded by cpu/memory only


@dataclass(frozen=True)
class BaselineArgs:
    prefix: str
    environment: str
    psa_version: str
    registry: str
    system_namespaces: tuple[str, ...]
    operators_group: str
    auditors_group: str
    platform_quota: NamespaceQuota
    edge_cidr: str
    data_cidr: str
    data_ports: tuple[int, ...]
    ingress_port: int
    backend_port: int
    api_cidrs: tuple[str, ...]
    api_port: int
    security_profile: Mapping[str, pulumi.Input[str]]


# --------------------------------------------------------------------------- manifests


def psa_labels(version: str) -> dict[str, str]:
    labels: dict[str, str] = {}
    for mode in PSA_MODES:
        labels[f"pod-security.kubernetes.io/{mode}"] = "restricted"
        labels[f"pod-security.kubernetes.io/{mode}-version"] = version
    return labels


def namespace(
    name: str, psa_version: str, labels: Mapping[str, str], annotations: Mapping[str, str]
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "labels": {**MANAGED_BY, **labels, **psa_labels(psa_version)},
            "annotations": dict(annotations),
        },
    }


def network_policy(
    ns: str,
    name: str,
    pod_selector: Mapping[str, str] | None = None,
    ingress: list[dict[str, Any]] | None = None,
    egress: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    types = [t for t, rules in (("Ingress", ingress), ("Egress", egress)) if rules is not None]
    spec: dict[str, Any] = {
        "podSelector": {"matchLabels": dict(pod_selector)} if pod_selector else {},
        "policyTypes": types,
    }
    if ingress is not None:
        spec["ingress"] = ingress
    if egress is not None:
        spec["egress"] = egress
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns, "labels": dict(MANAGED_BY)},
        "spec": spec,
    }


def default_deny(ns: str) -> dict[str, Any]:
    """Every pod of the namespace: no ingress, no egress, until a policy allows a flow."""
    return network_policy(ns, "default-deny", ingress=[], egress=[])


def allow_dns(ns: str) -> dict[str, Any]:
    return network_policy(
        ns,
        "allow-dns",
        egress=[
            {
                "to": [
                    {
                        "namespaceSelector": {
                            "matchLabels": {"kubernetes.io/metadata.name": DNS_NAMESPACE}
                        },
                        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                    }
                ],
                "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
            }
        ],
    )


def resource_quota(ns: str, quota: NamespaceQuota) -> dict[str, Any]:
    hard = {
        "requests.cpu": str(quota.cpu),
        "limits.cpu": str(quota.cpu),
        "requests.memory": f"{quota.memory_gi}Gi",
        "limits.memory": f"{quota.memory_gi}Gi",
        "requests.storage": f"{quota.storage_gi}Gi",
        "services.loadbalancers": "0",
        "services.nodeports": str(quota.node_ports),
    }
    if quota.pods is not None:
        hard["pods"] = str(quota.pods)
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "quota", "namespace": ns, "labels": dict(MANAGED_BY)},
        "spec": {"hard": hard},
    }


def limit_range(ns: str, quota: NamespaceQuota) -> dict[str, Any]:
    """Defaults so that every container counts against the quota; no container above it."""
    return {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": {"name": "limits", "namespace": ns, "labels": dict(MANAGED_BY)},
        "spec": {
            "limits": [
                {
                    "type": "Container",
                    "default": {"cpu": "1", "memory": "1Gi"},
                    "defaultRequest": {"cpu": "250m", "memory": "256Mi"},
                    "max": {"cpu": str(quota.cpu), "memory": f"{quota.memory_gi}Gi"},
                },
                {
                    "type": "PersistentVolumeClaim",
                    "max": {"storage": f"{quota.storage_gi}Gi"},
                },
            ]
        },
    }


def no_token_automount(ns: str) -> dict[str, Any]:
    """The namespace's default service account never mounts an API token into pods."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "default", "namespace": ns},
        "automountServiceAccountToken": False,
    }


def restricted_namespace(
    name: str,
    psa_version: str,
    *,
    quota: NamespaceQuota,
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
    dns: bool = True,
) -> list[dict[str, Any]]:
    """The objects every declared namespace carries, in creation order."""
    objects = [
        namespace(name, psa_version, labels, annotations),
        default_deny(name),
        resource_quota(name, quota),
        limit_range(name, quota),
    ]
    if dns:
        objects.append(allow_dns(name))
    return objects


def _rule(groups: list[str], resources: list[str], verbs: list[str]) -> dict[str, Any]:
    return {"apiGroups": groups, "resources": resources, "verbs": verbs}


READ = ["get", "list", "watch"]
WRITE = ["get", "list", "watch", "create", "update", "patch", "delete"]

# What the cluster is, without the content of secrets, config maps or pods' logs: in a
# workspace any of them may hold health data.
AUDIT_READ_RULES = [
    _rule([""], ["namespaces", "pods", "services", "endpoints",
                 "persistentvolumeclaims", "persistentvolumes", "resourcequotas", "limitranges",
                 "serviceaccounts", "nodes", "events"], READ),
    _rule(["apps"], ["deployments", "statefulsets", "daemonsets", "replicasets"], READ),
    _rule(["batch"], ["jobs", "cronjobs"], READ),
    _rule(["networking.k8s.io"], ["networkpolicies", "ingresses", "ingressclasses"], READ),
    _rule(["rbac.authorization.k8s.io"],
          ["roles", "rolebindings", "clusterroles", "clusterrolebindings"], READ),
    _rule(["admissionregistration.k8s.io"],
          ["validatingadmissionpolicies", "validatingadmissionpolicybindings",
           "validatingwebhookconfigurations", "mutatingwebhookconfigurations"], READ),
    _rule(["policy"], ["poddisruptionbudgets"], READ),
    _rule(["storage.k8s.io"], ["storageclasses"], READ),
    _rule(["events.k8s.io"], ["events"], READ),
]

# Running the platform's own namespaces; isolation objects (RBAC, NetworkPolicy, quotas) change
# only through code.
OPERATOR_RULES = [
    _rule([""], ["pods", "services", "configmaps", "secrets", "persistentvolumeclaims"], WRITE),
    _rule([""], ["pods/log"], READ),
    _rule(["apps"], ["deployments", "statefulsets", "replicasets"], WRITE),
    _rule(["batch"], ["jobs", "cronjobs"], WRITE),
    _rule(["networking.k8s.io"], ["ingresses"], WRITE),
    _rule(["policy"], ["poddisruptionbudgets"], WRITE),
]

# A research project inside its own workspace: its workloads and their data, never the
# namespace's isolation (NetworkPolicy, quota, RBAC) nor any other namespace. No exec, attach or
# port-forward: through the API they copy data out of the platform (`kubectl cp`), around the
# reviewed export of results.
RESEARCH_RULES = [
    _rule([""], ["pods", "services", "configmaps", "secrets", "persistentvolumeclaims"], WRITE),
    _rule([""], ["pods/log"], READ),
    _rule([""], ["events", "resourcequotas", "limitranges", "serviceaccounts"], READ),
    _rule(["apps"], ["deployments", "statefulsets", "replicasets"], WRITE),
    _rule(["batch"], ["jobs", "cronjobs"], WRITE),
    _rule(["networking.k8s.io"], ["networkpolicies"], READ),
]


def cluster_role(name: str, rules: list[dict[str, Any]], description: str) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {
            "name": name,
            "labels": dict(MANAGED_BY),
            "annotations": {"citadelle.io/description": description},
        },
        "rules": rules,
    }


def group_subject(group: str) -> dict[str, str]:
    return {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": group}


def cluster_role_binding(name: str, role: str, group: str) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name, "labels": dict(MANAGED_BY)},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [group_subject(group)],
    }


def role_binding(ns: str, name: str, role: str, group: str) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": ns, "labels": dict(MANAGED_BY)},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [group_subject(group)],
    }


def image_expression(field: str, registry: str) -> str:
    return (
        f"!has(object.spec.{field}) || object.spec.{field}.all(c, "
        f"c.image.startsWith('{registry}/') && c.image.contains('@sha256:'))"
    )


def admission_policy(name: str, resources: list[str], validations: list[dict[str, str]],
                     description: str) -> dict[str, Any]:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {
            "name": name,
            "labels": dict(MANAGED_BY),
            "annotations": {"citadelle.io/description": description},
        },
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": resources,
                    }
                ]
            },
            "validations": validations,
        },
    }


def admission_binding(policy: str, exempt: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": policy, "labels": dict(MANAGED_BY)},
        "spec": {
            "policyName": policy,
            "validationActions": ["Deny", "Audit"],
            "matchResources": {
                "namespaceSelector": {
                    "matchExpressions": [
                        {
                            "key": "kubernetes.io/metadata.name",
                            "operator": "NotIn",
                            "values": sorted(exempt),
                        }
                    ]
                }
            },
        },
    }


def registry_policy(registry: str) -> dict[str, Any]:
    message = f"images must come from {registry} and be pinned by digest (@sha256:...)"
    return admission_policy(
        "citadelle-images",
        ["pods", "pods/ephemeralcontainers"],
        [
            {"expression": image_expression(f, registry), "message": message}
            for f in ("containers", "initContainers", "ephemeralContainers")
        ],
        "SecNumCloud 19.6: in-region registry only, images pinned by digest",
    )


def service_exposure_policy() -> dict[str, Any]:
    return admission_policy(
        "citadelle-service-exposure",
        ["services"],
        [
            {
                "expression": "!has(object.spec.type) || object.spec.type == 'ClusterIP'",
                "message": "only ClusterIP Services outside the ingress namespace; the edge "
                "load balancer is the platform's only entry",
            }
        ],
        "SecNumCloud 13.2: no Service exposed outside the edge",
    )


def platform_flows(args: BaselineArgs) -> list[dict[str, Any]]:
    """The platform's service path: edge LB -> ingress controller -> backends -> data tier.

    The ingress controller also watches Ingress objects: it alone may reach the API server.
    """
    return [
        network_policy(
            INGRESS_NAMESPACE,
            "allow-edge-to-ingress",
            pod_selector=INGRESS_SELECTOR,
            ingress=[
                {
                    "from": [{"ipBlock": {"cidr": args.edge_cidr}}],
                    "ports": [{"protocol": "TCP", "port": args.ingress_port}],
                }
            ],
        ),
        network_policy(
            INGRESS_NAMESPACE,
            "allow-ingress-to-backends",
            pod_selector=INGRESS_SELECTOR,
            egress=[
                {
                    "to": [
                        {
                            "namespaceSelector": {
                                "matchLabels": {"kubernetes.io/metadata.name": APPS_NAMESPACE}
                            }
                        }
                    ],
                    "ports": [{"protocol": "TCP", "port": args.backend_port}],
                }
            ],
        ),
        network_policy(
            INGRESS_NAMESPACE,
            "allow-ingress-to-api",
            pod_selector=INGRESS_SELECTOR,
            egress=[
                {
                    "to": [{"ipBlock": {"cidr": cidr}} for cidr in args.api_cidrs],
                    "ports": [{"protocol": "TCP", "port": args.api_port}],
                }
            ],
        ),
        network_policy(
            APPS_NAMESPACE,
            "allow-from-ingress",
            ingress=[
                {
                    "from": [
                        {
                            "namespaceSelector": {
                                "matchLabels": {"kubernetes.io/metadata.name": INGRESS_NAMESPACE}
                            },
                            "podSelector": {"matchLabels": dict(INGRESS_SELECTOR)},
                        }
                    ],
                    "ports": [{"protocol": "TCP", "port": args.backend_port}],
                }
            ],
        ),
        network_policy(
            APPS_NAMESPACE,
            "allow-apps-to-data",
            egress=[
                {
                    "to": [{"ipBlock": {"cidr": args.data_cidr}}],
                    "ports": [{"protocol": "TCP", "port": p} for p in args.data_ports],
                }
            ],
        ),
    ]


def baseline_manifests(args: BaselineArgs) -> list[dict[str, Any]]:
    """Every object of the baseline except the security profile (it holds Outputs)."""
    common = {"citadelle.io/environment": args.environment}
    q = args.platform_quota
    objects: list[dict[str, Any]] = []
    # citadelle-system holds configuration only: no pod may run there.
    objects += restricted_namespace(
        SYSTEM_NAMESPACE, args.psa_version, quota=NamespaceQuota(1, 1, 1, pods=0), labels=common,
        annotations={"citadelle.io/purpose": "platform configuration (security profile)"},
        dns=False,
    )
    objects += restricted_namespace(
        INGRESS_NAMESPACE, args.psa_version,
        quota=NamespaceQuota(q.cpu, q.memory_gi, q.storage_gi, node_ports=1), labels=common,
        annotations={"citadelle.io/purpose": "ingress controller behind the edge load balancer"},
    )
    objects += restricted_namespace(
        APPS_NAMESPACE, args.psa_version, quota=q, labels=common,
        annotations={"citadelle.io/purpose": "platform backends"},
    )
    objects += platform_flows(args)
    objects += [
        cluster_role(AUDITOR_ROLE, AUDIT_READ_RULES,
                     "read-only view of the cluster, without secrets or pod logs"),
        cluster_role(OPERATOR_ROLE, OPERATOR_RULES,
                     "run the platform's workloads in its own namespaces"),
        cluster_role(RESEARCH_ROLE, RESEARCH_RULES,
                     "a research project's workloads inside its own workspace"),
        cluster_role_binding("citadelle-auditors", AUDITOR_ROLE, args.auditors_group),
        cluster_role_binding("citadelle-operators-read", AUDITOR_ROLE, args.operators_group),
    ]
    objects += [
        role_binding(ns, "citadelle-operators", OPERATOR_ROLE, args.operators_group)
        for ns in (INGRESS_NAMESPACE, APPS_NAMESPACE)
    ]
    objects += [
        registry_policy(args.registry),
        admission_binding("citadelle-images", list(args.system_namespaces)),
        service_exposure_policy(),
        admission_binding(
            "citadelle-service-exposure", [*args.system_namespaces, INGRESS_NAMESPACE]
        ),
    ]
    return objects


def security_profile(data: Mapping[str, pulumi.Input[str]]) -> dict[str, Any]:
    """The API server's encryption and audit configuration as declared, for checks and audits."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "cluster-security-profile",
            "namespace": SYSTEM_NAMESPACE,
            "labels": dict(MANAGED_BY),
        },
        "data": dict(data),
    }


# --------------------------------------------------------------------------- component


class Baseline(pulumi.ComponentResource):
    """The hardened in-cluster baseline (type citadelle:kubernetes:Baseline)."""

    def __init__(
        self, name: str, args: BaselineArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("citadelle:kubernetes:Baseline", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.objects: list[KubeObject] = []
        namespaces: dict[str, KubeObject] = {}
        for manifest in baseline_manifests(args):
            ns = manifest["metadata"].get("namespace")
            opts_ = child if ns is None else pulumi.ResourceOptions(
                parent=self, depends_on=[namespaces[ns]])
            obj = KubeObject(args.prefix, manifest, opts_)
            if manifest["kind"] == "Namespace":
                namespaces[manifest["metadata"]["name"]] = obj
            self.objects.append(obj)
        for ns, ns_object in namespaces.items():
            self.objects.append(KubeObject(
                args.prefix, no_token_automount(ns),
                pulumi.ResourceOptions(parent=self, depends_on=[ns_object]), patch=True))
        self.objects.append(KubeObject(
            args.prefix, security_profile(args.security_profile),
            pulumi.ResourceOptions(parent=self, depends_on=[namespaces[SYSTEM_NAMESPACE]])))
        self.namespaces = sorted(namespaces)
        self.register_outputs({"namespaces": self.namespaces,
                               "objects": len(self.objects)})
