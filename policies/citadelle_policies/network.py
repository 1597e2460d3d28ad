"""Segmentation of the landing zone: world-open ingress, SSH, public addresses, the data tier's
routes and peers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pulumi_policy import PolicyResource, Severity, StackValidationArgs
from pulumi_policy.proxy import UnknownValueError

from citadelle_policies.graph import (
    GROUP,
    NETWORK,
    PORT,
    RULE,
    SUBNET,
    Net,
    StackGraph,
    inside,
    network_of,
)
from citadelle_policies.meta import (
    Config,
    Control,
    Report,
    get,
    items,
    number,
    stack_policy,
    string_list,
    tier_cidrs_schema,
    truthy,
)

FLOATING_IP = "openstack:networking/floatingIp:FloatingIp"
FIP_ASSOCIATE = "openstack:networking/floatingIpAssociate:FloatingIpAssociate"
COMPUTE_FIP_ASSOCIATE = "openstack:compute/floatingIpAssociate:FloatingIpAssociate"
ROUTER_INTERFACE = "openstack:networking/routerInterface:RouterInterface"
ROUTER = "openstack:networking/router:Router"
ROUTER_ROUTE = "openstack:networking/routerRoute:RouterRoute"
PORT_FORWARDING = "openstack:networking/portForwardingV2:PortForwardingV2"
NETWORK_RBAC = "openstack:networking/rbacPolicyV2:RbacPolicyV2"
ADDRESS_GROUP = "openstack:networking/addressGroupV2:AddressGroupV2"
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
        "tierCidrs": tier_cidrs_schema(),
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
        "tierCidrs": tier_cidrs_schema(),
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
                                       ["edge", "admin"]),
            "tierCidrs": tier_cidrs_schema()},
    applies_to=(FLOATING_IP, FIP_ASSOCIATE, COMPUTE_FIP_ASSOCIATE, PORT_FORWARDING,
                CLUSTER_TEMPLATE, CLUSTER),
)

DATA_ROUTE = Control(
    name="data-tier-no-external-route",
    description=(
        "The data tier must have no route to any external network: no router interface, router "
        "gateway or router port on its networks, no gateway or host route on its subnets, no "
        "external or shared network"
    ),
    severity=Severity.CRITICAL,
    snc=("13.2.a", "13.2.b", "19.2.b"),
    remediation=(
        "Remove the router interface (or router port) from the data network and declare its "
        "subnets with no_gateway=True and no host routes; never mark a data network external or "
        "shared, nor share it with other projects (RBAC policy); keep port security on its ports. "
        "Data services are reached only from the app and transfer tiers."
    ),
    config={"dataTier": {"type": "string", "default": "data",
                         "description": "tier that must never route outside"},
            "tierCidrs": tier_cidrs_schema()},
    applies_to=(ROUTER_INTERFACE, ROUTER, SUBNET, NETWORK, PORT, NETWORK_RBAC),
)

DATA_PEERS = Control(
    name="data-tier-peers-only",
    description=(
        "Security group rules guarding the data tier may only admit (and reach) the peer tiers' "
        "groups and CIDRs, never the Internet, another CIDR or an unknown group"
    ),
    severity=Severity.CRITICAL,
    snc=("13.2.a", "13.2.b"),
    bp028=("R80",),
    remediation=(
        "On every group that guards data-tier ports or servers, use remote_group_id of an app, "
        "transfer or admin group (or the data group itself), or a remote_ip_prefix inside those "
        "tiers' CIDRs (egress also: the in-region service CIDRs); create data groups with "
        "delete_default_rules=True so the provider's allow-all egress rules go."
    ),
    config={
        "dataTier": {"type": "string", "default": "data",
                     "description": "tier whose groups are checked"},
        "peerTiers": string_list("tiers that may reach the data tier",
                                 ["app", "transfer", "admin"]),
        "serviceCidrs": string_list("in-region service CIDRs the data tier may reach (NTP, DNS)",
                                    []),
        "tierCidrs": tier_cidrs_schema(),
    },
    applies_to=(RULE, GROUP),
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


def _internet_wide(network: Net) -> bool:
    """0.0.0.0/0, ::/0, or any prefix wide enough to hold a large part of the Internet (a /1
    pair, a /8 of public space): only private space or a named host range is not."""
    widest = 8 if network.version == 4 else 16
    return network.prefixlen == 0 or (network.prefixlen <= widest and not network.is_private)


def _remote_prefixes(graph: StackGraph, rule: PolicyResource) -> list[str] | None:
    """The CIDRs a rule's peer stands for; None when the peer is a security group."""
    prefix = get(rule.props, "remoteIpPrefix")
    if prefix:
        return [str(prefix)]
    address_group = get(rule.props, "remoteAddressGroupId")
    if address_group:
        group = graph.ref(address_group)
        return [str(a) for a in items(get(group.props, "addresses"))] if group else ["unknown"]
    if get(rule.props, "remoteGroupId"):
        return None
    return ["0.0.0.0/0" if str(get(rule.props, "ethertype") or "IPv4") != "IPv6" else "::/0"]


