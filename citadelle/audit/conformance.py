"""Conformance of a candidate cloud, before migration, through its public APIs.

In the spirit of the Sovereign Cloud Stack conformance tests: each check reads what an ordinary
project member can read, and the one that must write (the key-manager order) deletes what it
created and says so.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from openstack import exceptions as os_exc

from citadelle.audit import objectstore
from citadelle.audit.allowlist import AllowList
from citadelle.audit.model import Result, Severity, Status, audit_rule
from citadelle.evidence.findings import Rule
from citadelle.plan.offline import Recording

ENDPOINT_LOCATION = audit_rule(
    "endpoint-location",
    "Every catalog endpoint is hosted by an allow-listed EU provider",
    ("19.2", "19.6"),
    Severity.HIGH,
    "Remove or relocate the endpoint, or add its provider (with jurisdiction evidence) to "
    "citadelle:sovereignty.",
)
ENDPOINT_TLS = audit_rule(
    "endpoint-tls",
    "Every catalog endpoint is served over TLS 1.2 or later",
    ("10.2",),
    Severity.HIGH,
    "Serve the endpoint over https with TLS >= 1.2 and a certificate from an EU root of trust.",
)
REGION_ALLOWED = audit_rule(
    "region-allowed",
    "Region names are allow-listed and the environment's region exists",
    ("19.2",),
    Severity.HIGH,
    "Use only the regions declared for the provider in citadelle:sovereignty.",
)
KEY_MANAGER = audit_rule(
    "key-manager",
    "Barbican is present, usable by a member and generates an AES-256 key through an order",
    ("10.5", "10.1"),
    Severity.HIGH,
    "Ask the provider for a key-manager service (HSM-backed) open to the project's members.",
)
ENCRYPTED_VOLUME_TYPE = audit_rule(
    "encrypted-volume-type",
    "A LUKS-encrypted volume type is offered with a readable encryption spec",
    ("10.1",),
    Severity.HIGH,
    "Ask the provider for a volume type with LUKS front-end encryption (aes-xts-plain64, 256 "
    "bit or more) and read access to its encryption spec.",
)
DEFAULT_SECURITY_GROUP = audit_rule(
    "default-security-group",
    "The default security group admits no ingress from outside the group",
    ("13.2", "9.7"),
    Severity.HIGH,
    "Delete every ingress rule of the default group whose source is not the group itself.",
)
IMAGE_SIGNATURE = audit_rule(
    "image-signature",
    "Images expose signature properties and the platform image is signed",
    ("12.10",),
    Severity.MEDIUM,
    "Upload the hardened image with img_signature* properties and enable verification.",
)
AVAILABILITY_ZONES = audit_rule(
    "availability-zones",
    "The availability zones the stack needs exist",
    ("17.4",),
    Severity.MEDIUM,
    "Change citadelle:openstack.availabilityZones or ask the provider for the zones.",
)
QUOTAS = audit_rule(
    "quotas",
    "Project quotas leave room for the environment's planned resources",
    ("17.4",),
    Severity.MEDIUM,
    "Ask the provider to raise the listed quotas before migrating.",
)
CHECKS = (
    ENDPOINT_LOCATION,
    ENDPOINT_TLS,
    REGION_ALLOWED,
    KEY_MANAGER,
    ENCRYPTED_VOLUME_TYPE,
    DEFAULT_SECURITY_GROUP,
    IMAGE_SIGNATURE,
    AVAILABILITY_ZONES,
    QUOTAS,
    objectstore.OBJECT_STORE,
    objectstore.OBJECT_ENCRYPTION,
    objectstore.PUBLIC_CONTAINER,
)

LUKS_PROVIDERS = frozenset(
    {
        "luks",
        "luks2",
        "nova.volume.encryptors.luks.LuksEncryptor",
        "os_brick.encryptors.luks.LuksEncryptor",
        "os_brick.encryptors.luks.Luks2Encryptor",
    }
)
ORDER_TIMEOUT = 30.0
TLS_TIMEOUT = 5.0


@dataclass(frozen=True)
class Endpoint:
    service_type: str
    interface: str
    region: str
    url: str

    @property
    def host(self) -> str:
        return (urlsplit(self.url).hostname or "").lower()


@dataclass(frozen=True)
class Context:
    conn: Any
    allow: AllowList
    mode: str  # "lab" or "prod"
    region: str | None
    image: str | None
    planned: dict[str, int]


def catalog(conn: Any) -> list[Endpoint]:
    access = conn.session.auth.get_access(conn.session)
    return [
        Endpoint(
            service_type=service["type"],
            interface=endpoint.get("interface", ""),
            region=endpoint.get("region_id") or endpoint.get("region") or "",
            url=endpoint["url"],
        )
        for service in access.service_catalog.catalog
        for endpoint in service.get("endpoints", [])
    ]


def _roles(conn: Any) -> list[str]:
    return sorted(conn.session.auth.get_access(conn.session).role_names)


def check_endpoint_location(ctx: Context) -> list[Result]:
    endpoints = catalog(ctx.conn)
    outside = sorted(
        {f"{e.service_type} {e.url}" for e in endpoints if not ctx.allow.allows_host(e.host)}
    )
    if outside:
        return [
            Result(ENDPOINT_LOCATION, Status.FAIL, f"not allow-listed: {entry}", resource=entry)
            for entry in outside
        ]
    hosts = sorted({e.host for e in endpoints})
    return [
        Result(ENDPOINT_LOCATION, Status.PASS, f"{len(endpoints)} endpoints on {', '.join(hosts)}")
    ]


def _tls_version(host: str, port: int) -> str:
    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    with (
        socket.create_connection((host, port), timeout=TLS_TIMEOUT) as sock,
        context.wrap_socket(sock, server_hostname=host) as tls,
    ):
        return tls.version() or "unknown"


def check_endpoint_tls(ctx: Context) -> list[Result]:
    endpoints = catalog(ctx.conn)
    if ctx.mode == "lab":
        return [
            Result(
                ENDPOINT_TLS,
                Status.NOT_CHECKED,
                f"lab mode: TLS of {len(endpoints)} endpoints not checked (run with --mode prod)",
            )
        ]
    results = []
    seen: set[tuple[str, int]] = set()
    for endpoint in endpoints:
        parts = urlsplit(endpoint.url)
        if parts.scheme != "https":
            results.append(
                Result(
                    ENDPOINT_TLS, Status.FAIL, f"{endpoint.url}: not https", resource=endpoint.url
                )
            )
            continue
        key = (endpoint.host, parts.port or 443)
        if key in seen:
            continue
        seen.add(key)
        try:
            version = _tls_version(*key)
        except (OSError, ssl.SSLError) as err:
            results.append(
                Result(ENDPOINT_TLS, Status.FAIL, f"{endpoint.url}: {err}", resource=endpoint.url)
            )
            continue
        results.append(Result(ENDPOINT_TLS, Status.PASS, f"{key[0]}:{key[1]} {version}"))
    return results


def check_regions(ctx: Context) -> list[Result]:
    live = {r.id for r in ctx.conn.identity.regions()} | {e.region for e in catalog(ctx.conn)}
    live.discard("")
    results = [
        Result(
            REGION_ALLOWED, Status.FAIL, f"region {region!r} is not allow-listed", resource=region
        )
        for region in sorted(live)
        if not ctx.allow.allows_region(region)
    ]
    if ctx.region is not None and ctx.region not in live:
        results.append(
            Result(
                REGION_ALLOWED,
                Status.FAIL,
                f"the environment's region {ctx.region!r} does not exist (live: {sorted(live)})",
                resource=ctx.region,
            )
        )
    return results or [Result(REGION_ALLOWED, Status.PASS, f"regions {', '.join(sorted(live))}")]


def check_key_manager(ctx: Context) -> list[Result]:
    if not any(e.service_type == "key-manager" for e in catalog(ctx.conn)):
        return [Result(KEY_MANAGER, Status.FAIL, "no key-manager endpoint in the catalog")]
    roles = _roles(ctx.conn)
    km = ctx.conn.key_manager
    order = km.create_order(
        type="key",
        meta={"name": "citadelle-conformance-probe", "algorithm": "aes", "bit_length": 256,
              "mode": "cbc"},
    )  # fmt: skip
    order_id = order.order_ref.rsplit("/", 1)[-1]
    created = [f"order {order_id}"]
    try:
        deadline = time.monotonic() + ORDER_TIMEOUT
        while order.status not in ("ACTIVE", "ERROR") and time.monotonic() < deadline:
            time.sleep(0.2)
            order = km.get_order(order_id)
        if order.status != "ACTIVE":
            return [
                Result(KEY_MANAGER, Status.FAIL,
                       f"order {order_id} ended {order.status}: {order.error_reason or 'timeout'}")
            ]  # fmt: skip
        secret_id = order.secret_ref.rsplit("/", 1)[-1]
        created.append(f"secret {secret_id}")
        secret = km.get_secret(secret_id)
        km.delete_secret(secret_id)
        if (secret.algorithm or "").lower() != "aes" or int(secret.bit_length or 0) < 256:
            return [
                Result(KEY_MANAGER, Status.FAIL,
                       f"order produced {secret.algorithm}-{secret.bit_length}, not AES-256")
            ]  # fmt: skip
    finally:
        km.delete_order(order_id, ignore_missing=True)
    message = (
        f"AES-256 key generated through an order as roles [{', '.join(roles)}]; "
        f"cleaned up: {', '.join(created)} deleted"
    )
    if "admin" in roles:
        return [
            Result(KEY_MANAGER, Status.FAIL,
                   f"{message}; run with a member account: an admin role proves nothing for "
                   "members")
        ]  # fmt: skip
    return [Result(KEY_MANAGER, Status.PASS, message)]


def luks_spec_ok(encryption: Any) -> bool:
    return (
        (encryption.provider or "") in LUKS_PROVIDERS
        and encryption.cipher == "aes-xts-plain64"
        and int(encryption.key_size or 0) >= 256
        and encryption.control_location == "front-end"
    )


def check_encrypted_volume_type(ctx: Context) -> list[Result]:
    unreadable = []
    seen = []
    for volume_type in ctx.conn.block_storage.types():
        try:
            encryption = ctx.conn.block_storage.get_type_encryption(volume_type.id)
        except os_exc.ForbiddenException:
            unreadable.append(volume_type.name)
            continue
        if luks_spec_ok(encryption):
            return [
                Result(ENCRYPTED_VOLUME_TYPE, Status.PASS,
                       f"type {volume_type.name!r}: {encryption.provider} {encryption.cipher} "
                       f"{encryption.key_size} bit, {encryption.control_location}",
                       resource=volume_type.name)
            ]  # fmt: skip
        seen.append(volume_type.name)
    detail = f"types {sorted(seen)} not LUKS-encrypted"
    if unreadable:
        detail += f"; encryption spec not readable (HTTP 403) for {sorted(unreadable)}"
    return [Result(ENCRYPTED_VOLUME_TYPE, Status.FAIL, detail)]


def check_default_security_group(ctx: Context) -> list[Result]:
    project = ctx.conn.current_project_id
    groups = list(ctx.conn.network.security_groups(name="default", project_id=project))
    if not groups:
        return [Result(DEFAULT_SECURITY_GROUP, Status.FAIL, "no default security group found")]
    group = groups[0]
    open_rules = [
        rule
        for rule in ctx.conn.network.security_group_rules(security_group_id=group.id)
        if rule.direction == "ingress" and rule.remote_group_id != group.id
    ]
    if open_rules:
        return [
            Result(DEFAULT_SECURITY_GROUP, Status.FAIL,
                   f"ingress {rule.protocol or 'any'} {rule.port_range_min or ''}"
                   f"{'-' + str(rule.port_range_max) if rule.port_range_max else ''} from "
                   f"{rule.remote_ip_prefix or rule.remote_group_id or 'anywhere'}",
                   resource=rule.id)
            for rule in open_rules
        ]  # fmt: skip
    return [
        Result(DEFAULT_SECURITY_GROUP, Status.PASS, f"group {group.id}: ingress only from itself")
    ]


def check_image_signature(ctx: Context) -> list[Result]:
    if not any(e.service_type == "image" for e in catalog(ctx.conn)):
        return [Result(IMAGE_SIGNATURE, Status.NOT_APPLICABLE, "no image service in the catalog")]
    if ctx.image is None:
        return [Result(IMAGE_SIGNATURE, Status.NOT_CHECKED, "no platform image name given")]
    images = list(ctx.conn.image.images(name=ctx.image))
    if not images:
        return [Result(IMAGE_SIGNATURE, Status.FAIL, f"image {ctx.image!r} not found")]
    needed = ("img_signature", "img_signature_hash_method", "img_signature_key_type",
              "img_signature_certificate_uuid")  # fmt: skip
    properties = images[0].properties or {}
    missing = [p for p in needed if not properties.get(p)]
    if missing:
        return [Result(IMAGE_SIGNATURE, Status.FAIL, f"image {ctx.image!r} lacks {missing}")]
    return [Result(IMAGE_SIGNATURE, Status.PASS, f"image {ctx.image!r} carries a signature")]


def _live_zones(ctx: Context) -> dict[str, set[str]]:
    services = {e.service_type for e in catalog(ctx.conn)}
    zones: dict[str, set[str]] = {}
    if services & {"block-storage", "volumev3"}:
        zones["block-storage"] = {
            z.name for z in ctx.conn.block_storage.availability_zones() if z.state.get("available")
        }
    if "compute" in services:
        zones["compute"] = {
            z.name for z in ctx.conn.compute.availability_zones() if z.state.get("available")
        }
    return zones


def check_availability_zones(ctx: Context) -> list[Result]:
    needed = set(ctx.allow.availability_zones)
    zones = _live_zones(ctx)
    if not zones:
        return [Result(AVAILABILITY_ZONES, Status.FAIL, "neither compute nor block storage zones")]
    results = []
    for service, live in sorted(zones.items()):
        missing = sorted(needed - live)
        status = Status.FAIL if missing else Status.PASS
        text = f"{service}: live {sorted(live)}, needed {sorted(needed)}"
        results.append(
            Result(AVAILABILITY_ZONES, status, text + (f", missing {missing}" if missing else ""))
        )
    if "compute" not in zones:
        results.append(
            Result(
                AVAILABILITY_ZONES,
                Status.NOT_CHECKED,
                "no compute service: compute zones not checked",
            )
        )
    return results


# Quota name (as planned) -> openstacksdk attribute of the network quota details.
_NETWORK_QUOTAS = {
    "network": "networks",
    "subnet": "subnets",
    "router": "routers",
    "port": "ports",
    "security_group": "security_groups",
    "security_group_rule": "security_group_rules",
    "floatingip": "floating_ips",
}
_VOLUME_QUOTAS = ("volumes", "gigabytes")


def planned_usage(recording: Recording) -> dict[str, int]:
    """What the environment's plan consumes, quota by quota."""
    count = Counter(r.type.rsplit(":", 1)[-1] for r in recording.resources if r.custom)
    by_type = {t: [r for r in recording.resources if r.type.rsplit(":", 1)[-1] == t] for t in count}
    dhcp_subnets = sum(1 for r in by_type.get("Subnet", []) if r.inputs.get("enableDhcp", True))
    return {
        "network": count["Network"],
        "subnet": count["Subnet"],
        "router": count["Router"],
        # Declared ports, router interfaces, load balancer VIPs and one DHCP port per subnet.
        "port": count["Port"] + count["RouterInterface"] + count["LoadBalancer"] + dhcp_subnets,
        # Plus the project's default group and its four default rules.
        "security_group": count["SecGroup"] + 1,
        "security_group_rule": count["SecGroupRule"] + 4,
        "floatingip": count["FloatingIp"],
        "volumes": count["Volume"],
        "gigabytes": sum(int(r.inputs.get("size", 0)) for r in by_type.get("Volume", [])),
        "instances": count["Instance"],
    }


