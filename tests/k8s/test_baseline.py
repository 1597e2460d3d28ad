"""The in-cluster baseline: PSA restricted, default deny, quotas, least-privilege RBAC."""

from __future__ import annotations

import pytest
from k8s_support import (
    ENVIRONMENTS,
    EXISTING_API_CIDR,
    MODES,
    kube_objects,
    namespaced,
    of_kind,
    recording_for,
    stack_values,
)

from citadelle.plan.offline import Recording

pytestmark = pytest.mark.unit

PSA_MODES = ("enforce", "audit", "warn")
WORKLOAD_KINDS = {"Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job",
                  "CronJob", "Service"}


@pytest.fixture(params=[(e, m) for e in ENVIRONMENTS for m in MODES],
                ids=lambda p: f"{p[0]}-{p[1]}")
def recording(request: pytest.FixtureRequest) -> Recording:
    env, mode = request.param
    return recording_for(env, mode)


def _namespaces(recording: Recording) -> list[str]:
    return sorted(n.inputs["metadata"]["name"] for n in of_kind(recording, "Namespace"))


def _expected_psa_version(env: str) -> str:
    k8s = stack_values(env)["kubernetes"]
    return str(k8s.get("podSecurityVersion") or "v1." + k8s["version"].split(".")[1])


@pytest.mark.snc("9.7")
def test_every_namespace_enforces_psa_restricted_at_a_pinned_version(
    recording: Recording,
) -> None:
    version = _expected_psa_version(recording.stack)
    namespaces = of_kind(recording, "Namespace")
    assert len(namespaces) >= 3 + len(stack_values(recording.stack)["workspaces"])
    for ns in namespaces:
        labels = ns.inputs["metadata"]["labels"]
        for mode in PSA_MODES:
            assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted", ns.name
            assert labels[f"pod-security.kubernetes.io/{mode}-version"] == version, ns.name


def test_system_namespaces_are_exempt_only_by_not_being_declared(recording: Recording) -> None:
    system = {n["name"] for n in stack_values(recording.stack)["kubernetes"]["systemNamespaces"]}
    assert system == {"kube-system"}
    assert not system & set(_namespaces(recording))
    # Every object lives in a namespace the program declares (or is cluster-scoped).
    declared = set(_namespaces(recording))
    for obj in kube_objects(recording):
        ns = obj.inputs["metadata"].get("namespace")
        assert ns is None or ns in declared, obj.name


@pytest.mark.snc("13.2")
def test_every_namespace_starts_from_default_deny_both_ways(recording: Recording) -> None:
    for ns in _namespaces(recording):
        deny = [p for p in namespaced(recording, "NetworkPolicy", ns)
                if p.inputs["metadata"]["name"] == "default-deny"]
        assert len(deny) == 1, ns
        spec = deny[0].inputs["spec"]
        assert spec["podSelector"] == {}
        assert sorted(spec["policyTypes"]) == ["Egress", "Ingress"]
        assert spec.get("ingress", []) == [] and spec.get("egress", []) == []


def test_allowed_flows_are_exactly_the_platform_path(recording: Recording) -> None:
    values = stack_values(recording.stack)
    tiers = values["network"]["tiers"]
    flows = {(p.inputs["metadata"]["namespace"], p.inputs["metadata"]["name"]): p.inputs["spec"]
             for p in of_kind(recording, "NetworkPolicy")
             if not p.inputs["metadata"]["namespace"].startswith("ws-")}
    assert sorted(flows) == sorted([
        ("citadelle-system", "default-deny"),
        ("citadelle-ingress", "default-deny"), ("citadelle-ingress", "allow-dns"),
        ("citadelle-ingress", "allow-edge-to-ingress"),
        ("citadelle-ingress", "allow-ingress-to-backends"),
        ("citadelle-ingress", "allow-ingress-to-api"),
        ("citadelle-apps", "default-deny"), ("citadelle-apps", "allow-dns"),
        ("citadelle-apps", "allow-from-ingress"), ("citadelle-apps", "allow-apps-to-data"),
    ])
    edge = flows[("citadelle-ingress", "allow-edge-to-ingress")]["ingress"][0]
    assert edge["from"] == [{"ipBlock": {"cidr": tiers["edge"]["cidr"]}}]
    data = flows[("citadelle-apps", "allow-apps-to-data")]["egress"][0]
    assert data["to"] == [{"ipBlock": {"cidr": tiers["data"]["cidr"]}}]
    assert sorted(p["port"] for p in data["ports"]) == sorted(values["network"]["dataPorts"])
    api = flows[("citadelle-ingress", "allow-ingress-to-api")]["egress"][0]
    magnum = recording.stack_outputs["kubernetes"]["mode"] == "magnum"
    expected_api = tiers["app"]["cidr"] if magnum else EXISTING_API_CIDR
    assert api["to"] == [{"ipBlock": {"cidr": expected_api}}]
    assert api["ports"] == [{"protocol": "TCP", "port": 6443}]
    dns = flows[("citadelle-apps", "allow-dns")]["egress"][0]
    assert dns["to"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "kube-system"}
    assert {(p["protocol"], p["port"]) for p in dns["ports"]} == {("UDP", 53), ("TCP", 53)}


