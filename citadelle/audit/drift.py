"""Drift: what is live in the environment's project against what the offline plan declares.

Read-only. Resources are matched by name (every declared resource carries a
``citadelle-<env>-...`` name), security group rules by shape, floating IPs by description.
Ports that Neutron or Nova own (router interfaces, gateways, DHCP, instances) are the
consequence of declared resources and are not compared one by one.

The data tier's isolation is judged on the live graph whatever created it: tiers are recognised
by the stack config's CIDRs (a subnet by its CIDR, a network by its subnets, a port by its fixed
addresses, a security group by the ports it guards), as the policy pack recognises them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from openstack import exceptions as os_exc

from citadelle.audit import objectstore
from citadelle.audit.conformance import catalog, luks_spec_ok
from citadelle.audit.model import Result, Severity, Status, audit_rule
from citadelle.environment import Environment
from citadelle.evidence.findings import Rule
from citadelle.plan.offline import RecordedResource, Recording

UNDECLARED = audit_rule(
    "drift-undeclared",
    "A live resource the code does not declare",
    ("12.2", "8.1"),
    Severity.MEDIUM,
    "Declare it in the program (and review why it was added by hand) or delete it.",
)
MISSING = audit_rule(
    "drift-missing",
    "A declared resource missing from the cloud",
    ("12.2", "8.1"),
    Severity.MEDIUM,
    "Run the deployment again (pulumi up) and find out who removed it.",
)
WORLD_OPEN_RULE = audit_rule(
    "drift-world-open-rule",
    "An undeclared ingress rule open to the whole Internet",
    ("13.2",),
    Severity.HIGH,
    "Delete the rule; flows are declared tier to tier in the program.",
)
FLOATING_IP = audit_rule(
    "drift-floating-ip",
    "A floating IP outside the edge load balancer and the bastion",
    ("13.2",),
    Severity.HIGH,
    "Release the floating IP; only the edge load balancer and the bastion are public.",
)
DATA_EGRESS = audit_rule(
    "drift-data-egress",
    "The data tier has a route out: a router port or gateway on its network, a gateway on its "
    "subnet, or an external or shared network",
    ("13.2", "12.14"),
    Severity.HIGH,
    "Detach the data network from the router, remove the subnet's gateway, clear the external "
    "and shared flags: the data tier has no route to external networks.",
)
DATA_PEER_RULE = audit_rule(
    "drift-data-peer-rule",
    "A rule of a group guarding the data tier admits (or reaches) something other than the "
    "peer tiers",
    ("13.2",),
    Severity.HIGH,
    "Delete the rule; the data tier admits only the app, transfer and admin tiers' groups and "
    "CIDRs, and reaches only them and the in-region service CIDRs.",
)
UNENCRYPTED_VOLUME = audit_rule(
    "drift-unencrypted-volume",
    "A volume whose type is not LUKS-encrypted",
    ("10.1",),
    Severity.HIGH,
    "Migrate the data to a volume of the environment's encrypted type and delete this one.",
)
VOLUME_TYPE_ENCRYPTION = audit_rule(
    "drift-volume-type-encryption",
    "The environment's volume type lacks its LUKS encryption spec",
    ("10.1",),
    Severity.HIGH,
    "Run the one-time encryption spec command of docs (volume type encryption create).",
)
SECRET_ACL = audit_rule(
    "drift-secret-acl",
    "A secret readable beyond its declared readers",
    ("10.5", "9.7"),
    Severity.HIGH,
    "Set the secret's read ACL to project-access false with only the declared service users.",
)
CHECKS = (
    UNDECLARED,
    MISSING,
    WORLD_OPEN_RULE,
    FLOATING_IP,
    DATA_EGRESS,
    DATA_PEER_RULE,
    UNENCRYPTED_VOLUME,
    VOLUME_TYPE_ENCRYPTION,
    SECRET_ACL,
    objectstore.DRIFT_CONTAINER,
)
PUBLIC_TIERS = frozenset({"edge", "admin"})
DATA_TIER = "data"
PEER_TIERS = frozenset({"app", "transfer", "admin", DATA_TIER})
ROUTER_OWNERS = ("network:router_interface", "network:router_gateway",
                 "network:ha_router_replicated_interface")
ANY = "*"
Net = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Segmentation:
    """What defines the tiers: the stack config's CIDRs (citadelle:network)."""

    tier_cidrs: dict[str, tuple[Net, ...]]
    service_cidrs: tuple[Net, ...] = ()

    def tiers_of(self, address: Any) -> frozenset[str]:
        try:
            net = ipaddress.ip_network(str(address), strict=False)
        except ValueError:
            return frozenset()
        return frozenset(tier for tier, cidrs in self.tier_cidrs.items()
                         if any(_inside(net, c) for c in cidrs))

    def peer_cidrs(self, direction: str) -> tuple[Net, ...]:
        cidrs = tuple(c for t in PEER_TIERS for c in self.tier_cidrs.get(t, ()))
        return cidrs + (self.service_cidrs if direction == "egress" else ())