def _room(limit: int, used: int) -> int | None:
    return None if limit < 0 else limit - used


def check_quotas(ctx: Context) -> list[Result]:
    project = ctx.conn.current_project_id
    services = {e.service_type for e in catalog(ctx.conn)}
    short = []
    checked = []
    network = ctx.conn.network.get_quota(project, details=True)
    for name, attribute in _NETWORK_QUOTAS.items():
        detail = getattr(network, attribute)
        room = _room(int(detail["limit"]), int(detail["used"]))
        checked.append(name)
        if room is not None and room < ctx.planned.get(name, 0):
            short.append(f"{name} {room} free < {ctx.planned[name]} planned")
    volume = ctx.conn.block_storage.get_quota_set(project, usage=True)
    usage = volume.usage or {}
    reserved = volume.reservation or {}
    for name in _VOLUME_QUOTAS:
        limit = int(getattr(volume, name))
        room = _room(limit, int(usage.get(name, 0)) + int(reserved.get(name, 0)))
        checked.append(name)
        if room is not None and room < ctx.planned.get(name, 0):
            short.append(f"{name} {room} free < {ctx.planned[name]} planned")
    results = [Result(QUOTAS, Status.FAIL, entry, resource=entry.split()[0]) for entry in short]
    if not results:
        results.append(Result(QUOTAS, Status.PASS, f"room for the plan in {', '.join(checked)}"))
    if "compute" not in services:
        results.append(
            Result(QUOTAS, Status.NOT_CHECKED,
                   f"no compute service: {ctx.planned.get('instances', 0)} planned instances "
                   "not checked")
        )  # fmt: skip
    return results


