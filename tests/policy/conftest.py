"""One policy pack per test session, started out of process as the Pulumi CLI starts it, and
builders for small recorded stacks to run through it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from citadelle import paths
from citadelle.environment import Environment
from citadelle.environment.projections import policy_config
from citadelle.plan.analyzer import PolicyAnalyzer
from citadelle.plan.offline import SECRET_MASK, SECRET_SIG, SIG_KEY, RecordedResource, Recording

STACK = "test"
PROJECT = "policytest"
OPENSTACK = "pulumi:providers:openstack"


@pytest.fixture(scope="session")
def analyzer() -> Iterator[PolicyAnalyzer]:
    with PolicyAnalyzer(paths.POLICY_DIR, project=PROJECT, stack=STACK) as started:
        yield started


@pytest.fixture(scope="session")
def dev_config() -> dict[str, Any]:
    """The pack's config for dev, built from dev's stack config: the allow-lists tests use."""
    return policy_config(Environment.load("dev").settings)


def secret(value: str = SECRET_MASK) -> dict[str, str]:
    """A value as the engine sends a Pulumi secret."""
    return {SIG_KEY: SECRET_SIG, "value": value}


class StackBuilder:
    """Registrations of a tiny program, shaped like citadelle.plan.offline's recordings."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.resources: list[RecordedResource] = []
        self.stack_urn = f"urn:pulumi:{STACK}::{PROJECT}::pulumi:pulumi:Stack::{PROJECT}-{STACK}"
        region = config["eu-region-allow-list"]["allowedRegions"][0]
        host = config["eu-endpoint-allow-list"]["allowedAuthHosts"][0]
        self.provider = self.add(OPENSTACK, "openstack",
                                 {"authUrl": f"https://{host}/v3", "region": region},
                                 provider=None)

    def urn(self, type_token: str, name: str) -> str:
        return f"urn:pulumi:{STACK}::{PROJECT}::{type_token}::{name}"

    def add(self, type_token: str, name: str, inputs: dict[str, Any], *,
            outputs: dict[str, Any] | None = None, provider: str | None = "explicit",
            custom: bool = True) -> RecordedResource:
        ref = None
        if provider == "explicit":
            ref = f"{self.provider.urn}::{self.provider.id}"
        resource = RecordedResource(
            urn=self.urn(type_token, name), type=type_token, name=name, custom=custom,
            parent=self.stack_urn, provider=ref, id=f"id-{name}" if custom else None,
            inputs=inputs, outputs=outputs or {},
        )
        self.resources.append(resource)
        return resource

    def tier(self, tier: str) -> dict[str, RecordedResource]:
        """A tier's network, subnet (gateway only if it may egress) and security group."""
        tags = [f"tier={tier}"]
        net = self.add("openstack:networking/network:Network", f"net-{tier}", {"tags": tags})
        subnet = self.add("openstack:networking/subnet:Subnet", f"subnet-{tier}",
                          {"networkId": net.id, "cidr": "10.9.0.0/24", "tags": tags,
                           "noGateway": tier == "data"})
        group = self.add("openstack:networking/secGroup:SecGroup", f"sg-{tier}", {"tags": tags})
        return {"network": net, "subnet": subnet, "group": group}

    def port(self, tier: dict[str, RecordedResource], name: str) -> RecordedResource:
        return self.add("openstack:networking/port:Port", name, {
            "networkId": tier["network"].id,
            "fixedIps": [{"subnetId": tier["subnet"].id}],
            "securityGroupIds": [tier["group"].id],
        })

    def rule(self, tier: dict[str, RecordedResource], name: str, port: int, *,
             cidr: str | None = None, group: RecordedResource | None = None,
             protocol: str = "tcp") -> RecordedResource:
        inputs: dict[str, Any] = {"direction": "ingress", "ethertype": "IPv4",
                                  "protocol": protocol, "portRangeMin": float(port),
                                  "portRangeMax": float(port),
                                  "securityGroupId": tier["group"].id}
        if cidr is not None:
            inputs["remoteIpPrefix"] = cidr
        if group is not None:
            inputs["remoteGroupId"] = group.id
        return self.add("openstack:networking/secGroupRule:SecGroupRule", name, inputs)

    def k8s(self, api_version: str, kind: str, name: str, body: dict[str, Any], *,
            namespace: str | None = None, labels: dict[str, str] | None = None,
            annotations: dict[str, str] | None = None) -> RecordedResource:
        group, _, version = api_version.rpartition("/")
        metadata: dict[str, Any] = {"name": name}
        if namespace:
            metadata["namespace"] = namespace
        if labels:
            metadata["labels"] = labels
        if annotations:
            metadata["annotations"] = annotations
        return self.add(f"kubernetes:{group or 'core'}/{version}:{kind}", f"{kind.lower()}-{name}",
                        {"apiVersion": api_version, "kind": kind, "metadata": metadata, **body},
                        provider=None)

    def recording(self) -> Recording:
        # Kubernetes objects use their own explicit provider.
        k8s_provider = next((r for r in self.resources
                             if r.type == "pulumi:providers:kubernetes"), None)
        if k8s_provider is None and any(r.type.startswith("kubernetes:") for r in self.resources):
            k8s_provider = self.add("pulumi:providers:kubernetes", "kubernetes",
                                    {"kubeconfig": secret()}, provider=None)
        for resource in self.resources:
            if resource.type.startswith("kubernetes:") and resource.provider is None:
                resource.provider = f"{k8s_provider.urn}::{k8s_provider.id}"
        return Recording(project=PROJECT, stack=STACK, resources=self.resources,
                         stack_outputs={})


@pytest.fixture
def stack(dev_config: dict[str, Any]) -> StackBuilder:
    return StackBuilder(dev_config)
