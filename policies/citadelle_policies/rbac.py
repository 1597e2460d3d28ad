"""Kubernetes RBAC judged by the permission set it grants and to whom, not by role names.

A role is as strong as its rules: wildcards, the verbs that hand out more rights (escalate, bind,
impersonate), the subresources that open a shell or a kubelet (pods/exec, nodes/proxy, ...),
reading every secret of the cluster, or an aggregation whose rules are whatever later carries a
label. A binding is as strong as the role it names (the built-in admin and edit roles read
secrets and exec into pods) and only people of the platform or a namespace's own workloads may
hold it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pulumi_policy import PolicyResource, ResourceValidationArgs, Severity, StackValidationArgs
from pulumi_policy.proxy import UnknownValueError

from citadelle_policies.meta import (
    Config,
    Control,
    Report,
    get,
    items,
    resource_policy,
    stack_policy,
    string_list,
)

# Every version, the Patch and List variants, and custom-resource registrations of the same kinds.
_RBAC_TYPE = re.compile(
    r"^kubernetes:rbac\.authorization\.k8s\.io/[^:]+:(Cluster)?Role(Binding)?(Patch|List)?$")
ROLE_KINDS = ("Role", "ClusterRole")
BINDING_KINDS = ("RoleBinding", "ClusterRoleBinding")
RBAC_TYPES = tuple(f"kubernetes:rbac.authorization.k8s.io/v1:{k}"
                   for k in (*ROLE_KINDS, *BINDING_KINDS))

READ = {"get", "list", "watch", "*"}
GRANTING_VERBS = ("escalate", "bind", "impersonate")
# Subresources that reach into a running pod or a node's kubelet, or mint tokens.
SHELL_RESOURCES = ("pods/exec", "pods/attach", "pods/portforward", "nodes/proxy",
                   "serviceaccounts/token")
AGGREGATE_LABEL = "rbac.authorization.k8s.io/aggregate-to-"
# Kubernetes' own bootstrap roles, by what they grant (kube-apiserver's bootstrap policy).
BUILTIN_ROLES: dict[str, str] = {
    "cluster-admin": "every verb on every resource",
    "admin": "secrets read and write, pods/exec and service-account impersonation",
    "edit": "secrets read and write, pods/exec and service-account impersonation",
}
NOT_PEOPLE = ("system:anonymous", "system:unauthenticated", "system:authenticated",
              "system:masters")

GRANTS = Control(
    name="rbac-least-privilege",
    description=(
        "No role or binding may grant wildcard verbs or resources, escalate/bind/impersonate, "
        "exec/attach/port-forward into pods, the nodes' kubelet proxy, token minting, "
        "cluster-wide secrets read, or rules aggregated from labels"
    ),
    severity=Severity.HIGH,
    snc=("9.3.a", "9.3.f"),
    remediation=(
        "List the exact verbs, API groups and resources a role needs (the platform's operator, "
        "auditor and research roles show the shape); read secrets only inside a namespace "
        "(RoleBinding) or by resourceNames; bind neither admin, edit nor a system: role; drop "
        "aggregationRule and aggregate-to-* labels."
    ),
    applies_to=RBAC_TYPES,
)

SUBJECTS = Control(
    name="rbac-platform-subjects",
    description=(
        "Bindings may grant only to the platform's people (named groups and users) or to a "
        "namespace's own service accounts: never anonymous, unauthenticated or every "
        "authenticated identity, system groups, a default service account, or a service account "
        "of another namespace"
    ),
    severity=Severity.HIGH,
    snc=("9.2.b", "9.3.a", "9.3.f"),
    remediation=(
        "Bind the platform's named groups (citadelle:kubernetes groups, workspace members); give "
        "a workload its own service account in its own namespace, bound by a RoleBinding there; "
        "cluster-wide bindings to service accounts only for system namespaces."
    ),
    config={"systemNamespaces": string_list(
        "namespaces whose service accounts may hold cluster-wide bindings", [])},
)


def is_rbac_type(resource_type: str) -> bool:
    return _RBAC_TYPE.match(resource_type) is not None


@dataclass(frozen=True)
class RbacObject:
    kind: str
    name: str
    namespace: str | None
    body: Any


def rbac_objects(resource_type: str, props: Any) -> Iterator[RbacObject]:
    """The RBAC objects a registration declares (one, or a List's items)."""
    match = _RBAC_TYPE.match(resource_type)
    if match is None:
        return
    bodies = list(items(get(props, "items"))) if resource_type.endswith("List") else [props]
    kind = resource_type.rsplit(":", 1)[1].removesuffix("Patch").removesuffix("List")
    for body in bodies:
        yield RbacObject(kind=str(get(body, "kind") or kind),
                         name=str(get(body, "metadata", "name") or "?"),
                         namespace=get(body, "metadata", "namespace"), body=body)


def _has(values: Any, *wanted: str) -> bool:
    return any(str(v) in wanted for v in items(values))


def rule_findings(rule: Any) -> tuple[list[str], list[str]]:
    """(always too strong, too strong cluster-wide) for one PolicyRule."""
    verbs = {str(v) for v in items(get(rule, "verbs"))}
    resources = {str(r) for r in items(get(rule, "resources"))}
    groups = {str(g) for g in items(get(rule, "apiGroups"))}
    always: list[str] = []
    if "*" in verbs:
        always.append(f"every verb on {', '.join(sorted(resources)) or 'no resource'}")
    if "*" in resources:
        always.append(f"{', '.join(sorted(verbs))} on every resource")
    granting = sorted(verbs & set(GRANTING_VERBS))
    if granting:
        always.append(f"{', '.join(granting)} (hands out more rights than it holds)")
    shells = sorted(resources & set(SHELL_RESOURCES))
    if shells and verbs:
        always.append(f"{', '.join(sorted(verbs))} on {', '.join(shells)}")
    cluster: list[str] = []
    core = not groups or bool(groups & {"", "*"})
    if core and "secrets" in resources and verbs & READ and not list(
            items(get(rule, "resourceNames"))):
        cluster.append("reads every secret")
    return always, cluster


def role_findings(body: Any) -> tuple[list[str], list[str]]:
    always: list[str] = []
    cluster: list[str] = []
    for rule in items(get(body, "rules")):
        strong, wide = rule_findings(rule)
        always += strong
        cluster += wide
    if get(body, "aggregationRule") is not None:
        always.append("aggregationRule: its rules are those of every ClusterRole that carries "
                      "the selected labels, now or later")
    labels = get(body, "metadata", "labels") or {}
    for label in labels:
        if str(label).startswith(AGGREGATE_LABEL) and str(labels[label]).lower() == "true":
            always.append(f"label {label}: adds its rules to the built-in "
                          f"{str(label).removeprefix(AGGREGATE_LABEL)} role")
    return always, cluster


def check_grants(args: StackValidationArgs, config: Config, report: Report) -> None:
    roles: dict[tuple[str, str | None], list[str]] = {}
    cluster_reads: dict[tuple[str, str | None], list[str]] = {}
    bindings: list[tuple[PolicyResource, RbacObject]] = []
    for resource in args.resources:
        try:
            for obj in rbac_objects(resource.resource_type, resource.props):
                if obj.kind in ROLE_KINDS:
                    always, cluster = role_findings(obj.body)
                    key = (obj.name, obj.namespace if obj.kind == "Role" else None)
                    roles[key] = always
                    cluster_reads[key] = cluster
                    if always:
                        report(f"{obj.kind} {obj.name} grants {'; '.join(always)}",
                               resource.urn)
                elif obj.kind in BINDING_KINDS:
                    bindings.append((resource, obj))
        except UnknownValueError:
            continue  # named by security-inputs-known
    for resource, obj in bindings:
        try:
            strong = _binding_grants(obj, roles, cluster_reads)
        except UnknownValueError:
            continue
        if strong:
            scope = "cluster-wide" if obj.kind == "ClusterRoleBinding" else (
                f"in namespace {obj.namespace or 'default'}")
            report(f"{obj.kind} {obj.name} grants {scope}: {'; '.join(strong)}", resource.urn)


def _binding_grants(obj: RbacObject, roles: dict[tuple[str, str | None], list[str]],
                    cluster_reads: dict[tuple[str, str | None], list[str]]) -> list[str]:
    """What the role a binding names grants (the stack's own roles, or a built-in one)."""
    ref_kind = str(get(obj.body, "roleRef", "kind") or "ClusterRole")
    role = str(get(obj.body, "roleRef", "name"))
    key = (role, obj.namespace if ref_kind == "Role" else None)
    strong = list(roles.get(key, []))
    if obj.kind == "ClusterRoleBinding":
        strong += cluster_reads.get(key, [])
    if key not in roles and ref_kind == "ClusterRole":
        if role in BUILTIN_ROLES:
            strong.append(f"the built-in {role} role ({BUILTIN_ROLES[role]})")
        elif role.startswith("system:"):
            strong.append(f"{role}, a role of the cluster's own components")
    return strong


def subject_findings(obj: RbacObject, system: list[str]) -> Iterator[str]:
    for subject in items(get(obj.body, "subjects")):
        kind = str(get(subject, "kind"))
        name = str(get(subject, "name"))
        if kind in ("Group", "User") and (name in NOT_PEOPLE or name.startswith("system:")):
            yield f"{kind} {name} is not a person of the platform"
        if kind != "ServiceAccount":
            continue
        namespace = get(subject, "namespace") or obj.namespace
        if name == "default":
            yield (f"ServiceAccount {namespace}/default: every pod of the namespace without an "
                   "account of its own runs as it")
        elif obj.kind == "ClusterRoleBinding" and namespace not in system:
            yield (f"ServiceAccount {namespace}/{name} gets a cluster-wide binding (only system "
                   "namespaces' accounts may)")
        elif obj.kind == "RoleBinding" and namespace != (obj.namespace or "default"):
            yield (f"ServiceAccount {namespace}/{name} of another namespace gets rights in "
                   f"{obj.namespace or 'default'}")


def check_subjects(args: ResourceValidationArgs, config: Config, report: Report) -> None:
    system = [str(n) for n in config.get("systemNamespaces") or []]
    objects = [o for o in rbac_objects(args.resource_type, args.props)
               if o.kind in BINDING_KINDS]
    if not objects:
        args.not_applicable("not a binding")
    for obj in objects:
        for finding in subject_findings(obj, system):
            report(f"{obj.kind} {obj.name}: {finding}")


POLICIES = [stack_policy(GRANTS, check_grants), resource_policy(SUBJECTS, check_subjects)]