def _world_open(graph: StackGraph, rule: PolicyResource) -> bool:
    prefixes = _remote_prefixes(graph, rule)
    for prefix in prefixes or []:
        network = network_of(prefix)
        if network is not None and _internet_wide(network):
            return True
    return False


def _label(rule: PolicyResource) -> str:
    low, high = _ports(rule)
    ports = str(low) if low == high else f"{low}-{high}"
    peer = get(rule.props, "remoteIpPrefix") or (
        "group " + str(get(rule.props, "remoteGroupId")) if get(rule.props, "remoteGroupId")
        else "address group " + str(get(rule.props, "remoteAddressGroupId"))
        if get(rule.props, "remoteAddressGroupId") else "any source")
    return f"{_protocol(rule)}/{ports} from {peer}"


def _direction(rule: PolicyResource) -> str:
    return str(get(rule.props, "direction") or "").lower()


def _each(resources: list[PolicyResource], judge: Callable[[PolicyResource], None]) -> None:
    """Judge resources one by one: a value unknown during a preview skips that resource only
    (the advisory policy security-inputs-known names it), never the whole stack."""
    for resource in resources:
        try:
            judge(resource)
        except UnknownValueError:
            continue


def _graph(args: StackValidationArgs, config: Config) -> StackGraph:
    return StackGraph(args.resources, config.get("tierCidrs") or {})


def check_world_open(args: StackValidationArgs, config: Config, report: Report) -> None:
    graph = _graph(args, config)
    edge_ports = {int(p) for p in config.get("edgePorts") or []}

    def judge(rule: PolicyResource) -> None:
        if _direction(rule) != "ingress" or not _world_open(graph, rule):
            return
        group = graph.ref(get(rule.props, "securityGroupId"))
        low, high = _ports(rule)
        allowed = (graph.tiers(group) == {config.get("edgeTier")} and _protocol(rule) == "tcp"
                   and low == high and low in edge_ports)
        if not allowed:
            report(f"ingress {_label(rule)} on the {graph.label(group)} security group is open "
                   "to the whole Internet", rule.urn)

    _each(graph.of_type(RULE), judge)


def _covers_ssh(rule: PolicyResource, ssh_ports: set[int]) -> bool:
    if _protocol(rule) not in ("tcp", "any", "6"):
        return False
    low, high = _ports(rule)
    return any(low <= port <= high for port in ssh_ports)


def _within(prefix: Any, cidrs: list[str]) -> bool:
    network = network_of(prefix)
    if network is None:
        return False
    return any(allowed is not None and inside(network, allowed)
               for allowed in (network_of(c) for c in cidrs))


def check_ssh(args: StackValidationArgs, config: Config, report: Report) -> None:
    graph = _graph(args, config)
    bastion = config.get("bastionTier")
    admin_cidrs = list(config.get("adminCidrs") or [])
    ssh_ports = {int(p) for p in config.get("sshPorts") or []}

    def judge(rule: PolicyResource) -> None:
        if _direction(rule) != "ingress" or not _covers_ssh(rule, ssh_ports):
            return
        group = graph.ref(get(rule.props, "securityGroupId"))
        own = graph.label(group)
        remote_group = get(rule.props, "remoteGroupId")
        if remote_group:
            if graph.tiers(graph.ref(remote_group)) == {bastion}:
                return
            report(f"SSH ({_label(rule)}) into the {own} group comes from a group that is not "
                   f"the bastion's ({bastion} tier)", rule.urn)
            return
        prefixes = _remote_prefixes(graph, rule) or []
        if graph.tiers(group) == {bastion} and prefixes and all(
                _within(p, admin_cidrs) for p in prefixes):
            return
        where = "the bastion" if graph.tiers(group) == {bastion} else f"the {own} group"
        report(f"SSH ({_label(rule)}) into {where} is not restricted to the bastion "
               f"(admin CIDRs: {', '.join(admin_cidrs) or 'none configured'})", rule.urn)

    _each(graph.of_type(RULE), judge)