def check_object_store(ctx: Context) -> list[Result]:
    return objectstore.check_endpoints(catalog(ctx.conn), ctx.allow.allows_host)


def _object_store_root(ctx: Context) -> str | None:
    urls = objectstore.object_store_urls(catalog(ctx.conn))
    if not urls:
        return None
    parts = urlsplit(urls[0])
    return f"{parts.scheme}://{parts.netloc}"


def check_object_encryption(ctx: Context) -> list[Result]:
    root = _object_store_root(ctx)
    if root is None:
        return [Result(objectstore.OBJECT_ENCRYPTION, Status.NOT_CHECKED, "no object store")]
    return objectstore.check_encryption(ctx.conn.object_store, root, objectstore.info_key())


def check_public_containers(ctx: Context) -> list[Result]:
    if _object_store_root(ctx) is None:
        return [Result(objectstore.PUBLIC_CONTAINER, Status.NOT_CHECKED, "no object store")]
    return objectstore.check_public(objectstore.container_acls(ctx.conn.object_store))


CHECK_FUNCTIONS: tuple[tuple[Rule, Callable[[Context], list[Result]]], ...] = (
    (ENDPOINT_LOCATION, check_endpoint_location),
    (ENDPOINT_TLS, check_endpoint_tls),
    (REGION_ALLOWED, check_regions),
    (KEY_MANAGER, check_key_manager),
    (ENCRYPTED_VOLUME_TYPE, check_encrypted_volume_type),
    (DEFAULT_SECURITY_GROUP, check_default_security_group),
    (IMAGE_SIGNATURE, check_image_signature),
    (AVAILABILITY_ZONES, check_availability_zones),
    (QUOTAS, check_quotas),
    (objectstore.OBJECT_STORE, check_object_store),
    (objectstore.OBJECT_ENCRYPTION, check_object_encryption),
    (objectstore.PUBLIC_CONTAINER, check_public_containers),
)


def run(ctx: Context, only: Iterable[str] = ()) -> list[Result]:
    wanted = set(only)
    results: list[Result] = []
    for check, function in CHECK_FUNCTIONS:
        if wanted and check.id not in wanted:
            continue
        try:
            results.extend(function(ctx))
        except os_exc.HttpException as err:
            if err.status_code in (401, 403):
                results.append(
                    Result(check, Status.FAIL, f"refused (HTTP {err.status_code}): {err.details}")
                )
            else:
                raise
    return results