def _inside(inner: Net, outer: Net) -> bool:
    return inner.version == outer.version and inner.subnet_of(outer)  # type: ignore[arg-type]


def segmentation_for(env: str) -> Segmentation:
    network = Environment.load(env).settings.network
    return Segmentation(
        tier_cidrs={t: (ipaddress.ip_network(str(s.cidr)),) for t, s in network.tiers.items()},
        service_cidrs=tuple(ipaddress.ip_network(str(c)) for c in network.service_cidrs),
    )


@dataclass(frozen=True, order=True)
class RuleShape:
    group: str
    direction: str
    ethertype: str
    protocol: str
    port_min: int | None
    port_max: int | None
    remote_prefix: str
    remote_group: str

    def __str__(self) -> str:
        ports = "" if self.port_min is None else f" {self.port_min}-{self.port_max}"
        remote = self.remote_group or self.remote_prefix
        return (
            f"{self.group}: {self.direction} {self.ethertype} {self.protocol}{ports} "
            f"{'from' if self.direction == 'ingress' else 'to'} {remote}"
        )

    @property
    def world_open(self) -> bool:
        return self.direction == "ingress" and not self.remote_group and self.remote_prefix == ANY


def _prefix(value: str | None) -> str:
    if not value:
        return ANY
    network = ipaddress.ip_network(value, strict=False)
    return ANY if network.prefixlen == 0 else str(network)


def _port(value: Any) -> int | None:
    return None if value is None else int(value)


@dataclass
class Declared:
    networks: dict[str, str] = field(default_factory=dict)  # name -> tier
    subnets: dict[str, str] = field(default_factory=dict)  # name -> cidr
    routers: dict[str, bool] = field(default_factory=dict)  # name -> external gateway
    groups: set[str] = field(default_factory=set)
    group_tiers: dict[str, str] = field(default_factory=dict)  # name -> tier (plan's tags)
    rules: set[RuleShape] = field(default_factory=set)
    ports: set[str] = field(default_factory=set)
    floating_ips: set[str] = field(default_factory=set)  # descriptions
    volumes: dict[str, str] = field(default_factory=dict)  # name -> volume type
    volume_types: set[str] = field(default_factory=set)
    secrets: dict[str, tuple[str, ...]] = field(default_factory=dict)  # name -> readers
    containers: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> ACLs


def _kind(resource: RecordedResource) -> str:
    return resource.type.rsplit(":", 1)[-1]


def _tier(resource: RecordedResource) -> str:
    for tag in resource.inputs.get("tags") or []:
        if isinstance(tag, str) and tag.startswith("tier="):
            return tag.removeprefix("tier=")
    return ""


def declared_from_plan(recording: Recording) -> Declared:
    declared = Declared()
    by_id = {r.id: r for r in recording.resources if r.id}

    def name_of(resource_id: Any) -> str:
        target = by_id.get(str(resource_id)) if resource_id else None
        return str(target.inputs.get("name", "")) if target else ""

    for resource in recording.resources:
        inputs = resource.inputs
        kind = _kind(resource)
        name = str(inputs.get("name", ""))
        if kind == "Network":
            declared.networks[name] = _tier(resource)
        elif kind == "Subnet":
            declared.subnets[name] = str(ipaddress.ip_network(inputs["cidr"]))
        elif kind == "Router":
            declared.routers[name] = bool(inputs.get("externalNetworkId"))
        elif kind == "SecGroup":
            declared.groups.add(name)
            declared.group_tiers[name] = _tier(resource)
        elif kind == "SecGroupRule":
            declared.rules.add(
                RuleShape(
                    group=name_of(inputs.get("securityGroupId")),
                    direction=str(inputs["direction"]),
                    ethertype=str(inputs.get("ethertype", "IPv4")),
                    protocol=str(inputs.get("protocol") or "any"),
                    port_min=_port(inputs.get("portRangeMin")),
                    port_max=_port(inputs.get("portRangeMax")),
                    remote_prefix=""
                    if inputs.get("remoteGroupId")
                    else _prefix(inputs.get("remoteIpPrefix")),
                    remote_group=name_of(inputs.get("remoteGroupId")),
                )
            )
        elif kind == "Port":
            declared.ports.add(name)
        elif kind == "FloatingIp":
            declared.floating_ips.add(str(inputs.get("description", "")))
        elif kind == "Volume":
            declared.volumes[name] = str(inputs.get("volumeType", ""))
        elif kind == "VolumeTypeV3":
            declared.volume_types.add(name)
        elif kind == "SecretV1":
            read = (inputs.get("acl") or {}).get("read") or {}
            declared.secrets[name] = tuple(sorted(read.get("users") or ()))
        elif kind == "Container":
            declared.containers[name] = {"read": str(inputs.get("containerRead") or ""),
                                         "write": str(inputs.get("containerWrite") or "")}
    return declared