def check_floating(args: StackValidationArgs, config: Config, report: Report) -> None:
    graph = _graph(args, config)
    public = set(config.get("publicTiers") or [])
    allowed = ", ".join(sorted(public))
    associated: set[str] = set()

    def exposed(tiers: frozenset[str]) -> bool:
        return not tiers or not tiers <= public

    def judge_association(assoc: PolicyResource) -> None:
        associated.add(str(get(assoc.props, "floatingIp")))
        if assoc.resource_type == FIP_ASSOCIATE:
            target = graph.port_owner(get(assoc.props, "portId"))
        else:
            target = graph.ref(get(assoc.props, "instanceId"))
        tiers = graph.tiers(target) | graph.cidr_tiers(get(assoc.props, "fixedIp"))
        if exposed(tiers):
            report(f"floating IP {get(assoc.props, 'floatingIp')} is associated with a "
                   f"{'/'.join(sorted(tiers)) or 'untiered'} port (allowed tiers: {allowed})",
                   assoc.urn)

    def judge_fip(fip: PolicyResource) -> None:
        port_id = get(fip.props, "portId")
        if port_id or get(fip.props, "fixedIp"):
            tiers = graph.tiers(graph.port_owner(port_id)) | graph.cidr_tiers(
                get(fip.props, "fixedIp"))
            if exposed(tiers):
                report(f"floating IP on a {'/'.join(sorted(tiers)) or 'untiered'} port "
                       f"(allowed tiers: {allowed})", fip.urn)
        elif str(get(fip.props, "address")) not in associated:
            report("floating IP allocated but attached to neither the edge load balancer nor "
                   "the bastion", fip.urn)

    def judge_forwarding(forward: PolicyResource) -> None:
        tiers = graph.tiers(graph.ref(get(forward.props, "internalPortId"))) | graph.cidr_tiers(
            get(forward.props, "internalIpAddress"))
        if exposed(tiers):
            report(f"floating IP port forwarding to a {'/'.join(sorted(tiers)) or 'untiered'} "
                   f"port (allowed tiers: {allowed})", forward.urn)

    def judge_cluster(cluster: PolicyResource) -> None:
        enabled = get(cluster.props, "floatingIpEnabled")
        # Magnum gives every master and node a floating IP unless the template says otherwise.
        if truthy(enabled) or (enabled is None and cluster.resource_type == CLUSTER_TEMPLATE):
            report("Magnum gives every master and node a floating IP (floating_ip_enabled "
                   f"{'unset' if enabled is None else 'true'})", cluster.urn)
        if truthy(get(cluster.props, "labels", "master_lb_floating_ip_enabled")):
            report("the Kubernetes API load balancer gets a floating IP "
                   "(master_lb_floating_ip_enabled=true)", cluster.urn)

    _each(graph.of_type(FIP_ASSOCIATE, COMPUTE_FIP_ASSOCIATE), judge_association)
    _each(graph.of_type(FLOATING_IP), judge_fip)
    _each(graph.of_type(PORT_FORWARDING), judge_forwarding)
    _each(graph.of_type(CLUSTER_TEMPLATE, CLUSTER), judge_cluster)


ROUTER_OWNERS = ("network:router_interface", "network:router_gateway",
                 "network:router_interface_distributed", "network:ha_router_replicated_interface")


def _judge_data_port(graph: StackGraph, data: str, report: Report, port: PolicyResource) -> None:
    if data not in graph.tiers(port):
        return
    owner = str(get(port.props, "deviceOwner") or "")
    if owner in ROUTER_OWNERS:
        report(f"router port ({owner}) on the {data} tier's network", port.urn)
    if get(port.props, "portSecurityEnabled") is False:
        report(f"{data} tier port turns port security off (no security group applies)", port.urn)
    pairs = [str(get(p, "ipAddress")) for p in items(get(port.props, "allowedAddressPairs"))]
    wide = [p for p in pairs if (n := network_of(p)) is not None and _internet_wide(n)]
    if wide:
        report(f"{data} tier port accepts any address ({', '.join(wide)}) as its own", port.urn)


