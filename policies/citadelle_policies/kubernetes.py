"""In-cluster baseline: Pod Security, default-deny, workload privileges, RBAC, exposure, images."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from pulumi_policy import ResourceValidationArgs, Severity, StackValidationArgs

from citadelle_policies.meta import (
    Config,
    Control,
    Report,
    get,
    items,
    number,
    resource_policy,
    stack_policy,
    string_list,
)

NAMESPACE = "kubernetes:core/v1:Namespace"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
SERVICE = "kubernetes:core/v1:Service"
CLUSTER_ROLE_BINDING = "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding"
ROLE_BINDING = "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding"
# Where each workload kind keeps its pod spec, whatever its API version (apps/v1, a beta,
# extensions) and for its server-side-apply Patch and List variants.
POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "PodTemplate": ("template", "spec"),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "ReplicationController": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
_WORKLOAD_TYPE = re.compile(r"^kubernetes:[^:]+:(?P<kind>[A-Za-z]+?)(?P<variant>Patch|List)?$")
PSA = "pod-security.kubernetes.io/"
_DIGEST_RE = re.compile(r"@sha256:[0-9a-f]{64}$")

SYSTEM_NAMESPACES = string_list(
    "namespaces exempt from the workload baseline (citadelle:kubernetes.systemNamespaces)", [])

PSA_CONTROL = Control(
    name="namespace-pod-security-restricted",
    description=(
        "Every namespace must enforce, audit and warn at the Pod Security 'restricted' level, "
        "except the named system namespaces"
    ),
    severity=Severity.HIGH,
    snc=("9.7.a",),
    bp028=("R64", "R65"),
    remediation=(
        "Label the namespace pod-security.kubernetes.io/{enforce,audit,warn}=restricted with "
        "pinned *-version labels, or list it with a reason in "
        "citadelle:kubernetes.systemNamespaces."
    ),
    config={"systemNamespaces": SYSTEM_NAMESPACES},
    applies_to=(NAMESPACE,),
)

DEFAULT_DENY = Control(
    name="namespace-default-deny",
    description=(
        "Every namespace must hold a default-deny NetworkPolicy for both ingress and egress"
    ),
    severity=Severity.HIGH,
    snc=("13.2.a", "9.7.a"),
    bp028=("R78",),
    remediation=(
        "Add a NetworkPolicy with podSelector: {} and policyTypes [Ingress, Egress] and no rules "
        "in the namespace, then allow only the flows it needs with further policies."
    ),
    config={"systemNamespaces": SYSTEM_NAMESPACES},
    applies_to=(NAMESPACE, NETWORK_POLICY),
)

PRIVILEGED = Control(
    name="no-privileged-containers",
    description=(
        "Containers must not be privileged, allow privilege escalation or add capabilities"
    ),
    severity=Severity.CRITICAL,
    snc=("9.7.a",),
    bp028=("R64",),
    remediation=(
        "Set securityContext.privileged: false, allowPrivilegeEscalation: false and "
        "capabilities: {drop: [ALL]} on every container; move node-level agents to a system "
        "namespace listed with a reason."
    ),
    config={"systemNamespaces": SYSTEM_NAMESPACES},
)

HOST = Control(
    name="no-host-access",
    description=(
        "Pods must not use hostPath volumes, the host network, PID or IPC namespaces, or host ports"
    ),
    severity=Severity.CRITICAL,
    snc=("9.7.a", "13.2.a"),
    bp028=("R65",),
    remediation=(
        "Replace hostPath by a PersistentVolumeClaim or an emptyDir, and remove hostNetwork, "
        "hostPID, hostIPC and hostPort."
    ),
    config={"systemNamespaces": SYSTEM_NAMESPACES},
)

ROOT = Control(
    name="no-root-containers",
    description="Containers must run as a non-root user (runAsNonRoot: true, never UID 0)",
    severity=Severity.HIGH,
    snc=("9.7.a",),
    bp028=("R64",),
    remediation=(
        "Set securityContext.runAsNonRoot: true (pod or container) and a non-zero runAsUser; "
        "build the image with a numeric non-root USER."
    ),
    config={"systemNamespaces": SYSTEM_NAMESPACES},
)

CLUSTER_ADMIN = Control(
    name="no-cluster-admin-binding",
    description="No binding may grant the cluster-admin role to people, groups or workloads",
    severity=Severity.HIGH,
    snc=("9.3.a", "9.3.f"),
    remediation=(
        "Bind the platform's scoped roles (operator, auditor, workspace member) instead; break-"
        "glass cluster-admin access goes through the provider's audited procedure, not a binding "
        "in code."
    ),
    config={"privilegedRoles": string_list("roles never bound in code", ["cluster-admin"])},
    applies_to=(CLUSTER_ROLE_BINDING, ROLE_BINDING),
)

EXPOSURE = Control(
    name="service-exposure-edge-only",
    description="Services of type LoadBalancer or NodePort are allowed only in the edge namespaces",
    severity=Severity.HIGH,
    snc=("13.2.a", "9.6.d"),
    remediation=(
        "Use a ClusterIP Service behind the platform's ingress in the edge namespace; only "
        "namespaces of `edgeNamespaces` may expose LoadBalancer or NodePort Services."
    ),
    config={"edgeNamespaces": string_list("namespaces that may expose Services", [])},
    applies_to=(SERVICE,),
)

REGISTRY = Control(
    name="image-allowed-registry",
    description="Container images must come from the in-region registry named in config",
    severity=Severity.CRITICAL,
    snc=("12.10.a", "19.6.c"),
    bp028=("R59",),
    remediation=(
        "Mirror the image into the in-region registry (citadelle:kubernetes.registry) and "
        "reference it as <registry>/<path>@sha256:<digest>."
    ),
    config={"allowedRegistries": string_list("registry hosts images may come from"),
            "systemNamespaces": SYSTEM_NAMESPACES},
)

DIGEST = Control(
    name="image-pinned-digest",
    description="Container images must be pinned by digest (@sha256:...), never by a mutable tag",
    severity=Severity.HIGH,
    snc=("12.10.c", "14.2.c"),
    remediation=(
        "Reference every image as <registry>/<path>@sha256:<digest> (the digest the registry's "
        "scan approved); a tag can be moved to other content after review."
    ),
    config={"systemNamespaces": SYSTEM_NAMESPACES},
)


def namespace_of(props: Any) -> str:
    return str(get(props, "metadata", "namespace") or "default")


def pod_specs(args: ResourceValidationArgs, config: Config) -> list[Any]:
    """The pod specs a workload registration declares (one, or a List's items), outside the
    system namespaces; not applicable to anything else. A Patch declares only what it changes:
    see ``is_patch``."""
    match = _WORKLOAD_TYPE.match(args.resource_type)
    if match is None or match["kind"] not in POD_SPEC_PATHS:
        args.not_applicable(f"{args.resource_type} is not a workload")
    assert match is not None  # not_applicable raises
    objects = (list(items(get(args.props, "items"))) if match["variant"] == "List"
               else [args.props])
    system = config.get("systemNamespaces") or []
    judged = [o for o in objects if namespace_of(o) not in system]
    if objects and not judged:
        args.not_applicable(f"system namespace {namespace_of(objects[0])}")
    return [get(o, *POD_SPEC_PATHS.get(str(get(o, "kind")), POD_SPEC_PATHS[match["kind"]]))
            for o in judged]


def containers(spec: Any) -> Iterator[tuple[str, Any]]:
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for container in items(get(spec, key)):
            yield str(get(container, "name") or "?"), container


def check_psa(args: ResourceValidationArgs, config: Config, report: Report) -> None:
    name = str(get(args.props, "metadata", "name") or args.name)
    if name in (config.get("systemNamespaces") or []):
        args.not_applicable(f"system namespace {name}")
    labels = get(args.props, "metadata", "labels") or {}
    wrong = [f"{PSA}{mode}={labels.get(PSA + mode) or '(unset)'}"
             for mode in ("enforce", "audit", "warn") if labels.get(PSA + mode) != "restricted"]
    unpinned = [f"{PSA}{mode}-version" for mode in ("enforce", "audit", "warn")
                if not labels.get(f"{PSA}{mode}-version")
                or labels.get(f"{PSA}{mode}-version") == "latest"]
    if wrong:
        report(f"namespace {name}: {', '.join(wrong)} (required: restricted)")
    elif unpinned:
        report(f"namespace {name}: unpinned {', '.join(unpinned)}")


def _deny_all(policy: Any) -> set[str]:
    """The directions a NetworkPolicy denies for every pod of its namespace."""
    spec = get(policy, "spec") or {}
    selector = get(spec, "podSelector") or {}
    if get(selector, "matchLabels") or get(selector, "matchExpressions"):
        return set()
    types = {str(t) for t in items(get(spec, "policyTypes"))} or {"Ingress"}
    denied = set()
    if "Ingress" in types and not list(items(get(spec, "ingress"))):
        denied.add("Ingress")
    if "Egress" in types and not list(items(get(spec, "egress"))):
        denied.add("Egress")
    return denied


def check_default_deny(args: StackValidationArgs, config: Config, report: Report) -> None:
    system = set(config.get("systemNamespaces") or [])
    denied: dict[str, set[str]] = {}
    for resource in args.resources:
        if resource.resource_type == NETWORK_POLICY:
            denied.setdefault(namespace_of(resource.props), set()).update(
                _deny_all(resource.props))
    for resource in args.resources:
        if resource.resource_type != NAMESPACE:
            continue
        name = str(get(resource.props, "metadata", "name") or resource.name)
        if name in system:
            continue
        missing = {"Ingress", "Egress"} - denied.get(name, set())
        if missing:
            report(f"namespace {name} has no default-deny {' or '.join(sorted(missing))} "
                   "NetworkPolicy", resource.urn)


def is_patch(args: ResourceValidationArgs) -> bool:
    """A server-side-apply Patch leaves unset fields as they are: only what it sets is judged."""
    return args.resource_type.endswith("Patch")


def check_privileged(args: ResourceValidationArgs, config: Config, report: Report) -> None:
    for spec in pod_specs(args, config):
        _judge_privileged(spec, is_patch(args), report)


def _judge_privileged(spec: Any, partial: bool, report: Report) -> None:
    for name, container in containers(spec):
        context = get(container, "securityContext") or {}
        if get(context, "privileged") is True:
            report(f"container {name} is privileged")
        escalation = get(context, "allowPrivilegeEscalation")
        if escalation is not False and not (partial and escalation is None):
            report(f"container {name} does not set allowPrivilegeEscalation: false")
        added = [str(c) for c in items(get(context, "capabilities", "add"))]
        if added:
            report(f"container {name} adds capabilities {', '.join(added)}")


def check_host(args: ResourceValidationArgs, config: Config, report: Report) -> None:
    for spec in pod_specs(args, config):
        _judge_host(spec, report)


def _judge_host(spec: Any, report: Report) -> None:
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if get(spec, flag) is True:
            report(f"pod spec sets {flag}: true")
    for volume in items(get(spec, "volumes")):
        if get(volume, "hostPath") is not None:
            report(f"volume {get(volume, 'name')} mounts hostPath "
                   f"{get(volume, 'hostPath', 'path')}")
    for name, container in containers(spec):
        for port in items(get(container, "ports")):
            if get(port, "hostPort"):
                report(f"container {name} binds hostPort {number(get(port, 'hostPort'))}")


def check_root(args: ResourceValidationArgs, config: Config, report: Report) -> None:
    for spec in pod_specs(args, config):
        _judge_root(spec, is_patch(args), report)


def _judge_root(spec: Any, partial: bool, report: Report) -> None:
    pod_context = get(spec, "securityContext") or {}
    for name, container in containers(spec):
        context = get(container, "securityContext") or {}
        non_root = get(context, "runAsNonRoot")
        if non_root is None:
            non_root = get(pod_context, "runAsNonRoot")
        user = get(context, "runAsUser")
        if user is None:
            user = get(pod_context, "runAsUser")
        if number(user) == 0:
            report(f"container {name} runs as UID 0")
        elif non_root is not True and not (partial and non_root is None):
            report(f"container {name} does not set runAsNonRoot: true")


def check_cluster_admin(args: ResourceValidationArgs, config: Config,
                        report: Report) -> None:
    role = get(args.props, "roleRef", "name")
    if role in (config.get("privilegedRoles") or []):
        subjects = [f"{get(s, 'kind')}:{get(s, 'name')}"
                    for s in items(get(args.props, "subjects"))]
        report(f"binds {role} to {', '.join(subjects) or 'no subject'}")


def check_exposure(args: ResourceValidationArgs, config: Config, report: Report) -> None:
    kind = get(args.props, "spec", "type")
    if kind in ("LoadBalancer", "NodePort"):
        namespace = namespace_of(args.props)
        if namespace not in (config.get("edgeNamespaces") or []):
            report(f"Service of type {kind} in namespace {namespace}, outside the edge "
                   f"namespaces ({', '.join(config.get('edgeNamespaces') or []) or 'none'})")


def image_registry(image: str) -> str | None:
    first, sep, _ = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first.lower()
    return None  # Docker Hub shorthand (e.g. "nginx", "library/nginx")


def check_registry(args: ResourceValidationArgs, config: Config, report: Report) -> None:
    allowed = [r.lower() for r in config.get("allowedRegistries") or []]
    for name, container in (c for spec in pod_specs(args, config) for c in containers(spec)):
        image = str(get(container, "image") or "")
        registry = image_registry(image)
        if registry not in allowed:
            report(f"container {name} image {image!r} comes from "
                   f"{registry or 'Docker Hub (implicit)'}, not from "
                   f"{', '.join(allowed) or 'a configured registry'}")


def check_digest(args: ResourceValidationArgs, config: Config, report: Report) -> None:
    for name, container in (c for spec in pod_specs(args, config) for c in containers(spec)):
        image = str(get(container, "image") or "")
        if not _DIGEST_RE.search(image):
            report(f"container {name} image {image!r} is not pinned by digest")


POLICIES = [
    resource_policy(PSA_CONTROL, check_psa),
    stack_policy(DEFAULT_DENY, check_default_deny),
    resource_policy(PRIVILEGED, check_privileged),
    resource_policy(HOST, check_host),
    resource_policy(ROOT, check_root),
    resource_policy(CLUSTER_ADMIN, check_cluster_admin),
    resource_policy(EXPOSURE, check_exposure),
    resource_policy(REGISTRY, check_registry),
    resource_policy(DIGEST, check_digest),
]
