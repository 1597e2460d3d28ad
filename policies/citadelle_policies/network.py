"""Segmentation of the landing zone: world-open ingress, SSH, public addresses, data-tier routes."""

from __future__ import annotations

import ipaddress
from typing import Any

from pulumi_policy import PolicyResource, Severity, StackValidationArgs

from citadelle_policies.graph import StackGraph
from citadelle_policies.meta import Config, Control, Report, get, number, stack_policy, string_list

RULE = "openstack:networking/secGroupRule:SecGroupRule"
GROUP = "openstack:networking/secGroup:SecGroup"
FLOATING_IP = "openstack:networking/floatingIp:FloatingIp"
FIP_ASSOCIATE = "openstack:networking/floatingIpAssociate:FloatingIpAssociate"
COMPUTE_FIP_ASSOCIATE = "openstack:compute/floatingIpAssociate:FloatingIpAssociate"
ROUTER_INTERFACE = "openstack:networking/routerInterface:RouterInterface"
SUBNET = "openstack:networking/subnet:Subnet"
CLUSTER_TEMPLATE = "openstack:containerinfra/clusterTemplate:ClusterTemplate"
CLUSTER = "openstack:containerinfra/cluster:Cluster"

WORLD_OPEN = Control(
    name="no-world-open-ingress",
    description=(
        "No security group rule may accept traffic from the whole Internet, except HTTPS on the "
        "edge tier's load balancer"
    ),
    severity=Severity.CRITICAL,
    snc=("13.2.a", "9.6.d"),
    bp028=("R80",),
    remediation=(
        "Replace 0.0.0.0/0 (or a rule with neither remote_ip_prefix nor remote_group_id) by the "
        "peer tier's security group (remote_group_id) or a named CIDR; only the edge group may "
        "accept the world, on the ports of `edgePorts`."
    ),
    config={
        "edgeTier": {"type": "string", "default": "edge",
                     "description": "tier whose security group may accept the world"},
        "edgePorts": {"type": "array", "items": {"type": "integer"}, "default": [443],
                      "description": "TCP ports the edge may open to the world"},
    },
    applies_to=(RULE,),
)

SSH = Control(
    name="ssh-from-bastion-only",
    description=(
        "SSH (tcp/22) may only be reached from the bastion's security group, and the bastion only "
        "from the declared admin CIDRs"
    ),
    severity=Severity.CRITICAL,
    snc=("9.6.d", "13.2.c", "13.2.e"),
    bp028=("R79",),
    remediation=(
        "Set remote_group_id to the admin tier's security group on every SSH rule; on the admin "
        "(bastion) group, allow SSH only from the CIDRs of `citadelle:network.adminCidrs`."
    ),
    config={
        "bastionTier": {"type": "string", "default": "admin",
                        "description": "tier of the bastion's security group"},
        "adminCidrs": string_list("operators' CIDRs allowed to reach the bastion"),
        "sshPorts": {"type": "array", "items": {"type": "integer"}, "default": [22],
                     "description": "ports treated as administration SSH"},
    },
    applies_to=(RULE,),
)

FLOATING = Control(
    name="floating-ip-edge-bastion-only",
    description=(
        "Floating (public) IPs may only sit on the edge load balancer or the bastion (never on "
        "Kubernetes masters, nodes or API load balancer)"
    ),
    severity=Severity.CRITICAL,
    snc=("13.2.a", "9.6.d"),
    bp028=("R80",),
    remediation=(
        "Remove the floating IP; reach the server through the edge load balancer (services) or "
        "through the bastion (administration). Magnum: floating_ip_enabled=False on the template "
        "(Magnum's default is True) and label master_lb_floating_ip_enabled=false."
    ),
    config={"publicTiers": string_list("tiers whose ports may carry a floating IP",
                                       ["edge", "admin"])},
    applies_to=(FLOATING_IP, FIP_ASSOCIATE, COMPUTE_FIP_ASSOCIATE, CLUSTER_TEMPLATE, CLUSTER),
)

