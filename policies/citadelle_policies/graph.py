"""Read-only views over a stack's resources for stack policies: lookups by id and tier.

Tiers come from the landing zone's ``tier=<name>`` tags (networks, subnets, security groups) or a
``tier`` metadata entry (servers, volumes); other resources inherit the tier of what they
reference (a port from its network, a rule from its group, a router interface from its subnet).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pulumi_policy import PolicyResource

from citadelle_policies.meta import get, items

_REFERENCES = ("networkId", "subnetId", "securityGroupId", "vipSubnetId", "vipNetworkId",
               "portId", "instanceId", "volumeId")


def own_tier(resource: PolicyResource) -> str | None:
    for tag in items(get(resource.props, "tags")):
        if isinstance(tag, str) and tag.startswith("tier="):
            return tag.removeprefix("tier=")
    tier = get(resource.props, "metadata", "tier")
    return tier if isinstance(tier, str) else None


class StackGraph:
    def __init__(self, resources: Iterable[PolicyResource]) -> None:
        self.resources = list(resources)
        self.by_id: dict[str, PolicyResource] = {}
        for resource in self.resources:
            rid = get(resource.props, "id")
            if isinstance(rid, str) and rid:
                self.by_id[rid] = resource
        self._tiers: dict[str, str | None] = {}

    def of_type(self, *types: str) -> list[PolicyResource]:
        return [r for r in self.resources if r.resource_type in types]

    def ref(self, value: Any) -> PolicyResource | None:
        return self.by_id.get(value) if isinstance(value, str) else None

    def tier(self, resource: PolicyResource | None, depth: int = 0) -> str | None:
        if resource is None:
            return None
        if resource.urn in self._tiers:
            return self._tiers[resource.urn]
        tier = own_tier(resource)
        if tier is None and depth < 4:
            props = resource.props
            refs: list[Any] = [get(props, k) for k in _REFERENCES]
            refs += [get(n, "port") for n in items(get(props, "networks"))]
            refs += [get(n, "uuid") for n in items(get(props, "networks"))]
            refs += [get(f, "subnetId") for f in items(get(props, "fixedIps"))]
            refs += list(items(get(props, "securityGroupIds")))
            for value in refs:
                tier = self.tier(self.ref(value), depth + 1)
                if tier:
                    break
        self._tiers[resource.urn] = tier
        return tier

    def port_owner(self, port_id: Any) -> PolicyResource | None:
        """The port itself, or the load balancer whose VIP port it is."""
        port = self.ref(port_id)
        if port is not None:
            return port
        for lb in self.of_type("openstack:loadbalancer/loadBalancer:LoadBalancer"):
            if isinstance(port_id, str) and get(lb.props, "vipPortId") == port_id:
                return lb
        return None
