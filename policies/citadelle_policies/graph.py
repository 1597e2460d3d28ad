"""Read-only views over a stack's resources for stack policies: lookups by id and tier.

A tier is recognised by what defines it, not by a name: a subnet belongs to the tier whose CIDR
(``tierCidrs``, from the stack config's ``citadelle:network.tiers``) holds its own; a network to
the tiers of its subnets; a port to the tiers of its subnets or fixed addresses; a security group
to the tiers of the ports and servers it guards; a server to the tiers of its networks, ports and
attached interfaces. Only where the graph says nothing (no CIDR in any tier, nothing attached) do
the landing zone's ``tier=<name>`` tags or a ``tier`` metadata entry answer. A resource may belong
to several tiers (a group guarding ports of two tiers): policies judge every one.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from pulumi_policy import PolicyResource

from citadelle_policies.meta import items, peek

NETWORK = "openstack:networking/network:Network"
SUBNET = "openstack:networking/subnet:Subnet"
PORT = "openstack:networking/port:Port"
GROUP = "openstack:networking/secGroup:SecGroup"
RULE = "openstack:networking/secGroupRule:SecGroupRule"
PORT_GROUPS = "openstack:networking/portSecGroupAssociate:PortSecGroupAssociate"
INSTANCE = "openstack:compute/instance:Instance"
INTERFACE_ATTACH = "openstack:compute/interfaceAttach:InterfaceAttach"
LOAD_BALANCER = "openstack:loadbalancer/loadBalancer:LoadBalancer"

Net = ipaddress.IPv4Network | ipaddress.IPv6Network
NONE: frozenset[str] = frozenset()


def network_of(prefix: Any) -> Net | None:
    try:
        return ipaddress.ip_network(str(prefix), strict=False)
    except ValueError:
        return None


def inside(inner: Net, outer: Net) -> bool:
    return inner.version == outer.version and inner.subnet_of(outer)  # type: ignore[arg-type]


def tagged_tier(resource: PolicyResource) -> str | None:
    for tag in items(peek(resource.props, "tags")):
        if isinstance(tag, str) and tag.startswith("tier="):
            return tag.removeprefix("tier=")
    tier = peek(resource.props, "metadata", "tier")
    return tier if isinstance(tier, str) else None


class StackGraph:
    def __init__(self, resources: Iterable[PolicyResource],
                 tier_cidrs: Mapping[str, Iterable[str]] | None = None) -> None:
        self.resources = list(resources)
        self.cidrs: dict[str, list[Net]] = {
            tier: [n for n in (network_of(c) for c in cidrs) if n is not None]
            for tier, cidrs in (tier_cidrs or {}).items()}
        self.by_id: dict[str, PolicyResource] = {}
        self.by_type: dict[str, list[PolicyResource]] = defaultdict(list)
        for resource in self.resources:
            self.by_type[resource.resource_type].append(resource)
            rid = peek(resource.props, "id")
            if isinstance(rid, str) and rid:
                self.by_id[rid] = resource
        # Reverse links: what is attached to a network, a group, a server.
        self.subnets_of: dict[str, list[PolicyResource]] = defaultdict(list)
        for subnet in self.by_type[SUBNET]:
            self.subnets_of[str(peek(subnet.props, "networkId"))].append(subnet)
        self.guarded_by: dict[str, list[PolicyResource]] = defaultdict(list)
        for port in self.by_type[PORT]:
            for group in items(peek(port.props, "securityGroupIds")):
                self.guarded_by[str(group)].append(port)
        for assoc in self.by_type[PORT_GROUPS]:
            associated = self.ref(peek(assoc.props, "portId"))
            for group in items(peek(assoc.props, "securityGroupIds")):
                if associated is not None:
                    self.guarded_by[str(group)].append(associated)
        group_names = {str(peek(g.props, "name")): g for g in self.by_type[GROUP]
                       if peek(g.props, "name")}
        for server in self.by_type[INSTANCE]:
            for group in items(peek(server.props, "securityGroups")):
                target = group_names.get(str(group)) or self.ref(group)
                if target is not None:
                    self.guarded_by[target.urn].append(server)
        self.attached: dict[str, list[PolicyResource]] = defaultdict(list)
        for attach in self.by_type[INTERFACE_ATTACH]:
            self.attached[str(peek(attach.props, "instanceId"))].append(attach)
        self.network_names = {str(peek(n.props, "name")): n for n in self.by_type[NETWORK]
                              if peek(n.props, "name")}
        self._tiers: dict[str, frozenset[str]] = {}

    def of_type(self, *types: str) -> list[PolicyResource]:
        return [r for t in types for r in self.by_type.get(t, [])]

    def ref(self, value: Any) -> PolicyResource | None:
        return self.by_id.get(value) if isinstance(value, str) else None

    def cidr_tiers(self, prefix: Any) -> frozenset[str]:
        """The tiers whose CIDRs hold an address or a prefix."""
        net = network_of(prefix) if prefix else None
        if net is None:
            return NONE
        return frozenset(t for t, nets in self.cidrs.items() if any(inside(net, n) for n in nets))

    def tiers(self, resource: PolicyResource | None) -> frozenset[str]:
        if resource is None:
            return NONE
        if resource.urn not in self._tiers:
            self._tiers[resource.urn] = NONE  # a cycle answers nothing rather than looping
            found = self._derive(resource)
            if not found:
                tag = tagged_tier(resource)
                found = frozenset({tag}) if tag else NONE
            self._tiers[resource.urn] = found
        return self._tiers[resource.urn]

    def label(self, resource: PolicyResource | None) -> str:
        found = self.tiers(resource)
        return "/".join(sorted(found)) if found else "untiered"

    def _union(self, values: Iterable[Any]) -> frozenset[str]:
        found: set[str] = set()
        for value in values:
            if isinstance(value, str):
                found |= self.tiers(self.ref(value))
            elif isinstance(value, PolicyResource):
                found |= self.tiers(value)
        return frozenset(found)

    def _derive(self, resource: PolicyResource) -> frozenset[str]:
        derive = {SUBNET: lambda p, _: self.cidr_tiers(peek(p, "cidr")),
                  NETWORK: lambda _, rid: self._union(self.subnets_of.get(rid, [])),
                  PORT: self._port, GROUP: self._group, INSTANCE: self._server,
                  INTERFACE_ATTACH: self._attachment, LOAD_BALANCER: self._balancer}
        rule = derive.get(resource.resource_type)
        if rule is not None:
            return rule(resource.props, str(peek(resource.props, "id")))
        return self._references(resource.props)

    def _port(self, props: Any, _: str) -> frozenset[str]:
        found: set[str] = set()
        for fixed in items(peek(props, "fixedIps")):
            found |= self.tiers(self.ref(peek(fixed, "subnetId")))
            found |= self.cidr_tiers(peek(fixed, "ipAddress"))
        return frozenset(found) or self.tiers(self.ref(peek(props, "networkId")))

    def _group(self, _: Any, rid: str) -> frozenset[str]:
        guarded = self.guarded_by.get(rid, []) + self.guarded_by.get(self.by_id[rid].urn, []) \
            if rid in self.by_id else []
        return self._union(guarded)

    def _server(self, props: Any, rid: str) -> frozenset[str]:
        found: set[str] = set()
        for net in items(peek(props, "networks")):
            found |= self.tiers(self.ref(peek(net, "port")))
            found |= self.tiers(self.ref(peek(net, "uuid")))
            found |= self.tiers(self.network_names.get(str(peek(net, "name"))))
            found |= self.cidr_tiers(peek(net, "fixedIpV4"))
        for attach in self.attached.get(rid, []):
            found |= self.tiers(attach)
        return frozenset(found)

    def _attachment(self, props: Any, _: str) -> frozenset[str]:
        return (self.tiers(self.ref(peek(props, "portId")))
                | self.tiers(self.ref(peek(props, "networkId")))
                | self.cidr_tiers(peek(props, "fixedIp")))

    def _balancer(self, props: Any, _: str) -> frozenset[str]:
        return (self.tiers(self.ref(peek(props, "vipSubnetId")))
                | self.tiers(self.ref(peek(props, "vipNetworkId")))
                | self.tiers(self.ref(peek(props, "vipPortId")))
                | self.cidr_tiers(peek(props, "vipAddress")))

    def _references(self, props: Any) -> frozenset[str]:
        # Anything else inherits the tiers of what it references (a rule from its group, an
        # interface from its subnet or port, a volume attachment from its server).
        return self._union(peek(props, key) for key in (
            "securityGroupId", "subnetId", "portId", "networkId", "instanceId", "vipSubnetId"))

    def port_owner(self, port_id: Any) -> PolicyResource | None:
        """The port itself, or the load balancer whose VIP port it is."""
        port = self.ref(port_id)
        if port is not None:
            return port
        for lb in self.of_type(LOAD_BALANCER):
            if isinstance(port_id, str) and peek(lb.props, "vipPortId") == port_id:
                return lb
        return None