@dataclass
class Live:
    """The project's resources as the APIs return them."""

    networks: list[Any]
    subnets: list[Any]
    routers: list[Any]
    groups: list[Any]
    rules: list[Any]
    ports: list[Any]
    floating_ips: list[Any]
    volumes: list[Any]
    volume_types: list[Any]
    secrets: list[Any]
    # Container name -> ACLs; None when the cloud has no object store.
    containers: dict[str, dict[str, str]] | None = None


def read_live(conn: Any) -> Live:
    """Read the project, one thread per service (each API answers on its own)."""
    project = conn.current_project_id
    network, block_storage, key_manager = conn.network, conn.block_storage, conn.key_manager

    def neutron() -> dict[str, list[Any]]:
        return {
            "networks": list(network.networks(project_id=project)),
            "subnets": list(network.subnets(project_id=project)),
            "routers": list(network.routers(project_id=project)),
            "groups": list(network.security_groups(project_id=project)),
            "rules": list(network.security_group_rules(project_id=project)),
            "ports": list(network.ports(project_id=project)),
            "floating_ips": list(network.ips(project_id=project)),
        }

    def cinder() -> dict[str, list[Any]]:
        return {
            "volumes": list(block_storage.volumes(details=True)),
            "volume_types": list(block_storage.types()),
        }

    def barbican() -> dict[str, list[Any]]:
        return {"secrets": list(key_manager.secrets())}

    def swift() -> dict[str, Any]:
        if not objectstore.object_store_urls(catalog(conn)):
            return {"containers": None}
        return {"containers": objectstore.container_acls(conn.object_store)}

    with ThreadPoolExecutor(max_workers=4) as pool:
        parts = [pool.submit(read) for read in (neutron, cinder, barbican, swift)]
        merged = {k: v for part in parts for k, v in part.result().items()}
    return Live(**merged)


def _fail(check: Rule, kind: str, name: str, message: str) -> Result:
    return Result(check, Status.FAIL, f"{kind} {name}: {message}", resource=f"{kind}/{name}")


def _missing(kind: str, names: Iterable[str], live: Iterable[str]) -> list[Result]:
    present = set(live)
    return [
        _fail(MISSING, kind, name, "declared, not found") for name in sorted(set(names) - present)
    ]


def _undeclared(kind: str, live: Iterable[str], names: Iterable[str]) -> list[Result]:
    known = set(names)
    return [
        _fail(UNDECLARED, kind, name, "live, not declared") for name in sorted(set(live) - known)
    ]


def _compare_networks(declared: Declared, live: Live) -> list[Result]:
    results = _missing("network", declared.networks, (n.name for n in live.networks))
    results += _undeclared("network", (n.name for n in live.networks), declared.networks)
    live_subnets = {s.name: str(ipaddress.ip_network(s.cidr)) for s in live.subnets}
    results += _missing("subnet", declared.subnets, live_subnets)
    results += _undeclared("subnet", live_subnets, declared.subnets)
    results += [
        _fail(UNDECLARED, "subnet", name, f"CIDR {live_subnets[name]}, declared {cidr}")
        for name, cidr in sorted(declared.subnets.items())
        if name in live_subnets and live_subnets[name] != cidr
    ]
    results += _missing("router", declared.routers, (r.name for r in live.routers))
    results += _undeclared("router", (r.name for r in live.routers), declared.routers)
    return results


