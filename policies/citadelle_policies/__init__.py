"""Citadelle's CrossGuard policies, by domain. Importing this package has no side effect: the pack
(and its gRPC server) is built only by ``policies/__main__.py``."""

from __future__ import annotations

from pulumi_policy import Policy

from citadelle_policies import (
    compute,
    crypto,
    kubernetes,
    network,
    preview,
    providers,
    rbac,
    sovereignty,
    storage,
    transport,
    workspaces,
)

PACK_NAME = "citadelle-secnumcloud"


def all_policies() -> list[Policy]:
    return [
        *sovereignty.POLICIES,
        *providers.POLICIES,
        *transport.POLICIES,
        *network.POLICIES,
        *crypto.POLICIES,
        *storage.POLICIES,
        *compute.POLICIES,
        *kubernetes.POLICIES,
        *rbac.POLICIES,
        *workspaces.POLICIES,
        *preview.POLICIES,
    ]
