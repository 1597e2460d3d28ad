"""Stack configuration, read once into typed, validated models.

Every ``citadelle:*`` key of the stack (project defaults in ``Pulumi.yaml`` merged with
``environments/Pulumi.<env>.yaml`` by the Pulumi engine) maps to one field of ``Settings``.
Nothing else in the program reads ``pulumi.Config``: components receive Args built from these
models. Any invalid value stops the program before a single resource is declared, with one line
naming the key, the bad value and what is allowed.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import re
from collections.abc import Callable, Collection, Mapping
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

import pulumi
from pulumi.runtime import config as runtime_config
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

NAMESPACE = "citadelle"
Environment = Literal["dev", "mirror", "prod"]
ENVIRONMENTS: tuple[Environment, ...] = ("dev", "mirror", "prod")
TIERS = ("edge", "app", "data", "admin", "transfer")
NODE_ROLES = ("bastion", "gateway", "node")
BP028_LEVELS = ("minimal", "intermediary", "enhanced", "high")
EndpointKind = Literal[
    "openstack-auth",
    "object-storage",
    "state-backend",
    "secrets",
    "container-registry",
    "package-mirror",
    "ntp",
    "dns",
    "log-collector",
    "smtp",
]
ENDPOINT_KINDS: tuple[str, ...] = get_args(EndpointKind)
# Endpoint kinds spoken over HTTP with credentials or data: https only.
TLS_ENDPOINT_KINDS = frozenset(
    {"openstack-auth", "object-storage", "state-backend", "secrets", "container-registry",
     "log-collector"}
)
# ISO 3166 codes of the EU member states: the jurisdictions SecNumCloud 19.2/19.6 accept for
# data location and for the provider's registered office.
EU_MEMBER_STATES = frozenset(
    (
        "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU",
        "IE", "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
    )
)
# Namespaces the Kubernetes baseline declares; workspaces get ``ws-<id>``.
PLATFORM_NAMESPACES = ("citadelle-system", "citadelle-ingress", "citadelle-apps")
SYSTEM_NAMESPACE, INGRESS_NAMESPACE, APPS_NAMESPACE = PLATFORM_NAMESPACES
WORKSPACE_NAMESPACE_PREFIX = "ws-"
_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{1,40}$")
_HOST_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9-]{1,63}$")


class ConfigError(pulumi.RunError):
    """Invalid stack configuration: the Pulumi engine prints only this message, no traceback."""


# --------------------------------------------------------------------------- field validators


def _cidr(value: str) -> str:
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as err:
        raise ValueError(
            f"{value!r} is not a valid network CIDR (expected e.g. 10.20.0.0/24 with no host bits)"
        ) from err
    if net.version != 4:
        raise ValueError(f"{value!r} is IPv6; the landing zone is IPv4-only (BP-028 R13)")
    return value


def _host(value: str) -> str:
    host = value.lower()
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    if not _HOST_RE.match(host):
        raise ValueError(f"{value!r} is not a valid host name or IP address")
    return host


def _name(value: str) -> str:
    if not _NAME_RE.match(value):
        raise ValueError(
            f"{value!r} is not a valid name (lowercase letters, digits and '-', 2-41 chars, "
            "starting with a letter)"
        )
    return value


Cidr = Annotated[str, AfterValidator(_cidr)]
Host = Annotated[str, AfterValidator(_host)]
Name = Annotated[str, AfterValidator(_name)]


class _Model(BaseModel):
    """camelCase keys as in the YAML stack files; unknown keys are refused."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


# --------------------------------------------------------------------------- sovereignty


def host_covered(host: str, domains: Collection[str], networks: Collection[str]) -> bool:
    """The one host matcher of the allow-list: a domain (or below it), or inside a network."""
    host = host.lower().strip("[]")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return any(host == d or host.endswith("." + d) for d in domains)
    return any(address in ipaddress.ip_network(n) for n in networks)


class Provider(_Model):
    """A provider the platform may depend on, with the evidence of its jurisdiction."""

    name: Name
    label: str = Field(min_length=3)
    jurisdiction: str = Field(description="ISO 3166 code of the provider's registered office")
    qualification: str = Field(min_length=3, description="SecNumCloud qualification or status")
    evidence: str = Field(min_length=3, description="where the qualification can be checked")
    domains: tuple[Host, ...] = ()
    networks: tuple[Cidr, ...] = ()
    regions: tuple[str, ...] = ()

    @field_validator("jurisdiction")
    @classmethod
    def _eu(cls, value: str) -> str:
        """An EU member state (SecNumCloud 19.2/19.6)."""
        if value not in EU_MEMBER_STATES:
            raise ValueError(
                f"{value!r} is not an EU member state; SecNumCloud 19.2/19.6 require an EU "
                f"jurisdiction (allowed: {', '.join(sorted(EU_MEMBER_STATES))})"
            )
        return value

    def covers(self, host: str) -> bool:
        """True when ``host`` is one of the provider's domains or inside its networks."""
        return host_covered(host, self.domains, self.networks)