class LiveTiers:
    """Tiers of live resources, from their CIDRs and what they are attached to."""

    def __init__(self, live: Live, seg: Segmentation, declared: Declared) -> None:
        self.seg = seg
        self.subnet = {s.id: seg.tiers_of(s.cidr) for s in live.subnets}
        self.network: dict[str, frozenset[str]] = {n.id: frozenset() for n in live.networks}
        for subnet in live.subnets:
            self.network[subnet.network_id] = (self.network.get(subnet.network_id, frozenset())
                                               | self.subnet[subnet.id])
        self.port = {p.id: self._port(p) for p in live.ports}
        self.group: dict[str, frozenset[str]] = {}
        for port in live.ports:
            for group in port.security_group_ids or []:
                self.group[group] = self.group.get(group, frozenset()) | self.port[port.id]
        # A group guarding no port yet: the plan's tier for the group of that name.
        for group in live.groups:
            if not self.group.get(group.id) and declared.group_tiers.get(group.name):
                self.group[group.id] = frozenset({declared.group_tiers[group.name]})

    def _port(self, port: Any) -> frozenset[str]:
        found: frozenset[str] = frozenset()
        for fixed in port.fixed_ips or []:
            found |= self.subnet.get(fixed.get("subnet_id"), frozenset())
            found |= self.seg.tiers_of(fixed.get("ip_address"))
        return found or self.network.get(port.network_id, frozenset())


def _compare_data_egress(live: Live, tiers: LiveTiers) -> list[Result]:
    data_networks = {n for n, t in tiers.network.items() if DATA_TIER in t}
    routers = {r.id: r for r in live.routers}
    results = []
    for port in live.ports:
        owner = str(port.device_owner or "")
        if owner.startswith(ROUTER_OWNERS) and DATA_TIER in tiers.port[port.id]:
            router = routers.get(port.device_id)
            name = (router.name or router.id) if router is not None else port.device_id
            detail = " whose router has an external gateway" if (
                router is not None and router.external_gateway_info) else ""
            results.append(_fail(DATA_EGRESS, "router", name,
                                 f"{owner} on data network {port.network_id}{detail}"))
    # Neutron's gateway port belongs to no project (not listed above): the router says it.
    for router in live.routers:
        gateway = (router.external_gateway_info or {}).get("network_id")
        if gateway in data_networks:
            results.append(_fail(DATA_EGRESS, "router", router.name or router.id,
                                 f"external gateway on data network {gateway}"))
    for subnet in live.subnets:
        if DATA_TIER in tiers.subnet[subnet.id] and subnet.gateway_ip:
            results.append(_fail(DATA_EGRESS, "subnet", subnet.name or subnet.id,
                                 f"gateway {subnet.gateway_ip} on data subnet {subnet.cidr}"))
    for network in live.networks:
        flags = [f for f, on in (("external", network.is_router_external),
                                 ("shared", network.is_shared)) if on]
        if network.id in data_networks and flags:
            results.append(_fail(DATA_EGRESS, "network", network.name or network.id,
                                 f"data network is {' and '.join(flags)}"))
    return results


def _compare_data_peers(live: Live, tiers: LiveTiers) -> list[Result]:
    group_names = {g.id: g.name for g in live.groups}
    results = []
    for rule in live.rules:
        if DATA_TIER not in tiers.group.get(rule.security_group_id, frozenset()):
            continue
        shape = _live_rule_shape(rule, group_names)
        if rule.remote_group_id:
            remote = tiers.group.get(rule.remote_group_id, frozenset())
            if not remote or not remote <= PEER_TIERS:
                results.append(_fail(DATA_PEER_RULE, "security-group-rule", str(shape),
                                     f"peer group of tier {'/'.join(sorted(remote)) or 'unknown'}"))
            continue
        prefix = ipaddress.ip_network(rule.remote_ip_prefix or (
            "::/0" if rule.ether_type == "IPv6" else "0.0.0.0/0"), strict=False)
        if not any(_inside(prefix, c) for c in tiers.seg.peer_cidrs(rule.direction)):
            results.append(_fail(DATA_PEER_RULE, "security-group-rule", str(shape),
                                 f"{prefix} is outside the peer tiers' CIDRs"))
    return results