def test_every_namespace_has_quota_and_limits(recording: Recording) -> None:
    for ns in _namespaces(recording):
        (quota,) = namespaced(recording, "ResourceQuota", ns)
        (limits,) = namespaced(recording, "LimitRange", ns)
        hard = quota.inputs["spec"]["hard"]
        assert hard["services.loadbalancers"] == "0"
        expected_node_ports = "1" if ns == "citadelle-ingress" else "0"
        assert hard["services.nodeports"] == expected_node_ports, ns
        types = {item["type"] for item in limits.inputs["spec"]["limits"]}
        assert types == {"Container", "PersistentVolumeClaim"}
    (system_quota,) = namespaced(recording, "ResourceQuota", "citadelle-system")
    assert system_quota.inputs["spec"]["hard"]["pods"] == "0"


def test_default_service_accounts_never_automount_a_token(recording: Recording) -> None:
    patches = [r for r in kube_objects(recording) if r.type.endswith(":ServiceAccountPatch")]
    assert sorted(p.inputs["metadata"]["namespace"] for p in patches) == _namespaces(recording)
    for patch in patches:
        assert patch.inputs["metadata"]["name"] == "default"
        assert patch.inputs["automountServiceAccountToken"] is False


@pytest.mark.snc("9.3")
def test_no_binding_grants_cluster_admin_or_binds_a_person(recording: Recording) -> None:
    bindings = of_kind(recording, "ClusterRoleBinding") + of_kind(recording, "RoleBinding")
    assert bindings
    for binding in bindings:
        assert binding.inputs["roleRef"]["name"] not in ("cluster-admin", "admin", "edit")
        assert {s["kind"] for s in binding.inputs["subjects"]} == {"Group"}
    cluster_wide = {b.inputs["metadata"]["name"]: b.inputs["roleRef"]["name"]
                    for b in of_kind(recording, "ClusterRoleBinding")}
    assert cluster_wide == {"citadelle-auditors": "citadelle-auditor",
                            "citadelle-operators-read": "citadelle-auditor"}


def test_roles_grant_no_wildcard_no_secret_read_cluster_wide_no_isolation_write(
    recording: Recording,
) -> None:
    roles = {r.inputs["metadata"]["name"]: r.inputs["rules"] for r in of_kind(recording,
                                                                              "ClusterRole")}
    assert sorted(roles) == ["citadelle-auditor", "citadelle-operator", "citadelle-research"]
    for rules in roles.values():
        for rule in rules:
            assert "*" not in rule["verbs"] and "*" not in rule["resources"]
            assert "escalate" not in rule["verbs"] and "bind" not in rule["verbs"]
    auditor = roles["citadelle-auditor"]
    assert all(set(r["verbs"]) == {"get", "list", "watch"} for r in auditor)
    assert not any({"secrets", "configmaps", "pods/log"} & set(r["resources"]) for r in auditor)
    # Data leaves a workspace only through the reviewed export: no copy through the API.
    tunnels = {"pods/exec", "pods/attach", "pods/portforward", "pods/proxy", "services/proxy"}
    for name, rules in roles.items():
        assert not any(tunnels & set(r["resources"]) for r in rules), name
    isolation = {"networkpolicies", "roles", "rolebindings", "resourcequotas", "limitranges"}
    for name in ("citadelle-operator", "citadelle-research"):
        for rule in roles[name]:
            if isolation & set(rule["resources"]):
                assert set(rule["verbs"]) <= {"get", "list", "watch"}, (name, rule)


@pytest.mark.snc("19.6")
def test_images_only_from_the_registry_pinned_by_digest(recording: Recording) -> None:
    registry = stack_values(recording.stack)["kubernetes"]["registry"]
    # The platform declares no workload at all: nothing to pin, nothing privileged.
    assert not {o.inputs["kind"] for o in kube_objects(recording)} & WORKLOAD_KINDS
    policies = {p.inputs["metadata"]["name"]: p.inputs["spec"]
                for p in of_kind(recording, "ValidatingAdmissionPolicy")}
    images = policies["citadelle-images"]
    expressions = [v["expression"] for v in images["validations"]]
    assert len(expressions) == 3
    for expression in expressions:
        assert f"c.image.startsWith('{registry}/')" in expression
        assert "c.image.contains('@sha256:')" in expression
    assert images["failurePolicy"] == "Fail"
    bindings = {b.inputs["metadata"]["name"]: b.inputs["spec"]
                for b in of_kind(recording, "ValidatingAdmissionPolicyBinding")}
    assert bindings["citadelle-images"]["validationActions"] == ["Deny", "Audit"]
    exempt = bindings["citadelle-images"]["matchResources"]["namespaceSelector"][
        "matchExpressions"][0]["values"]
    assert exempt == ["kube-system"]
    service_exempt = bindings["citadelle-service-exposure"]["matchResources"][
        "namespaceSelector"]["matchExpressions"][0]["values"]
    assert service_exempt == ["citadelle-ingress", "kube-system"]