def check_data_route(args: StackValidationArgs, config: Config, report: Report) -> None:
    graph = _graph(args, config)
    data = str(config.get("dataTier"))

    def on_data(resource: PolicyResource | None) -> bool:
        return data in graph.tiers(resource)

    def judge_interface(interface: PolicyResource) -> None:
        target = graph.ref(get(interface.props, "subnetId")) or graph.ref(
            get(interface.props, "portId"))
        if on_data(target):
            router = graph.ref(get(interface.props, "routerId"))
            external = get(router.props, "externalNetworkId") if router is not None else None
            detail = " whose router has an external gateway" if external else ""
            report(f"router interface on the {data} tier's network{detail}", interface.urn)

    def judge_router(router: PolicyResource) -> None:
        gateway = graph.ref(get(router.props, "externalNetworkId"))
        fixed = [graph.ref(get(f, "subnetId"))
                 for f in items(get(router.props, "externalFixedIps"))]
        if on_data(gateway) or any(on_data(s) for s in fixed):
            report(f"router gateway on the {data} tier's network", router.urn)

    def judge_subnet(subnet: PolicyResource) -> None:
        if not on_data(subnet):
            return
        if not truthy(get(subnet.props, "noGateway")):
            gateway = get(subnet.props, "gatewayIp") or "the first address"
            report(f"{data} tier subnet {get(subnet.props, 'cidr')} has a gateway ({gateway}; "
                   "set no_gateway=True)", subnet.urn)
        routes = [f"{get(r, 'destinationCidr')} via {get(r, 'nextHop')}"
                  for r in items(get(subnet.props, "hostRoutes"))]
        if routes:
            report(f"{data} tier subnet {get(subnet.props, 'cidr')} pushes host routes "
                   f"{', '.join(routes)}", subnet.urn)

    def judge_network(network: PolicyResource) -> None:
        if not on_data(network):
            return
        flags = [flag for flag in ("external", "shared") if truthy(get(network.props, flag))]
        if flags:
            report(f"{data} tier network is {' and '.join(flags)}", network.urn)
        if get(network.props, "portSecurityEnabled") is False:
            report(f"{data} tier network turns port security off", network.urn)

    def judge_rbac(policy: PolicyResource) -> None:
        target = graph.ref(get(policy.props, "objectId"))
        if str(get(policy.props, "objectType")) == "network" and on_data(target):
            report(f"{data} tier network shared with project {get(policy.props, 'targetTenant')}"
                   f" ({get(policy.props, 'action')})", policy.urn)

    _each(graph.of_type(ROUTER_INTERFACE), judge_interface)
    _each(graph.of_type(ROUTER), judge_router)
    _each(graph.of_type(SUBNET), judge_subnet)
    _each(graph.of_type(NETWORK), judge_network)
    _each(graph.of_type(PORT), lambda port: _judge_data_port(graph, data, report, port))
    _each(graph.of_type(NETWORK_RBAC), judge_rbac)


def check_data_peers(args: StackValidationArgs, config: Config, report: Report) -> None:
    graph = _graph(args, config)
    data = str(config.get("dataTier"))
    peers = {str(t) for t in config.get("peerTiers") or []} | {data}
    tier_cidrs = config.get("tierCidrs") or {}
    peer_cidrs = [str(c) for t in peers for c in tier_cidrs.get(t, [])]
    service_cidrs = [str(c) for c in config.get("serviceCidrs") or []]

    def judge_group(group: PolicyResource) -> None:
        if data in graph.tiers(group) and not truthy(get(group.props, "deleteDefaultRules")):
            report(f"{data} tier group keeps the provider's default allow-all egress rules "
                   "(set delete_default_rules=True)", group.urn)

    def judge_rule(rule: PolicyResource) -> None:
        group = graph.ref(get(rule.props, "securityGroupId"))
        if data not in graph.tiers(group):
            return
        direction = _direction(rule) or "ingress"
        remote_group = get(rule.props, "remoteGroupId")
        if remote_group:
            remote = graph.tiers(graph.ref(remote_group))
            if not remote or not remote <= peers:
                report(f"{direction} {_label(rule)} on the {data} tier's group: the group is "
                       f"{'/'.join(sorted(remote)) or 'of no known tier'}, not one of "
                       f"{', '.join(sorted(peers))}", rule.urn)
            return
        allowed = peer_cidrs + (service_cidrs if direction == "egress" else [])
        outside = [p for p in _remote_prefixes(graph, rule) or [] if not _within(p, allowed)]
        if outside:
            report(f"{direction} {_label(rule)} on the {data} tier's group reaches "
                   f"{', '.join(outside)}, outside the peer tiers' CIDRs", rule.urn)

    _each(graph.of_type(GROUP), judge_group)
    _each(graph.of_type(RULE), judge_rule)


POLICIES = [
    stack_policy(WORLD_OPEN, check_world_open),
    stack_policy(SSH, check_ssh),
    stack_policy(FLOATING, check_floating),
    stack_policy(DATA_ROUTE, check_data_route),
    stack_policy(DATA_PEERS, check_data_peers),
]
