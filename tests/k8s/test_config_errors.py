"""Bad Kubernetes or workspace config: refused before any resource, with one clear line."""

from __future__ import annotations

from typing import Any

import pytest
from k8s_support import Mutation, Values, refusal, stack_values

pytestmark = pytest.mark.unit


def _workspace(index: int, **changes: Any) -> Mutation:
    def mutate(values: Values) -> None:
        values["workspaces"][index].update(changes)

    return mutate


def _quota(index: int, key: str, value: Any) -> Mutation:
    def mutate(values: Values) -> None:
        values["workspaces"][index]["quotas"][key] = value

    return mutate


def _kubernetes(**changes: Any) -> Mutation:
    def mutate(values: Values) -> None:
        values["kubernetes"].update(changes)

    return mutate


def _duplicate_workspace(values: Values) -> None:
    values["workspaces"].append(dict(values["workspaces"][0], membersGroup="ws-other"))


def _drop_kubernetes_key(values: Values) -> None:
    values["keys"]["purposes"] = ["volume", "backup"]


def _no_kubeconfig(values: Values) -> None:
    values["kubernetes"]["mode"] = "existing"
    values["kubernetes"]["apiServerCidrs"] = ["10.250.30.0/28"]


def _existing_without_api(values: Values) -> None:
    values["kubernetes"]["mode"] = "existing"


PROD_FIRST = stack_values("prod")["workspaces"][0]["id"]

CASES: list[tuple[str, str, Mutation, list[str]]] = [
    ("duplicate workspace id", "prod", _duplicate_workspace,
     [f"citadelle:workspaces: duplicate workspace id(s) {PROD_FIRST}; each approved project "
      "has exactly one workspace"]),
    ("expired workspace", "prod", _workspace(1, expires="2024-03-31"),
     ["citadelle:workspaces[pharmaco-anticoag].expires", "expired on 2024-03-31",
      "renew its approval (CNIL-DR-2026-318)"]),
    ("cpu quota too high", "prod", _quota(0, "cpu", 999),
     ["citadelle:workspaces[0].quotas.cpu", "cpu 999 cores is out of range",
      "allowed: 1 to 256"]),
    ("memory quota zero", "prod", _quota(1, "memoryGi", 0),
     ["citadelle:workspaces[1].quotas.memoryGi", "memoryGi 0 GiB is out of range",
      "allowed: 1 to 2048"]),
    ("storage quota too high", "dev", _quota(0, "storageGi", 100000),
     ["citadelle:workspaces[0].quotas.storageGi", "allowed: 1 to 65536"]),
    ("empty members group", "prod", _workspace(0, membersGroup="  "),
     ["citadelle:workspaces[0].membersGroup", "membersGroup is empty",
      "directory group of the project's members"]),
    ("members group with spaces", "dev", _workspace(0, membersGroup="ws a b"),
     ["citadelle:workspaces[0].membersGroup", "one group name (no spaces"]),
    ("workspace without extraction", "dev", _workspace(0, extractions=[]),
     ["citadelle:workspaces[0].extractions", "at least 1 item"]),
    ("node group leaves a zone empty", "prod",
     _kubernetes(nodeGroups=[{"name": "general", "flavor": "b3-64", "count": 2}]),
     ["citadelle:kubernetes.nodeGroups[0].count", "leaves an availability zone empty",
      "at least 3"]),
    ("pod range overlaps a tier", "prod", _kubernetes(podCidr="10.10.0.0/16"),
     ["citadelle:kubernetes.podCidr", "overlaps network.tiers.edge 10.10.0.0/24"]),
    ("object storage outside its provider", "prod",
     _kubernetes(objectStorageCidrs=["192.168.0.0/24"]),
     ["citadelle:kubernetes.objectStorageCidrs", "192.168.0.0/24",
      "outside the object-storage provider's networks", "10.250.0.0/16"]),
    ("system namespace the platform declares", "prod",
     _kubernetes(systemNamespaces=[{"name": "citadelle-apps", "reason": "needs hostPath mounts"}]),
     ["citadelle:kubernetes.systemNamespaces", "'citadelle-apps'", "platform declares"]),
    ("system namespace without reason", "prod",
     _kubernetes(systemNamespaces=[{"name": "kube-system", "reason": "x"}]),
     ["citadelle:kubernetes.systemNamespaces[0].reason", "at least 10 characters"]),
    ("PSA version newer than the cluster", "prod", _kubernetes(podSecurityVersion="v1.33"),
     ["citadelle:kubernetes.podSecurityVersion", "v1.33 is newer than the cluster v1.31.4"]),
    ("registry not a container-registry endpoint", "prod",
     _kubernetes(registry="mirror.citadelle.internal"),
     ["citadelle:kubernetes.registry", "'mirror.citadelle.internal'",
      "allowed: registry.citadelle.internal"]),
    ("unpinned kubernetes version", "dev", _kubernetes(version="latest"),
     ["citadelle:kubernetes.version", "not a pinned Kubernetes version", "v1.31.4",
      "(got 'latest')"]),
    ("unknown mode", "dev", _kubernetes(mode="eks"),
     ["citadelle:kubernetes.mode", "'magnum' or 'existing'"]),
    ("existing mode without kubeconfig secret", "dev", _no_kubeconfig,
     ["citadelle:kubeconfig: missing secret", "pulumi config set --secret kubeconfig"]),
    ("existing mode without API addresses", "prod", _existing_without_api,
     ["citadelle:kubernetes.apiServerCidrs: is empty", "existing mode"]),
    ("no Kubernetes KEK", "dev", _drop_kubernetes_key,
     ["citadelle:keys.purposes", "lacks 'kubernetes'", "KMS v2"]),
]


@pytest.mark.parametrize(("env", "mutation", "expected"),
                         [pytest.param(e, m, x, id=i) for i, e, m, x in CASES])
def test_bad_config_is_refused_with_one_clear_line(env: str, mutation: Mutation,
                                                   expected: list[str]) -> None:
    message = refusal(env, mutation)
    for fragment in expected:
        assert fragment in message, message