def _live_rule_shape(rule: Any, group_names: dict[str, str]) -> RuleShape:
    return RuleShape(
        group=group_names.get(rule.security_group_id, rule.security_group_id),
        direction=rule.direction,
        ethertype=rule.ether_type,
        protocol=rule.protocol or "any",
        port_min=_port(rule.port_range_min),
        port_max=_port(rule.port_range_max),
        remote_prefix="" if rule.remote_group_id else _prefix(rule.remote_ip_prefix),
        remote_group=group_names.get(rule.remote_group_id, rule.remote_group_id or ""),
    )


def _compare_security(declared: Declared, live: Live) -> list[Result]:
    # Neutron creates "default" in every project; conformance checks its rules, drift only
    # looks at what was added to it.
    groups = [g for g in live.groups if g.name != "default"]
    results = _missing("security-group", declared.groups, (g.name for g in groups))
    results += _undeclared("security-group", (g.name for g in groups), declared.groups)
    group_names = {g.id: g.name for g in live.groups}
    default_ids = {g.id for g in live.groups if g.name == "default"}
    shapes = []
    for rule in live.rules:
        shape = _live_rule_shape(rule, group_names)
        if rule.security_group_id in default_ids and (
            rule.direction == "egress" or rule.remote_group_id in default_ids
        ):
            continue  # Neutron's own default rules
        shapes.append(shape)
    live_shapes = set(shapes)
    for shape in sorted(live_shapes - declared.rules):
        check = WORLD_OPEN_RULE if shape.world_open else UNDECLARED
        results.append(_fail(check, "security-group-rule", str(shape), "live, not declared"))
    results += [
        _fail(MISSING, "security-group-rule", str(shape), "declared, not found")
        for shape in sorted(declared.rules - live_shapes)
    ]
    return results


def _compare_ports(declared: Declared, live: Live) -> list[Result]:
    own = [p for p in live.ports if not p.device_owner]
    results = _missing("port", declared.ports, (p.name for p in live.ports))
    results += _undeclared("port", (p.name or p.id for p in own), declared.ports)
    return results


def _compare_floating_ips(declared: Declared, live: Live, tiers: LiveTiers) -> list[Result]:
    results = []
    seen = set()
    for fip in live.floating_ips:
        label = fip.floating_ip_address or fip.id
        seen.add(fip.description or "")
        if fip.port_id:
            tier = tiers.port.get(fip.port_id, frozenset()) | tiers.seg.tiers_of(
                fip.fixed_ip_address)
            if not tier or not tier <= PUBLIC_TIERS:
                results.append(
                    _fail(FLOATING_IP, "floating-ip", label,
                          f"on port {fip.port_id} of a {'/'.join(sorted(tier)) or 'untiered'} "
                          "network")
                )  # fmt: skip
                continue
        if (fip.description or "") not in declared.floating_ips:
            results.append(_fail(UNDECLARED, "floating-ip", label, "live, not declared"))
    results += [
        _fail(MISSING, "floating-ip", description, "declared, not found")
        for description in sorted(declared.floating_ips - seen)
    ]
    return results


def _encrypted_types(conn: Any, types: list[Any]) -> dict[str, bool]:
    encrypted = {}
    for volume_type in types:
        try:
            spec = conn.block_storage.get_type_encryption(volume_type.id)
        except os_exc.ForbiddenException:
            encrypted[volume_type.name] = False
            continue
        encrypted[volume_type.name] = luks_spec_ok(spec)
    return encrypted


def _compare_volumes(conn: Any, declared: Declared, live: Live) -> list[Result]:
    encrypted = _encrypted_types(conn, live.volume_types)
    results = _missing("volume-type", declared.volume_types, encrypted)
    results += [
        _fail(VOLUME_TYPE_ENCRYPTION, "volume-type", name, "no LUKS encryption spec")
        for name in sorted(declared.volume_types)
        if name in encrypted and not encrypted[name]
    ]
    results += _missing("volume", declared.volumes, (v.name for v in live.volumes))
    for volume in live.volumes:
        label = volume.name or volume.id
        if not encrypted.get(volume.volume_type, False):
            results.append(
                _fail(UNENCRYPTED_VOLUME, "volume", label, f"type {volume.volume_type!r}")
            )
        elif volume.name not in declared.volumes:
            results.append(_fail(UNDECLARED, "volume", label, "live, not declared"))
    return results