class Endpoint(_Model):
    """An outside endpoint the platform or its tooling talks to."""

    name: Name
    kind: EndpointKind
    url: str = Field(description="URL, host:port or bare host/IP")
    provider: Name
    environments: tuple[Environment, ...] = ENVIRONMENTS

    @property
    def host(self) -> str:
        return endpoint_host(self.url)

    @model_validator(mode="after")
    def _form(self) -> Endpoint:
        """https for credentials or data; NTP and DNS bare hosts; mirrors http(s)."""
        # Services reached over HTTP carry credentials or data: TLS only (SecNumCloud 10.2).
        # NTP and DNS are bare hosts; mirrors may be http (apt checks the archive signature).
        scheme = urlsplit(self.url).scheme if "://" in self.url else ""
        if self.kind in TLS_ENDPOINT_KINDS and scheme != "https":
            raise ValueError(
                f"endpoint {self.name!r} ({self.kind}) url {self.url!r} must be https://")
        if self.kind in ("ntp", "dns") and scheme:
            raise ValueError(
                f"endpoint {self.name!r} ({self.kind}) url {self.url!r} must be a bare host or "
                "address")
        if self.kind == "package-mirror" and scheme not in ("https", "http"):
            raise ValueError(
                f"endpoint {self.name!r} (package-mirror) url {self.url!r} must be http(s)://")
        _host(self.host)
        return self


def endpoint_host(url: str) -> str:
    """The host part of a URL, ``host:port`` or bare host."""
    parsed = urlsplit(url if "://" in url else f"//{url}")
    return (parsed.hostname or "").lower()