DATA_ROUTE = Control(
    name="data-tier-no-external-route",
    description=(
        "The data tier must have no route to any external network: no router interface on its "
        "subnets and no gateway"
    ),
    severity=Severity.CRITICAL,
    snc=("13.2.a", "13.2.b", "19.2.b"),
    remediation=(
        "Remove the router interface from the data subnet and declare the subnet with "
        "no_gateway=True; data services are reached only from the app and transfer tiers."
    ),
    config={"dataTier": {"type": "string", "default": "data",
                         "description": "tier that must never route outside"}},
    applies_to=(ROUTER_INTERFACE, SUBNET),
)


def _ports(rule: PolicyResource) -> tuple[int, int]:
    low = number(get(rule.props, "portRangeMin"))
    high = number(get(rule.props, "portRangeMax"))
    if low in (None, 0) and high in (None, 0):
        return 1, 65535
    return (low or 1), (high or low or 65535)


def _protocol(rule: PolicyResource) -> str:
    protocol = get(rule.props, "protocol")
    return str(protocol).lower() if protocol not in (None, "", "any") else "any"


def _network(prefix: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(str(prefix), strict=False)
    except ValueError:
        return None


def _world_open(rule: PolicyResource) -> bool:
    prefix = get(rule.props, "remoteIpPrefix")
    remote = get(rule.props, "remoteGroupId") or get(rule.props, "remoteAddressGroupId")
    if not prefix and not remote:
        return True  # OpenStack: no remote at all means any source
    network = _network(prefix) if prefix else None
    return network is not None and network.prefixlen == 0


def _label(rule: PolicyResource) -> str:
    low, high = _ports(rule)
    ports = str(low) if low == high else f"{low}-{high}"
    peer = get(rule.props, "remoteIpPrefix") or (
        "group " + str(get(rule.props, "remoteGroupId")) if get(rule.props, "remoteGroupId")
        else "any source")
    return f"{_protocol(rule)}/{ports} from {peer}"


def _ingress(graph: StackGraph) -> list[PolicyResource]:
    return [r for r in graph.of_type(RULE)
            if str(get(r.props, "direction") or "").lower() == "ingress"]


def check_world_open(args: StackValidationArgs, config: Config, report: Report) -> None:
    graph = StackGraph(args.resources)
    edge_ports = {int(p) for p in config.get("edgePorts") or []}
    for rule in _ingress(graph):
        if not _world_open(rule):
            continue
        tier = graph.tier(graph.ref(get(rule.props, "securityGroupId")))
        low, high = _ports(rule)
        allowed = (tier == config.get("edgeTier") and _protocol(rule) == "tcp"
                   and low == high and low in edge_ports)
        if not allowed:
            report(f"ingress {_label(rule)} on the {tier or 'untiered'} security group is open "
                   "to the whole Internet", rule.urn)


def _covers_ssh(rule: PolicyResource, ssh_ports: set[int]) -> bool:
    if _protocol(rule) not in ("tcp", "any", "6"):
        return False
    low, high = _ports(rule)
    return any(low <= port <= high for port in ssh_ports)


def _within(prefix: Any, cidrs: list[str]) -> bool:
    network = _network(prefix)
    if network is None:
        return False
    for cidr in cidrs:
        allowed = _network(cidr)
        if allowed is not None and allowed.version == network.version and network.subnet_of(
            allowed  # type: ignore[arg-type]
        ):
            return True
    return False


def check_ssh(args: StackValidationArgs, config: Config, report: Report) -> None:
    graph = StackGraph(args.resources)
    bastion = config.get("bastionTier")
    admin_cidrs = list(config.get("adminCidrs") or [])
    ssh_ports = {int(p) for p in config.get("sshPorts") or []}
    for rule in _ingress(graph):
        if not _covers_ssh(rule, ssh_ports):
            continue
        own_tier = graph.tier(graph.ref(get(rule.props, "securityGroupId")))
        remote_group = get(rule.props, "remoteGroupId")
        if remote_group:
            if graph.tier(graph.ref(remote_group)) == bastion:
                continue
            report(f"SSH ({_label(rule)}) into the {own_tier or 'untiered'} group comes from a "
                   f"group that is not the bastion's ({bastion} tier)", rule.urn)
            continue
        prefix = get(rule.props, "remoteIpPrefix")
        if own_tier == bastion and prefix and _within(prefix, admin_cidrs):
            continue
        where = "the bastion" if own_tier == bastion else f"the {own_tier or 'untiered'} group"
        report(f"SSH ({_label(rule)}) into {where} is not restricted to the bastion "
               f"(admin CIDRs: {', '.join(admin_cidrs) or 'none configured'})", rule.urn)


def check_floating(args: StackValidationArgs, config: Config, report: Report) -> None:
    graph = StackGraph(args.resources)
    public = set(config.get("publicTiers") or [])
    associated: set[str] = set()
    for assoc in graph.of_type(FIP_ASSOCIATE, COMPUTE_FIP_ASSOCIATE):
        associated.add(str(get(assoc.props, "floatingIp")))
        if assoc.resource_type == FIP_ASSOCIATE:
            target = graph.port_owner(get(assoc.props, "portId"))
        else:
            target = graph.ref(get(assoc.props, "instanceId"))
        tier = graph.tier(target)
        if tier not in public:
            report(f"floating IP {get(assoc.props, 'floatingIp')} is associated with a "
                   f"{tier or 'untiered'} port (allowed tiers: {', '.join(sorted(public))})",
                   assoc.urn)
    for fip in graph.of_type(FLOATING_IP):
        port_id = get(fip.props, "portId")
        if port_id:
            tier = graph.tier(graph.port_owner(port_id))
            if tier not in public:
                report(f"floating IP on a {tier or 'untiered'} port (allowed tiers: "
                       f"{', '.join(sorted(public))})", fip.urn)
        elif str(get(fip.props, "address")) not in associated:
            report("floating IP allocated but attached to neither the edge load balancer nor "
                   "the bastion", fip.urn)
    for cluster in graph.of_type(CLUSTER_TEMPLATE, CLUSTER):
        enabled = get(cluster.props, "floatingIpEnabled")
        # Magnum gives every master and node a floating IP unless the template says otherwise.
        if enabled is True or (enabled is None and cluster.resource_type == CLUSTER_TEMPLATE):
            report("Magnum gives every master and node a floating IP (floating_ip_enabled "
                   f"{'unset' if enabled is None else 'true'})", cluster.urn)
        if str(get(cluster.props, "labels", "master_lb_floating_ip_enabled")).lower() == "true":
            report("the Kubernetes API load balancer gets a floating IP "
                   "(master_lb_floating_ip_enabled=true)", cluster.urn)


def check_data_route(args: StackValidationArgs, config: Config, report: Report) -> None:
    graph = StackGraph(args.resources)
    data = config.get("dataTier")
    for interface in graph.of_type(ROUTER_INTERFACE):
        target = graph.ref(get(interface.props, "subnetId")) or graph.ref(
            get(interface.props, "portId"))
        if graph.tier(target) == data:
            router = graph.ref(get(interface.props, "routerId"))
            external = get(router.props, "externalNetworkId") if router is not None else None
            detail = " whose router has an external gateway" if external else ""
            report(f"router interface on the {data} tier's subnet{detail}", interface.urn)
    for subnet in graph.of_type(SUBNET):
        if graph.tier(subnet) == data and not get(subnet.props, "noGateway"):
            report(f"{data} tier subnet {get(subnet.props, 'cidr')} has a gateway "
                   "(set no_gateway=True)", subnet.urn)


POLICIES = [
    stack_policy(WORLD_OPEN, check_world_open),
    stack_policy(SSH, check_ssh),
    stack_policy(FLOATING, check_floating),
    stack_policy(DATA_ROUTE, check_data_route),
]
