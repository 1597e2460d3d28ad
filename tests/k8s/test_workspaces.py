"""Research workspaces: isolated, quota'd, keyed, and independent of one another."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pytest
from k8s_support import (
    ENVIRONMENTS,
    MODES,
    Values,
    namespaced,
    plan,
    recording_for,
    stack_values,
    workspace_resources,
)

from citadelle.plan.offline import RecordedResource, Recording, is_secret

pytestmark = pytest.mark.unit

SECRET = "openstack:keymanager/secretV1:SecretV1"
CONTAINER = "openstack:objectstorage/container:Container"


def _cases() -> list[tuple[str, str, str]]:
    return [(env, mode, w["id"]) for env in ENVIRONMENTS for mode in MODES
            for w in stack_values(env)["workspaces"]]


@pytest.fixture(params=_cases(), ids="-".join)
def case(request: pytest.FixtureRequest) -> tuple[Recording, dict[str, Any]]:
    env, mode, workspace_id = request.param
    workspace = next(w for w in stack_values(env)["workspaces"] if w["id"] == workspace_id)
    return recording_for(env, mode), workspace


@pytest.mark.snc("9.7", "13.2")
def test_workspace_traffic_reaches_only_dns_and_object_storage(
    case: tuple[Recording, dict[str, Any]],
) -> None:
    recording, workspace = case
    ns = f"ws-{workspace['id']}"
    storage = [ipaddress.ip_network(c) for c in
               stack_values(recording.stack)["kubernetes"]["objectStorageCidrs"]]
    policies = {p.inputs["metadata"]["name"]: p.inputs["spec"]
                for p in namespaced(recording, "NetworkPolicy", ns)}
    assert sorted(policies) == ["allow-egress", "default-deny"]
    for spec in policies.values():
        assert spec["podSelector"] == {}
        assert not spec.get("ingress"), "nothing may connect into a workspace"
    dns, object_storage = policies["allow-egress"]["egress"]
    assert dns["to"] == [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "kube-system"}},
        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}]
    assert object_storage["ports"] == [{"protocol": "TCP", "port": 443}]
    for peer in object_storage["to"]:
        assert set(peer) == {"ipBlock"}
        assert any(ipaddress.ip_network(peer["ipBlock"]["cidr"]).subnet_of(s) for s in storage)


def test_no_policy_anywhere_lets_one_workspace_reach_another() -> None:
    recording = recording_for("mirror", "magnum")
    workspaces = {f"ws-{w['id']}" for w in stack_values("mirror")["workspaces"]}
    assert len(workspaces) == 2
    for policy in [r for r in recording.resources if r.type.endswith(":NetworkPolicy")]:
        spec = policy.inputs["spec"]
        for rule in spec.get("ingress", []) + spec.get("egress", []):
            for peer in rule.get("from", []) + rule.get("to", []):
                selector = peer.get("namespaceSelector", {}).get("matchLabels", {})
                assert selector.get("kubernetes.io/metadata.name") not in workspaces
                if "namespaceSelector" in peer:
                    assert selector, "an empty namespaceSelector would match every workspace"


@pytest.mark.snc("9.3")
def test_members_group_is_bound_to_the_research_role_in_its_namespace_only(
    case: tuple[Recording, dict[str, Any]],
) -> None:
    recording, workspace = case
    bindings = [b for b in recording.resources if b.type.endswith(":RoleBinding")
                and any(s["name"] == workspace["membersGroup"] for s in b.inputs["subjects"])]
    assert len(bindings) == 1
    binding = bindings[0].inputs
    assert binding["metadata"]["namespace"] == f"ws-{workspace['id']}"
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io",
                                  "kind": "ClusterRole", "name": "citadelle-research"}
    assert binding["subjects"] == [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io",
                                    "name": workspace["membersGroup"]}]


def test_quota_and_limits_are_the_approved_ones(case: tuple[Recording, dict[str, Any]]) -> None:
    recording, workspace = case
    ns = f"ws-{workspace['id']}"
    quotas = workspace["quotas"]
    (quota,) = namespaced(recording, "ResourceQuota", ns)
    assert quota.inputs["spec"]["hard"] == {
        "requests.cpu": str(quotas["cpu"]),
        "limits.cpu": str(quotas["cpu"]),
        "requests.memory": f"{quotas['memoryGi']}Gi",
        "limits.memory": f"{quotas['memoryGi']}Gi",
        "requests.storage": f"{quotas['storageGi']}Gi",
        "services.loadbalancers": "0",
        "services.nodeports": "0",
    }
    (limits,) = namespaced(recording, "LimitRange", ns)
    container = next(x for x in limits.inputs["spec"]["limits"] if x["type"] == "Container")
    assert container["max"] == {"cpu": str(quotas["cpu"]), "memory": f"{quotas['memoryGi']}Gi"}


def test_namespace_carries_approval_and_expiry(case: tuple[Recording, dict[str, Any]]) -> None:
    recording, workspace = case
    (ns,) = [n for n in recording.resources if n.type == "kubernetes:core/v1:Namespace"
             and n.inputs["metadata"]["name"] == f"ws-{workspace['id']}"]
    annotations = ns.inputs["metadata"]["annotations"]
    assert annotations["citadelle.io/approval-ref"] == workspace["approvalRef"]
    assert annotations["citadelle.io/expires"] == workspace["expires"]
    assert annotations["citadelle.io/extractions"] == ",".join(workspace["extractions"])
    assert ns.inputs["metadata"]["labels"]["citadelle.io/workspace"] == workspace["id"]


@pytest.mark.snc("10.5", "9.7")
def test_dedicated_key_and_container_readable_only_by_the_workspace(
    case: tuple[Recording, dict[str, Any]],
) -> None:
    recording, workspace = case
    env = recording.stack
    reader = workspace.get("reader") or f"citadelle-{env}-ws-{workspace['id']}"
    owned = workspace_resources(recording, workspace["id"])
    (key,) = [r for r in owned if r.type == SECRET]
    assert is_secret(key.inputs["payload"])
    assert key.inputs["bitLength"] == 256
    assert key.inputs["acl"]["read"] == {"projectAccess": False, "users": [reader]}
    (container,) = [r for r in owned if r.type == CONTAINER]
    assert container.inputs["name"] == f"citadelle-{env}-ws-{workspace['id']}"
    assert container.inputs["containerRead"] == f"*:{reader}"
    assert ".r:" not in container.inputs["containerRead"]
    assert container.inputs["containerWrite"] == ""
    assert container.inputs["versioning"] is True
    assert container.inputs["metadata"]["key-ref"] == key.outputs["secretRef"]
    # Every key and container of the environment is distinct per workspace.
    all_keys = [r for r in recording.of_type(SECRET) if r.inputs["metadata"]["purpose"]
                == "workspace"]
    assert len({k.outputs["secretRef"] for k in all_keys}) == len(
        stack_values(env)["workspaces"])


def _fingerprint(resources: list[RecordedResource]) -> dict[str, str]:
    return {r.urn: json.dumps([r.inputs, r.provider, r.parent], sort_keys=True)
            for r in resources}


def _add_workspace(values: Values) -> None:
    template = values["workspaces"][0]
    values["workspaces"].insert(0, dict(template, id="added-project",
                                        membersGroup="ws-added-project",
                                        approvalRef="CESREES-2026-9999"))


def _remove_first_workspace(values: Values) -> None:
    del values["workspaces"][0]


@pytest.mark.parametrize("change", [_add_workspace, _remove_first_workspace],
                         ids=["add", "remove"])
def test_adding_or_removing_a_workspace_leaves_the_others_byte_identical(change: Any) -> None:
    before = recording_for("mirror", "magnum")
    after = plan("mirror", change)
    kept = [w["id"] for w in stack_values("mirror")["workspaces"]]
    if change is _remove_first_workspace:
        kept = kept[1:]
    assert kept
    for workspace_id in kept:
        old = _fingerprint(workspace_resources(before, workspace_id))
        new = _fingerprint(workspace_resources(after, workspace_id))
        assert len(old) == 10
        assert new == old, workspace_id
    # The baseline and the cluster do not change either.
    shared = [r for r in before.resources if ":ws-" not in r.urn and "-ws-" not in r.name]
    by_urn = after.by_urn()
    for resource in shared:
        twin = by_urn[resource.urn]
        assert json.dumps(twin.inputs, sort_keys=True) == json.dumps(resource.inputs,
                                                                     sort_keys=True)