class Sovereignty(_Model):
    """The one allow-list of providers and outside endpoints (SecNumCloud 19.2, 19.6, 12.14)."""

    providers: tuple[Provider, ...] = Field(min_length=1)
    endpoints: tuple[Endpoint, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _endpoints_covered(self) -> Sovereignty:
        """Unique names; every endpoint's host inside its provider's domains or networks."""
        for what, names in (("provider", [p.name for p in self.providers]),
                            ("endpoint", [e.name for e in self.endpoints])):
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                raise ValueError(f"duplicate {what} name(s) {duplicates}; names are unique")
        by_name = {p.name: p for p in self.providers}
        for endpoint in self.endpoints:
            provider = by_name.get(endpoint.provider)
            if provider is None:
                raise ValueError(
                    f"endpoint {endpoint.name!r} names unknown provider {endpoint.provider!r} "
                    f"(declared providers: {', '.join(sorted(by_name))})"
                )
            if not provider.covers(endpoint.host):
                raise ValueError(
                    f"endpoint {endpoint.name!r} host {endpoint.host!r} is outside provider "
                    f"{provider.name!r} (domains {list(provider.domains)}, networks "
                    f"{list(provider.networks)})"
                )
        return self

    def provider(self, name: str) -> Provider:
        return next(p for p in self.providers if p.name == name)

    def for_environment(self, env: str, kind: str) -> tuple[Endpoint, ...]:
        return tuple(e for e in self.endpoints if e.kind == kind and env in e.environments)

    def allowed(self, host: str) -> Endpoint | None:
        """The declared endpoint that allows ``host``, if any."""
        host = host.lower()
        return next((e for e in self.endpoints if e.host == host), None)

    def allowed_regions(self) -> frozenset[str]:
        return frozenset(r for p in self.providers for r in p.regions)


# --------------------------------------------------------------------------- openstack


class OpenStackSettings(_Model):
    auth_url: str
    region: str = Field(min_length=2)
    provider: Name
    cloud: str | None = Field(
        default=None, description="clouds.yaml entry; credentials never live in stack config"
    )
    external_network: str = Field(min_length=1)
    availability_zones: tuple[str, ...] = Field(min_length=1, max_length=6)

    @field_validator("auth_url")
    @classmethod
    def _https(cls, value: str) -> str:
        """An https:// URL."""
        parsed = urlsplit(value)
        if parsed.scheme != "https" or not parsed.hostname:
            raise ValueError(
                f"{value!r} is not an https:// URL; the identity endpoint must use TLS "
                "(SecNumCloud 10.x)"
            )
        return value


# --------------------------------------------------------------------------- network


class TierSettings(_Model):
    cidr: Cidr
    egress: bool = Field(default=False, description="router to the external network")


class NetworkSettings(_Model):
    tiers: dict[Literal["edge", "app", "data", "admin", "transfer"], TierSettings]
    admin_cidrs: tuple[Cidr, ...] = Field(min_length=1)
    transfer_source_cidrs: tuple[Cidr, ...] = Field(
        default=(), description="the legacy hosting's egress ranges allowed into the gateway"
    )
    service_cidrs: tuple[Cidr, ...] = Field(
        min_length=1,
        description="in-region provider service ranges (mirror, registry, NTP, DNS) for egress",
    )
    data_ports: tuple[Annotated[int, Field(ge=1, le=65535)], ...] = Field(min_length=1)
    app_port: int = Field(default=443, ge=1, le=65535)
    transfer_port: int = Field(default=443, ge=1, le=65535)

    @field_validator("tiers")
    @classmethod
    def _all_tiers(cls, value: dict[str, TierSettings]) -> dict[str, TierSettings]:
        """Every tier, no two overlapping, the data tier without egress."""
        missing = [t for t in TIERS if t not in value]
        if missing:
            raise ValueError(f"missing tier(s) {missing}; every environment has {list(TIERS)}")
        if value["data"].egress:
            raise ValueError(
                "tiers.data.egress is true; the data tier never routes to an external network "
                "(SecNumCloud 13.2)"
            )
        nets = [(t, ipaddress.ip_network(s.cidr)) for t, s in value.items()]
        for i, (tier_a, net_a) in enumerate(nets):
            for tier_b, net_b in nets[i + 1 :]:
                if net_a.overlaps(net_b):
                    raise ValueError(
                        f"tier CIDRs overlap: {tier_a} {net_a} and {tier_b} {net_b}; "
                        "each tier needs its own range"
                    )
        return value

    @field_validator("admin_cidrs", "transfer_source_cidrs")
    @classmethod
    def _not_world(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        """Each range /16 or narrower, never world-open."""
        for cidr in value:
            net = ipaddress.ip_network(cidr)
            if net.prefixlen < 16:
                raise ValueError(
                    f"{cidr!r} is world-open or too wide (/{net.prefixlen}); allowed: "
                    "a named range of /16 or narrower"
                )
        return value


# --------------------------------------------------------------------------- compute


class SshKey(_Model):
    name: Name
    public_key: str

    @field_validator("public_key")
    @classmethod
    def _public(cls, value: str) -> str:
        """An OpenSSH public key (ed25519, ECDSA or RSA), never a private key."""
        parts = value.split()
        allowed = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ssh-rsa")
        if "PRIVATE KEY" in value:
            raise ValueError("a private key was given; only public keys belong in stack config")
        if len(parts) < 2 or parts[0] not in allowed or len(parts[1]) < 60:
            raise ValueError(
                f"not an OpenSSH public key (expected '<type> <base64> [comment]' with type in "
                f"{list(allowed)})"
            )
        return value


class AdminSettings(_Model):
    user: Name = "citadelle-admin"
    group: Name = "citadelle-admins"
    ssh_keys: tuple[SshKey, ...] = Field(
        min_length=1, description="operators' public keys; the only admin path (BP-028 R18)"
    )


class ServerSettings(_Model):
    flavor: str = Field(min_length=1)
    count: int = Field(default=1, ge=1, le=50)
    data_volume_gb: int = Field(default=0, ge=0, le=16384)


class NodePool(_Model):
    name: Name
    tier: Literal["app", "data"]
    flavor: str = Field(min_length=1)
    count: int = Field(ge=1, le=200)
    data_volume_gb: int = Field(default=0, ge=0, le=16384)


class ComputeSettings(_Model):
    image: str = Field(min_length=3, description="the hardened image (BP-028) by name")
    bastion: ServerSettings
    gateway: ServerSettings
    node_pools: tuple[NodePool, ...] = Field(min_length=1)

    @field_validator("bastion")
    @classmethod
    def _bastion_count(cls, value: ServerSettings) -> ServerSettings:
        """One or two bastions."""
        if value.count > 2:
            raise ValueError(f"bastion.count is {value.count}; allowed: 1 or 2")
        return value

    @field_validator("node_pools")
    @classmethod
    def _unique_pools(cls, value: tuple[NodePool, ...]) -> tuple[NodePool, ...]:
        """Unique pool names."""
        names = [p.name for p in value]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate node pool name(s) {duplicates}")
        return value


# --------------------------------------------------------------------------- keys and storage


class KeySettings(_Model):
    purposes: tuple[Literal["volume", "kubernetes", "backup"], ...] = (
        "volume",
        "kubernetes",
        "backup",
    )
    readers: tuple[str, ...] = Field(
        min_length=1, description="Keystone user ids of the service users allowed to read KEKs"
    )
    supplied: tuple[Literal["volume", "kubernetes", "backup"], ...] = Field(
        default=(),
        description="purposes whose KEK comes from the secret config key citadelle:<purpose>Kek",
    )


class StorageSettings(_Model):
    volume_type: Name = "luks"
    encryption_cipher: Literal["aes-xts-plain64"] = "aes-xts-plain64"
    encryption_key_size: Literal[256, 512] = 256
    containers: tuple[Name, ...] = ("datalake", "extractions", "backups")
    storage_policy: str | None = Field(
        default=None, description="provider storage policy with server-side encryption"
    )


# --------------------------------------------------------------------------- migration

_AZURE_ACCOUNT_RE = re.compile(r"^[a-z0-9]{3,24}$")
_BWLIMIT_RE = re.compile(r"^(off|[0-9]+(\.[0-9]+)?[KMGT]?)$")


# The policy minimum for keeping a migrated workspace's source read-only (the way back,
# SecNumCloud 19.1.h): a month of double hosting before the source may be deleted.
MIN_ROLLBACK_RETENTION_DAYS = 30


class MigrationWindow(_Model):
    """When a workspace's cutover may run (UTC, ISO 8601)."""

    start: dt.datetime
    end: dt.datetime

    @model_validator(mode="after")
    def _order(self) -> MigrationWindow:
        """A timezone-aware window whose end follows its start."""
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("window start and end need a timezone (e.g. 2027-03-01T20:00Z)")
        if self.end <= self.start:
            raise ValueError(f"window ends ({self.end.isoformat()}) before it starts "
                             f"({self.start.isoformat()})")
        return self


class DataMigration(_Model):
    """One workspace's (or the base datasets') move: containers, window, budgets."""

    source_containers: tuple[str, ...] = Field(
        min_length=1, description="declared migration.source containers it reads")
    target_container: Name = Field(
        description="storage.containers purpose, or ws-<id> (the workspace's own container)")
    window: MigrationWindow
    freeze_budget_seconds: int = Field(default=60, ge=1, le=3600,
                                       description="longest acceptable write freeze")
    rollback_retention_days: int = Field(
        ge=1, le=3650, description=f"source kept read-only after the switch, at least "
        f"{MIN_ROLLBACK_RETENTION_DAYS} days (SecNumCloud 19.1.h)")
    max_lag_objects: int = Field(default=1000, ge=0,
                                 description="cutover preflight: most objects not yet copied")

    @field_validator("rollback_retention_days")
    @classmethod
    def _retention(cls, value: int) -> int:
        """At least the policy minimum (the way back, SecNumCloud 19.1.h)."""
        if value < MIN_ROLLBACK_RETENTION_DAYS:
            raise ValueError(f"rollbackRetentionDays {value} is shorter than the policy minimum "
                             f"of {MIN_ROLLBACK_RETENTION_DAYS} days (SecNumCloud 19.1.h)")
        return value


class MigrationSource(_Model):
    """The Azure storage account the platform's data leaves (the SNDS copy)."""

    kind: Literal["azure-blob"] = "azure-blob"
    url: str = Field(description="the account's blob endpoint, https://<account>.blob...")
    account: str
    containers: tuple[str, ...] = Field(min_length=1)

    @field_validator("url")
    @classmethod
    def _https(cls, value: str) -> str:
        """https:// only (SecNumCloud 10.2)."""
        if urlsplit(value).scheme != "https" or not urlsplit(value).hostname:
            raise ValueError(f"{value!r} must be an https:// URL (SecNumCloud 10.2)")
        return value.rstrip("/")

    @field_validator("account")
    @classmethod
    def _account(cls, value: str) -> str:
        """An Azure storage account name: 3-24 of a-z0-9."""
        if not _AZURE_ACCOUNT_RE.match(value):
            raise ValueError(f"{value!r} is not an Azure storage account name (3-24 a-z0-9)")
        return value

    @field_validator("containers")
    @classmethod
    def _containers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        """Azure container names."""
        for name in value:
            if not re.match(r"^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$", name):
                raise ValueError(f"{name!r} is not an Azure container name")
        return value


class MigrationSettings(_Model):
    """The transfer of the data out of Azure (docs/migration.md)."""

    source: MigrationSource
    destination_container: Name = Field(description="storage.containers purpose it lands in")
    link_gbps: float = Field(gt=0, le=400, description="the dedicated link's capacity")
    bandwidth_limit: str = Field(default="off", description="rclone --bwlimit per gateway")
    transfers: int = Field(default=8, ge=1, le=64)
    checkers: int = Field(default=16, ge=1, le=128)
    base: DataMigration | None = Field(default=None,
                                       description="the national base datasets' move (last)")

    @field_validator("bandwidth_limit")
    @classmethod
    def _bwlimit(cls, value: str) -> str:
        """off, or bytes/s in rclone's syntax (500M, 1.5G)."""
        if not _BWLIMIT_RE.match(value):
            raise ValueError(f"{value!r} is not a bandwidth (off, or bytes/s like 500M, 1.5G)")
        return value


class MetadataSettings(_Model):
    owner: str = Field(min_length=2)
    data_classification: Literal["health-data", "sensitive", "internal"] = "health-data"


class HardeningSettings(_Model):
    level: Literal["minimal", "intermediary", "enhanced", "high"] = "intermediary"
    bastion_level: Literal["minimal", "intermediary", "enhanced", "high"] = "enhanced"

    def level_of(self, node_role: str) -> str:
        """The BP-028 level of a node role (bastion, gateway, node): the one place deciding
        each host's level; the inventories carry it as ``bp028_level`` per group."""
        return self.bastion_level if node_role == "bastion" else self.level


# --------------------------------------------------------------------------- kubernetes


class SystemNamespace(_Model):
    """A namespace the platform does not declare and exempts from the restricted baseline."""

    name: str = Field(pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
    reason: str = Field(min_length=10, description="why it cannot run under PSA restricted")


class NodeGroup(_Model):
    """Worker nodes of one flavor; Magnum mode spreads ``count`` over the availability zones."""

    name: Name
    flavor: str = Field(min_length=1)
    count: int = Field(ge=1, le=500)


def _quota_range(what: str, unit: str, low: int, high: int) -> Any:
    def check(value: int) -> int:
        if not low <= value <= high:
            raise ValueError(f"{what} {value} {unit} is out of range; allowed: {low} to {high}")
        return value

    return AfterValidator(check)


class Quotas(_Model):
    """Hard ceiling of a namespace (ResourceQuota), also the LimitRange's per-container max."""

    cpu: Annotated[int, _quota_range("cpu", "cores", 1, 256)]
    memory_gi: Annotated[int, _quota_range("memoryGi", "GiB", 1, 2048)]
    storage_gi: Annotated[int, _quota_range("storageGi", "GiB", 1, 65536)]


class KubernetesSettings(_Model):
    mode: Literal["magnum", "existing"] = "magnum"
    version: str = Field(description="pinned Kubernetes version (Magnum kube_tag)")
    master_count: int = Field(default=3, ge=1, le=7)
    master_flavor: str = "b3-16"
    node_groups: tuple[NodeGroup, ...] = Field(min_length=1)
    registry: Host
    pod_security_version: str | None = Field(
        default=None, pattern=r"^v1\.\d+$", description="PSA version; default: the cluster minor"
    )
    system_namespaces: tuple[SystemNamespace, ...] = ()
    operators_group: str = Field(default="citadelle-operators", pattern=r"^\S{2,128}$")
    auditors_group: str = Field(default="citadelle-auditors", pattern=r"^\S{2,128}$")
    pod_cidr: Cidr = "10.100.0.0/16"
    service_cidr: Cidr = "10.254.0.0/16"
    object_storage_cidrs: tuple[Cidr, ...] = Field(
        min_length=1,
        description="addresses of the object-storage endpoint: the only workspace egress",
    )
    ingress_port: int = Field(default=8443, ge=1024, le=65535)
    backend_port: int = Field(default=8080, ge=1024, le=65535)
    api_server_cidrs: tuple[Cidr, ...] = Field(
        default=(),
        description="addresses of the API server (existing mode; Magnum: the app tier's masters)",
    )
    api_server_port: int = Field(default=6443, ge=1, le=65535)
    platform_quotas: Quotas = Quotas(cpu=16, memory_gi=64, storage_gi=200)
    etcd_volume_gb: int = Field(default=20, ge=10, le=500)
    audit_log_max_age_days: int = Field(default=30, ge=1, le=400)
    render_dir: str | None = Field(
        default=None, description="pulumi-kubernetes renders YAML here instead of applying"
    )

    @field_validator("master_count")
    @classmethod
    def _odd(cls, value: int) -> int:
        """An odd number (etcd quorum)."""
        if value % 2 == 0:
            raise ValueError(f"master_count {value} is even; etcd quorum needs 1, 3, 5 or 7")
        return value

    @field_validator("version")
    @classmethod
    def _pinned(cls, value: str) -> str:
        """A pinned version v1.X.Y."""
        if not re.fullmatch(r"v1\.\d+\.\d+", value):
            raise ValueError("not a pinned Kubernetes version; allowed: v1.<minor>.<patch>, "
                             "e.g. v1.31.4")
        return value

    @field_validator("node_groups")
    @classmethod
    def _unique_groups(cls, value: tuple[NodeGroup, ...]) -> tuple[NodeGroup, ...]:
        """Unique node group names."""
        names = [g.name for g in value]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate node group name(s) {duplicates}")
        return value

    @property
    def psa_version(self) -> str:
        """The Pod Security Standards version pinned on every namespace."""
        return self.pod_security_version or "v1." + self.version.split(".")[1]


class Workspace(_Model):
    """An approved research project's isolated workspace ("espace projet")."""

    id: Name
    approval_ref: str = Field(min_length=3, description="CESREES/CNIL approval reference")
    members_group: str
    quotas: Quotas
    extractions: tuple[Name, ...] = Field(min_length=1)
    expires: dt.date
    reader: str | None = Field(
        default=None,
        description="Keystone user id of the workspace's service user; default "
        "citadelle-<env>-ws-<id> (the identity team's naming convention)",
    )
    migration: DataMigration | None = Field(
        default=None, description="its move out of Azure (docs/migration.md)")

    @field_validator("members_group")
    @classmethod
    def _group(cls, value: str) -> str:
        """A non-empty directory group."""
        if not value.strip():
            raise ValueError(
                "membersGroup is empty; name the directory group of the project's members"
            )
        if re.search(r"\s", value) or len(value) > 128:
            raise ValueError("membersGroup must be one group name (no spaces, at most 128 chars)")
        return value


# --------------------------------------------------------------------------- settings


class Settings(_Model):
    """Everything the program needs, for one environment."""

    environment: Literal["dev", "mirror", "prod"]
    openstack: OpenStackSettings
    sovereignty: Sovereignty
    network: NetworkSettings
    admin: AdminSettings
    compute: ComputeSettings
    keys: KeySettings
    storage: StorageSettings = StorageSettings()
    metadata: MetadataSettings
    hardening: HardeningSettings = HardeningSettings()
    kubernetes: KubernetesSettings
    workspaces: tuple[Workspace, ...] = ()
    migration: MigrationSettings | None = None
    data_locations: dict[str, Literal["source", "destination"]] = Field(
        default_factory=dict, description="workspace id (or base) -> where its data is read "
        "and written; set by citadelle migrate cutover and rollback")
    secrets: dict[str, Any] = Field(default_factory=dict, exclude=True)

    @model_validator(mode="after")
    def _cross_checks(self) -> Settings:
        """The region, auth URL and required endpoint kinds are allow-listed for the environment."""
        env = self.environment
        names = {p.name for p in self.sovereignty.providers}
        if self.openstack.provider not in names:
            raise ValueError(
                f"openstack.provider {self.openstack.provider!r} is not a declared provider "
                f"(declared: {', '.join(sorted(names))})"
            )
        provider = self.sovereignty.provider(self.openstack.provider)
        if self.openstack.region not in provider.regions:
            raise ValueError(
                f"openstack.region {self.openstack.region!r} is not an EU region of "
                f"{provider.name} (allowed: {', '.join(provider.regions) or 'none declared'})"
            )
        auth_host = endpoint_host(self.openstack.auth_url)
        auth = [
            e
            for e in self.sovereignty.for_environment(env, "openstack-auth")
            if e.host == auth_host
        ]
        if not auth:
            raise ValueError(
                f"openstack.authUrl host {auth_host!r} is not an allow-listed openstack-auth "
                f"endpoint for {env} (sovereignty.endpoints)"
            )
        for kind in ("ntp", "dns", "package-mirror", "log-collector", "container-registry"):
            if not self.sovereignty.for_environment(env, kind):
                raise ValueError(f"sovereignty.endpoints has no {kind!r} endpoint for {env}")
        mirrors = [e.name for e in self.sovereignty.for_environment(env, "package-mirror")]
        if all("security" in n for n in mirrors) or not any("security" in n for n in mirrors):
            raise ValueError(
                f"sovereignty.endpoints needs two package-mirror endpoints for {env}, one named "
                "*security* (Debian security) and one other (Debian main)")
        return self

    @model_validator(mode="after")
    def _migration_checks(self) -> Settings:
        """The migration lands in a declared container of an allow-listed object store."""
        migration = self.migration
        if migration is not None and migration.destination_container not in self.storage.containers:
            raise ValueError(
                f"migration.destinationContainer {migration.destination_container!r} is not a "
                f"declared container (storage.containers: {', '.join(self.storage.containers)})"
            )
        if migration is not None and not self.sovereignty.for_environment(
                self.environment, "object-storage"):
            raise ValueError(
                f"migration needs an object-storage endpoint for {self.environment} "
                "(sovereignty.endpoints)"
            )
        return self

    def data_migrations(self) -> dict[str, DataMigration]:
        """Workspace id (``base`` for the base datasets) -> its migration block."""
        moves = {w.id: w.migration for w in self.workspaces if w.migration is not None}
        if self.migration is not None and self.migration.base is not None:
            moves["base"] = self.migration.base
        return moves

    @model_validator(mode="after")
    def _data_migration_checks(self) -> Settings:
        """Declared containers, one owner per container, locations of known moves only."""
        moves = self.data_migrations()
        if moves and self.migration is None:
            raise ValueError("migration is required: workspaces migrate from its source")
        owners: dict[str, str] = {}
        for ident, move in moves.items():
            # Messages start with the key path (_format_error reads it from there).
            key = "migration.base" if ident == "base" else f"workspaces[{ident}].migration"
            declared = self.migration.source.containers if self.migration else ()
            for container in move.source_containers:
                if container not in declared:
                    raise ValueError(f"{key}.sourceContainers {container!r} is not a declared "
                                     f"migration.source container ({', '.join(declared)})")
            own = f"ws-{ident}"
            if move.target_container not in (*self.storage.containers, own):
                raise ValueError(f"{key}.targetContainer {move.target_container!r} is unknown "
                                 f"(storage.containers: {', '.join(self.storage.containers)}, "
                                 f"or {own})")
            for container in (*move.source_containers, f"target:{move.target_container}"):
                if container in owners:
                    raise ValueError(f"{key} shares the container "
                                     f"{container.removeprefix('target:')!r} with "
                                     f"{owners[container]}: one workspace per container")
                owners[container] = ident
        for ident in self.data_locations:
            if ident not in moves:
                raise ValueError(f"dataLocations {ident!r} has no migration block")
        return self

    @model_validator(mode="after")
    def _workspace_checks(self) -> Settings:
        """Unique workspace ids."""
        ids = [w.id for w in self.workspaces]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(
                f"workspaces duplicate workspace id(s) {', '.join(duplicates)}; each approved "
                "project has exactly one workspace"
            )
        return self

    @model_validator(mode="after")
    def _kubernetes_checks(self) -> Settings:
        """Kubernetes settings consistent with the mode (Magnum or existing) and namespaces."""
        k8s = self.kubernetes
        registries = self.endpoint_hosts("container-registry")
        if k8s.registry not in registries:
            raise ValueError(
                f"kubernetes.registry {k8s.registry!r} is not an allow-listed container-registry "
                f"endpoint for {self.environment} (allowed: {', '.join(registries)})"
            )
        minor = int(k8s.version.split(".")[1])
        if k8s.pod_security_version and int(k8s.pod_security_version.split(".")[1]) > minor:
            raise ValueError(
                f"kubernetes.podSecurityVersion {k8s.pod_security_version} is newer than the "
                f"cluster {k8s.version}; allowed: v1.{minor} or older"
            )
        if "kubernetes" not in self.keys.purposes:
            raise ValueError(
                "keys.purposes lacks 'kubernetes'; the cluster's secrets are encrypted with "
                "that Barbican KEK (KMS v2): add it"
            )
        if k8s.mode == "existing" and not k8s.api_server_cidrs:
            raise ValueError(
                "kubernetes.apiServerCidrs is empty; in existing mode name the API server's "
                "addresses (the ingress controller's only way to the API)"
            )
        zones = self.openstack.availability_zones
        if k8s.mode == "magnum":
            for index, group in enumerate(k8s.node_groups):
                if group.count < len(zones):
                    raise ValueError(
                        f"kubernetes.nodeGroups[{index}].count {group.count} leaves an "
                        f"availability zone empty; allowed: at least {len(zones)} (one per zone "
                        f"of {', '.join(zones)})"
                    )
        return self

    @model_validator(mode="after")
    def _kubernetes_ranges(self) -> Settings:
        """Pod, service and API ranges disjoint from the network tiers."""
        k8s = self.kubernetes
        taken = [("kubernetes.podCidr", k8s.pod_cidr), ("kubernetes.serviceCidr", k8s.service_cidr)]
        used = [(f"network.tiers.{t}", s.cidr) for t, s in self.network.tiers.items()]
        used += [("network.serviceCidrs", c) for c in self.network.service_cidrs]
        for index, (key, cidr) in enumerate(taken):
            for other_key, other in used + taken[index + 1 :]:
                if ipaddress.ip_network(cidr).overlaps(ipaddress.ip_network(other)):
                    raise ValueError(
                        f"{key} {cidr} overlaps {other_key} {other}; pick a range no tier, "
                        "service range or other cluster range uses"
                    )
        storage = self.sovereignty.for_environment(self.environment, "object-storage")
        networks = [n for e in storage for n in self.sovereignty.provider(e.provider).networks]
        for cidr in k8s.object_storage_cidrs:
            net = ipaddress.IPv4Network(cidr)
            if not any(net.subnet_of(ipaddress.IPv4Network(n)) for n in networks):
                raise ValueError(
                    f"kubernetes.objectStorageCidrs {cidr} is outside the object-storage "
                    f"provider's networks (allowed: inside {', '.join(networks) or 'none'})"
                )
        for system in k8s.system_namespaces:
            if (system.name in PLATFORM_NAMESPACES
                    or system.name.startswith(WORKSPACE_NAMESPACE_PREFIX)):
                raise ValueError(
                    f"kubernetes.systemNamespaces {system.name!r} is a namespace the platform "
                    "declares; only namespaces it does not declare can be exempted"
                )
        return self

    def endpoint_hosts(self, kind: str) -> tuple[str, ...]:
        return tuple(e.host for e in self.sovereignty.for_environment(self.environment, kind))

    def endpoint_urls(self, kind: str) -> tuple[str, ...]:
        return tuple(e.url for e in self.sovereignty.for_environment(self.environment, kind))


# Top-level config keys (without namespace) -> Settings fields.
KEYS = tuple(
    Settings.model_fields[f].alias or f
    for f in Settings.model_fields
    if f not in ("environment", "secrets")
)
SECRET_KEY_RE = re.compile(r"^(volume|kubernetes|backup)Kek$|^kubeconfig$")


def _location(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts[-1] = f"{parts[-1]}[{item}]" if parts else f"[{item}]"
        else:
            parts.append(to_camel(item) if "_" in item else item)
    return ".".join(parts)


def _format_error(err: ValidationError) -> str:
    first = err.errors()[0]
    loc = tuple(x for x in first["loc"] if not str(x).startswith("function-"))
    message = first["msg"].removeprefix("Value error, ")
    # Cross-field checks name their key path at the start of the message.
    where = f"{NAMESPACE}:{_location(loc)}" if loc else f"{NAMESPACE}:{message.split(' ')[0]}"
    if not loc:
        message = message.split(" ", 1)[1]
    if first["type"] == "extra_forbidden":
        message = "unknown key (check the spelling against docs/configuration.md)"
    elif first["type"] == "missing":
        message = "required key is missing"
    bad = first.get("input")
    shown = "" if first["type"] in ("missing", "extra_forbidden") or isinstance(bad, dict) else (
        f" (got {bad!r})"
    )
    if len(shown) > 120:
        shown = shown[:117] + "...)"
    return f"{where}: {message}{shown}"


def parse_settings(environment: str, raw: Mapping[str, Any]) -> Settings:
    """Validate ``raw`` (top-level key -> decoded value) for ``environment``.

    Raises ConfigError with one actionable line on the first problem.
    """
    if environment not in ENVIRONMENTS:
        raise ConfigError(
            f"unknown environment {environment!r}: the stack name must be one of "
            f"{', '.join(ENVIRONMENTS)}"
        )
    values: dict[str, Any] = {}
    secrets: dict[str, Any] = {}
    for key, value in raw.items():
        if SECRET_KEY_RE.match(key):
            secrets[key] = value
        elif key in KEYS:
            values[key] = value
        else:
            raise ConfigError(
                f"{NAMESPACE}:{key}: unknown key; allowed keys: {', '.join(sorted(KEYS))}"
            )
    try:
        settings = Settings.model_validate({"environment": environment, **values})
    except ValidationError as err:
        raise ConfigError(_format_error(err)) from None
    for purpose in settings.keys.supplied:
        if f"{purpose}Kek" not in secrets:
            raise ConfigError(
                f"{NAMESPACE}:{purpose}Kek: missing secret; keys.supplied lists {purpose!r}: set "
                f"it with `pulumi config set --secret {purpose}Kek <base64 AES-256 key>`"
            )
    if settings.kubernetes.mode == "existing" and "kubeconfig" not in secrets:
        raise ConfigError(
            f"{NAMESPACE}:kubeconfig: missing secret; kubernetes.mode is 'existing': set it with "
            "`pulumi config set --secret kubeconfig < kubeconfig.yaml`"
        )
    today = dt.date.today()
    for workspace in settings.workspaces:
        if workspace.expires < today:
            raise ConfigError(
                f"{NAMESPACE}:workspaces[{workspace.id}].expires: workspace expired on "
                f"{workspace.expires.isoformat()}; renew its approval ({workspace.approval_ref}) "
                "or remove it from the stack"
            )
    return settings.model_copy(update={"secrets": secrets})


def _decode(value: Any) -> Any:
    """Pulumi hands structured config to programs as JSON strings."""
    if isinstance(value, str):
        stripped = value.strip()
        if stripped[:1] in ("{", "[") or stripped in ("true", "false") or stripped.isdigit():
            try:
                return json.loads(stripped)
            except json.JSONDecodeError as err:
                raise ConfigError(f"malformed structured value: {err.msg}") from None
    return value


def raw_from_values(values: Mapping[str, Any], secret_keys: Collection[str],
                    wrap_secret: Callable[[Any], Any] = lambda value: value) -> dict[str, Any]:
    """The ``citadelle:*`` entries of flat stack config as :func:`parse_settings`' raw mapping.

    Structured values arrive as JSON strings (from the engine, or from a stack file read
    offline). Secret keys are never parsed nor logged: refused unless stored as secrets
    (``secret_keys``), then passed through ``wrap_secret``.
    """
    raw: dict[str, Any] = {}
    for full_key, value in values.items():
        namespace, _, key = full_key.partition(":")
        if namespace != NAMESPACE:
            continue
        if SECRET_KEY_RE.match(key):
            if full_key not in secret_keys:
                raise ConfigError(
                    f"{full_key}: stored in clear; set it again with "
                    f"`pulumi config set --secret {key} ...`"
                )
            raw[key] = wrap_secret(value)
            continue
        try:
            raw[key] = _decode(value)
        except ConfigError as err:
            raise ConfigError(f"{full_key}: {err}") from None
    return raw


def load_settings() -> Settings:
    """Read the running stack's ``citadelle:*`` config once (real engine or mocks)."""
    merged: dict[str, Any] = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    secret_keys = set(runtime_config.get_config_secret_keys_env()) | set(
        runtime_config._SECRET_KEYS.get()
    )
    raw = raw_from_values(merged, secret_keys, pulumi.Output.secret)
    return parse_settings(pulumi.get_stack(), raw)