def _secret_read_acl(conn: Any, secret: Any) -> dict[str, Any] | None:
    """The secret's read ACL, or None when it is closed to these credentials."""
    secret_id = secret.secret_ref.rsplit("/", 1)[-1]
    response = conn.key_manager.get(f"/secrets/{secret_id}/acl", raise_exc=False)
    if response.status_code == 403:
        # A project-wide ACL would let any member read it: this one is restricted.
        return None
    response.raise_for_status()
    read: dict[str, Any] = response.json().get("read", {})
    return read


def _user_names(conn: Any, user_ids: Iterable[str]) -> dict[str, str] | None:
    """ACL user ids -> names, or None when these credentials may not read users."""
    names = {}
    for user_id in user_ids:
        try:
            names[user_id] = conn.identity.get_user(user_id).name
        except (os_exc.ForbiddenException, os_exc.NotFoundException):
            return None
    return names


def _compare_secrets(conn: Any, declared: Declared, live: Live) -> list[Result]:
    results = _missing("secret", declared.secrets, (s.name for s in live.secrets))
    unresolved = []
    # Cinder creates one key per encrypted volume (unnamed, default ACL): it belongs to the
    # declared volume, not to the program's keys.
    volume_keys = {v.encryption_key_id for v in live.volumes if v.encryption_key_id}
    for secret in live.secrets:
        if secret.secret_ref.rsplit("/", 1)[-1] in volume_keys:
            continue
        label = secret.name or secret.secret_ref
        read = _secret_read_acl(conn, secret)
        if read is not None and read.get("project-access", True):
            results.append(
                _fail(SECRET_ACL, "secret", label, "readable by every member of the project")
            )
            continue
        if secret.name not in declared.secrets:
            results.append(_fail(UNDECLARED, "secret", label, "live, not declared"))
            continue
        users = None if read is None else _user_names(conn, read.get("users") or [])
        if users is None:
            unresolved.append(label)
            continue
        extra = sorted(set(users.values()) - set(declared.secrets[secret.name]))
        if extra:
            results.append(_fail(SECRET_ACL, "secret", label, f"also readable by {extra}"))
    if unresolved:
        results.append(
            Result(SECRET_ACL, Status.NOT_CHECKED,
                   f"ACL users of {len(unresolved)} secrets not compared: these credentials "
                   "cannot read user names (project-access was checked)")
        )  # fmt: skip
    return results


def _compare_containers(declared: Declared, live: Live) -> list[Result]:
    if live.containers is None:
        return [Result(objectstore.DRIFT_CONTAINER, Status.NOT_CHECKED,
                       "no object store in the catalog")] if declared.containers else []
    return objectstore.compare_containers(declared.containers, live.containers)


def compare(conn: Any, declared: Declared, live: Live, seg: Segmentation) -> list[Result]:
    tiers = LiveTiers(live, seg, declared)
    results = (
        _compare_networks(declared, live)
        + _compare_data_egress(live, tiers)
        + _compare_data_peers(live, tiers)
        + _compare_security(declared, live)
        + _compare_ports(declared, live)
        + _compare_floating_ips(declared, live, tiers)
        + _compare_volumes(conn, declared, live)
        + _compare_secrets(conn, declared, live)
        + _compare_containers(declared, live)
    )
    failing = {r.check.id for r in results if r.status is Status.FAIL}
    # No object store: the container comparison did not happen, so it did not pass either.
    failing |= {r.check.id for r in results
                if r.status is Status.NOT_CHECKED and r.check is objectstore.DRIFT_CONTAINER}
    counts = (
        f"{len(live.networks)} networks, {len(live.subnets)} subnets, {len(live.routers)} "
        f"routers, {len(live.groups)} groups, {len(live.rules)} rules, {len(live.ports)} ports, "
        f"{len(live.floating_ips)} floating IPs, {len(live.volumes)} volumes, "
        f"{len(live.secrets)} secrets, "
        + ("no object store" if live.containers is None else f"{len(live.containers)} containers")
    )
    results += [
        Result(check, Status.PASS, f"compared {counts}")
        for check in CHECKS
        if check.id not in failing
    ]
    return results


def run(conn: Any, recording: Recording, seg: Segmentation) -> list[Result]:
    return compare(conn, declared_from_plan(recording), read_live(conn), seg)


def run_with_plan(conn: Any, plan: Callable[[], Recording], seg: Segmentation) -> list[Result]:
    """Read the cloud while the program is evaluated offline: both take seconds."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        live = pool.submit(read_live, conn)
        declared = declared_from_plan(plan())
        return compare(conn, declared, live.result(), seg)
