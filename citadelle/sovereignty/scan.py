"""`citadelle sovereignty ENV`: every outside endpoint the environment uses, against the allow-list.

SecNumCloud 19.2 (technical data stays in the EU) and 19.6 (no technical means for a non-EU party
to obtain data) fail on one forgotten NTP pool, image registry or state bucket. This command
finds every endpoint an environment would talk to, wherever it is declared:

* the stack config (every ``citadelle:*`` key) and the allow-list itself;
* the state backend and secrets provider Pulumi would use (citadelle.sovereignty.backend);
* the offline plan's recorded inputs: URLs, host names, addresses and CIDRs, cloud-init;
* the Kubernetes objects the program declares: image registries, external endpoints;
* the Ansible variables the hardening roles will apply: role defaults and vars, templates and
  tasks, playbook group vars, and the generated inventory's variables;

and classifies each use against ``citadelle:sovereignty`` (the one allow-list): ``allowed`` (a
declared endpoint of the right kind for this environment, or inside a provider's network),
``platform`` (the environment's own networks, cluster-internal names, loopback, local state),
``ingress-source`` (a declared operator or legacy-hosting source range), ``migration-source``
(the account the data leaves, declared in ``citadelle:migration.source``: read from during the
migration, never a destination), ``public-entry``
(ingress from anywhere: which port may be public is the policy gate's rule), ``private``
(a non-routable address outside the environment: listed, not a flow to a third party) or
``denied``. Exit 1 on any ``denied``.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

from citadelle import __version__, paths
from citadelle.deploy.inventory import inventory_mapping
from citadelle.environment import Environment, env_command
from citadelle.environment.outputs import StackOutputs
from citadelle.environment.settings import endpoint_host
from citadelle.environment.stackconfig import StackConfig
from citadelle.environment.targets import Access
from citadelle.errors import CitadelleError
from citadelle.evidence import sarif
from citadelle.evidence.findings import Finding, Rule
from citadelle.plan.offline import Recording
from citadelle.plan.plan import plan_stack
from citadelle.sovereignty import walk
from citadelle.sovereignty.backend import decide_backend

STATUSES = ("denied", "allowed", "platform", "ingress-source", "migration-source",
            "public-entry", "private")
RULES: dict[str, Rule] = {
    "endpoint": Rule(
        id="citadelle-sovereignty-endpoint",
        description="Every outside endpoint is a declared EU endpoint of the right kind "
        "(SecNumCloud 19.2.b, 19.2.d, 19.6.c, 12.14.a)",
        severity="high",
        remediation="Point the value at an endpoint of citadelle:sovereignty.endpoints, or "
        "declare the endpoint there with its EU provider and qualification evidence.",
        snc=("19.2.b", "19.2.d", "19.6.c", "12.14.a"),
    ),
    "backend": Rule(
        id="citadelle-sovereignty-state-backend",
        description="Pulumi state stays on a self-managed EU backend, never Pulumi Cloud "
        "(SecNumCloud 19.2.d, 19.6.c)",
        severity="critical",
        remediation="Unset PULUMI_BACKEND_URL (citadelle sets the environment's bucket) and "
        "keep Pulumi.yaml's backend.url on the local file backend; see `citadelle backend ENV`.",
        snc=("19.2.d", "19.6.c"),
    ),
    "secrets-provider": Rule(
        id="citadelle-sovereignty-secrets-provider",
        description="Stack secrets are encrypted by the environment's policy provider: "
        "passphrase (dev) or a transit key on the EU OpenBao (SecNumCloud 10.5.a, 19.6.c)",
        severity="critical",
        remediation="pulumi stack change-secrets-provider to the provider `citadelle backend "
        "ENV` prints.",
        snc=("10.5.a", "19.6.c"),
    ),
}

# Role and inventory variables that carry endpoints, with the kind each must be.
ANSIBLE_ENDPOINT_VARIABLES: dict[str, str] = {
    "bp028_time_ntp_servers": "ntp",
    "bp028_audit_forward_url": "log-collector",
    "bp028_packages_mirror_url": "package-mirror",
    "bp028_packages_security_mirror_url": "package-mirror",
    "citadelle_dns_resolvers": "dns",
    "citadelle_package_mirrors": "package-mirror",
    "citadelle_log_collectors": "log-collector",
}
# Other names that say what kind of endpoint a value is (config keys, labels, variables).
_KIND_HINTS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)ntp|chrony|timeserver|^(pool|peer)_host$"), "ntp"),
    (re.compile(r"(?i)dns|resolver|nameserver"), "dns"),
    (re.compile(r"(?i)^(deb|deb-src|uris)_host$"), "package-mirror"),
    (re.compile(r"(?i)registry|image|infra_prefix"), "container-registry"),
    (re.compile(r"(?i)mirror|apt|repo"), "package-mirror"),
    (re.compile(r"(?i)log|journal|syslog|collector"), "log-collector"),
    (re.compile(r"(?i)smtp|mail|relay"), "smtp"),
    (re.compile(r"(?i)vault|openbao|secretsstore"), "secrets"),
    (re.compile(r"(?i)auth_?url|identity|keystone"), "openstack-auth"),
)
# Keys whose bare values may be host names (URLs, addresses and CIDRs are found anywhere).
_HOST_KEY = re.compile(
    r"(?i)(host|server|url|uri|endpoint|address|addr|mirror|registry|ntp|dns|nameserver|"
    r"resolver|relay|collector|target|proxy|repo|prefix|source|upstream)s?$|_(hosts?|servers?)$"
)
# Prose and names: a URL in a description is documentation, not a flow.
_SKIP_KEYS = frozenset({"description", "name", "displayName", "comment", "banner"})
_URL = re.compile(r"\b(?P<scheme>[a-z][a-z0-9+.-]{1,15})://(?P<rest>[^\s\"'<>`)\]]+)")
_NO_HOST_SCHEMES = frozenset({"file", "offline", "urn", "hashivault", "data", "unix", "awskms"})
_FQDN = re.compile(
    r"^(?P<host>(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+(?P<tld>[a-z][a-z0-9-]*[a-z]))"
    r"(?::\d{1,5})?(?:/\S*)?$"
)
# Suffixes that make "a.b" a file name rather than a host.
_FILE_SUFFIXES = frozenset((
    "yml", "yaml", "json", "j2", "conf", "cfg", "ini", "py", "sh", "txt", "md", "pem", "key",
    "crt", "cert", "csr", "log", "db", "d", "service", "timer", "target", "socket", "rules", "gz",
    "xz", "deb", "list", "sources", "toml", "lock", "tar", "zip", "sig", "asc", "pub", "local",
))
# Configuration directives whose argument is an endpoint (chrony, resolv.conf, postfix,
# journal-upload, apt), in templates and files the roles install.
_DIRECTIVE = re.compile(
    r"^(?P<name>server|pool|peer|nameserver|relayhost|smarthost|URL|Server|Address|URIs|deb|"
    r"deb-src)\s*[=:]?\s*\[?(?P<value>[^\s#\[\]]+)"
)
_CLUSTER_SUFFIXES = (".svc", ".svc.cluster.local", ".cluster.local")


@dataclass(frozen=True)
class EndpointUse:
    """One endpoint found somewhere, and its verdict."""

    value: str
    host: str
    form: str  # url, host, image, address, cidr, backend, secrets-provider, allow-list
    source: str  # config, allow-list, backend, plan, kubernetes, roles, playbooks, inventory
    location: str  # file (repo-relative) or "plan ENV"
    key: str  # key path inside the location
    status: str
    reason: str = ""
    endpoint: str | None = None
    provider: str | None = None
    jurisdiction: str | None = None

    @property
    def denied(self) -> bool:
        return self.status == "denied"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Report:
    environment: str
    allow_list: list[dict[str, Any]]
    uses: list[EndpointUse] = field(default_factory=list)

    @property
    def denied(self) -> list[EndpointUse]:
        return [u for u in self.uses if u.denied]

    def summary(self) -> dict[str, int]:
        counts = Counter(u.status for u in self.uses)
        return {s: counts.get(s, 0) for s in STATUSES}

    def to_dict(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "allowList": self.allow_list,
            "uses": [u.to_dict() for u in self.uses],
            "summary": self.summary(),
            "passed": not self.denied,
        }


def expected_kind(key: str) -> str | None:
    name = key.rsplit(".", 1)[-1].split("[", 1)[0]
    if name in ANSIBLE_ENDPOINT_VARIABLES:
        return ANSIBLE_ENDPOINT_VARIABLES[name]
    return next((kind for pattern, kind in _KIND_HINTS if pattern.search(name)), None)


def image_registry(reference: str) -> str:
    """The registry host of a container image reference (Docker's rules: no dot = Docker Hub)."""
    first, sep, _ = reference.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first.split(":", 1)[0].lower()
    return "docker.io"


def is_digest_pinned(reference: str) -> bool:
    return re.search(r"@sha256:[0-9a-f]{64}$", reference) is not None


class Classifier:
    """Verdicts for hosts, addresses and CIDRs of one environment against its allow-list."""

    def __init__(self, settings: Any, own_addresses: frozenset[str] = frozenset()) -> None:
        self.settings = settings
        self.env: str = settings.environment
        sovereignty = settings.sovereignty
        self.endpoints = sovereignty.endpoints
        self.providers = {p.name: p for p in sovereignty.providers}
        network = settings.network
        self.tiers = {t: ipaddress.ip_network(s.cidr) for t, s in network.tiers.items()}
        kubernetes = settings.kubernetes
        for label in ("pod_cidr", "service_cidr"):
            cidr = getattr(kubernetes, label, None)
            if isinstance(cidr, str):
                self.tiers[f"kubernetes {label.removesuffix('_cidr')}"] = \
                    ipaddress.ip_network(cidr)
        self.sources = {
            ipaddress.ip_network(c): key
            for key, cidrs in (("network.adminCidrs", network.admin_cidrs),
                               ("network.transferSourceCidrs", network.transfer_source_cidrs))
            for c in cidrs
        }
        self.own_addresses = own_addresses
        migration = getattr(settings, "migration", None)
        self.migration_source = endpoint_host(migration.source.url) if migration else None

    def _verdict(self, status: str, reason: str = "", endpoint: Any = None,
                 provider: Any = None) -> dict[str, Any]:
        if endpoint is not None and provider is None:
            provider = self.providers.get(endpoint.provider)
        return {
            "status": status,
            "reason": reason,
            "endpoint": endpoint.name if endpoint is not None else None,
            "provider": provider.name if provider is not None else None,
            "jurisdiction": provider.jurisdiction if provider is not None else None,
        }

    def host(self, host: str, kind: str | None, value: str = "") -> dict[str, Any]:
        host = host.lower().rstrip(".")
        try:
            return self.address(ipaddress.ip_address(host), kind)
        except ValueError:
            pass
        if host == "localhost" or host.endswith(_CLUSTER_SUFFIXES) or \
                host == "kubernetes.default":
            return self._verdict("platform", "cluster-internal or loopback name")
        if host == self.migration_source:
            return self._verdict("migration-source", "declared in migration.source: the data "
                                 "leaves it, nothing is sent to it")
        return self._declared(host, kind, value)

    def _declared(self, host: str, kind: str | None, value: str = "") -> dict[str, Any]:
        # The endpoint whose URL is the longest prefix of the value first (two mirrors can
        # share a host).
        matches = sorted((e for e in self.endpoints if e.host == host),
                         key=lambda e: -len(e.url) if value.startswith(e.url) else 0)
        here = [e for e in matches if self.env in e.environments]
        if here:
            fitting = [e for e in here if kind is None or e.kind == kind]
            if fitting:
                return self._verdict("allowed", f"{fitting[0].kind} endpoint", fitting[0])
            kinds = ", ".join(sorted({e.kind for e in here}))
            return self._verdict("denied", f"allow-listed as {kinds}, not as {kind}", here[0])
        if matches:
            envs = ", ".join(matches[0].environments)
            return self._verdict("denied", f"allow-listed for {envs} only, not {self.env}",
                                 matches[0])
        owner = next((p for p in self.providers.values() if p.covers(host)), None)
        if owner is not None:
            return self._verdict(
                "denied",
                f"inside provider {owner.name}'s domain but not a declared endpoint: declare it "
                "in citadelle:sovereignty.endpoints",
                provider=owner,
            )
        return self._verdict("denied", "not in the allow-list (citadelle:sovereignty.endpoints)")

    def address(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address,
                kind: str | None) -> dict[str, Any]:
        if str(address) in self.own_addresses or address.is_loopback:
            return self._verdict("platform", "the environment's own address")
        for tier, net in self.tiers.items():
            if address in net:
                return self._verdict("platform", f"{tier} network")
        declared = [e for e in self.endpoints if e.host == str(address)]
        if declared:
            return self._declared(str(address), kind)
        for provider in self.providers.values():
            if provider.covers(str(address)):
                return self._verdict("allowed", f"inside provider {provider.name}'s networks",
                                     provider=provider)
        return self._unlisted(ipaddress.ip_network(address))

    def cidr(self, net: ipaddress.IPv4Network | ipaddress.IPv6Network, ingress: bool) \
            -> dict[str, Any]:
        if net.prefixlen == 0:
            if ingress:
                return self._verdict("public-entry", "ingress from any address")
            return self._verdict("denied", "any address: flows to every third party")
        known = self._known_network(net)
        if known is not None:
            return known
        if ingress and net.is_global:
            return self._verdict("denied", "public ingress source not declared in "
                                 "network.adminCidrs or network.transferSourceCidrs")
        return self._unlisted(net)

    def _known_network(self, net: ipaddress.IPv4Network | ipaddress.IPv6Network) \
            -> dict[str, Any] | None:
        """Declared source ranges, the environment's networks, then the providers' networks."""
        for source, key in self.sources.items():
            if _within(net, source):
                return self._verdict("ingress-source", f"declared in {key}")
        for tier, own in self.tiers.items():
            if _within(net, own):
                return self._verdict("platform", f"{tier} network")
        for provider in self.providers.values():
            for allowed in provider.networks:
                if _within(net, ipaddress.ip_network(allowed)):
                    return self._verdict("allowed",
                                         f"provider {provider.name} network {allowed}",
                                         provider=provider)
        return None

    def _unlisted(self, net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> dict[str, Any]:
        if net.is_private or net.is_reserved or net.is_link_local:
            return self._verdict("private", "non-routable range outside the environment")
        return self._verdict("denied", "public address outside every provider's networks")


def _within(net: ipaddress.IPv4Network | ipaddress.IPv6Network,
            parent: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    if isinstance(net, ipaddress.IPv4Network) and isinstance(parent, ipaddress.IPv4Network):
        return net.subnet_of(parent)
    if isinstance(net, ipaddress.IPv6Network) and isinstance(parent, ipaddress.IPv6Network):
        return net.subnet_of(parent)
    return False


@dataclass(frozen=True)
class Candidate:
    value: str
    host: str
    form: str
    kind: str | None


def _as_network(value: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    if "/" not in value:
        return None
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        return None


def _as_address(value: str) -> str | None:
    host = value.rsplit(":", 1)[0] if value.count(":") == 1 else value
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


def candidates(value: str, key: str, image: bool = False, urls_only: bool = False) \
        -> Iterator[Candidate]:
    """Endpoints named by one string value under ``key``."""
    kind = expected_kind(key)
    stripped = value.strip()
    if image:
        yield Candidate(stripped, image_registry(stripped), "image", "container-registry")
        return
    found_url = False
    for match in _URL.finditer(stripped):
        found_url = True
        if match.group("scheme") in _NO_HOST_SCHEMES:
            continue
        try:
            host = (urlsplit(match.group(0)).hostname or "").lower()
        except ValueError:  # "[...]" that is no IPv6 literal: not a URL
            continue
        if host and "{" not in match.group(0):
            yield Candidate(match.group(0), host, "url", kind)
    if found_url or urls_only or "{{" in stripped or "{%" in stripped:
        return
    network = _as_network(stripped)
    if network is not None:
        yield Candidate(stripped, str(network), "cidr", kind)
        return
    address = _as_address(stripped)
    if address is not None:
        yield Candidate(stripped, address, "address", kind)
        return
    fqdn = _FQDN.match(stripped.lower())
    if fqdn and _HOST_KEY.search(key.split("[", 1)[0]) and fqdn.group("tld") not in _FILE_SUFFIXES:
        yield Candidate(stripped, fqdn.group("host"), "host", kind)


class Scanner:
    """Collects every endpoint use of one environment."""

    def __init__(self, settings: Any, own_addresses: frozenset[str] = frozenset()) -> None:
        self.classifier = Classifier(settings, own_addresses)
        self.uses: list[EndpointUse] = []
        self._seen: set[tuple[str, str, str]] = set()

    def add(self, candidate: Candidate, source: str, location: str, key: str, *,
            ingress: bool = False) -> None:
        marker = (location, key, candidate.value)
        if marker in self._seen:
            return
        self._seen.add(marker)
        if candidate.form == "cidr":
            verdict = self.classifier.cidr(ipaddress.ip_network(candidate.host), ingress)
        else:
            verdict = self.classifier.host(candidate.host, candidate.kind, candidate.value)
        self.uses.append(EndpointUse(value=candidate.value, host=candidate.host,
                                     form=candidate.form, source=source, location=location,
                                     key=key, **verdict))

    def scan_data(self, data: Any, source: str, location: str, prefix: str = "", *,
                  images: bool = False, ingress: bool = False) -> None:
        for path, key, value in walk(data, prefix):
            if key in _SKIP_KEYS:
                continue
            if value.startswith("#cloud-config"):
                self._cloud_config(value, source, location, path)
                continue
            is_image = images and key == "image"
            for candidate in candidates(value, path, image=is_image):
                self.add(candidate, source, location, path, ingress=ingress)

    def _cloud_config(self, value: str, source: str, location: str, path: str) -> None:
        try:
            document = yaml.safe_load(value)
        except yaml.YAMLError:
            document = None
        if isinstance(document, (dict, list)):
            self.scan_data(document, source, location, f"{path}<cloud-config>")
        else:
            for candidate in candidates(value, path, urls_only=True):
                self.add(candidate, source, location, path)

    def scan_lines(self, text: str, source: str, location: str) -> None:
        """URLs, and hosts after endpoint directives, on the non-comment lines of a file."""
        for number, line in enumerate(text.splitlines(), start=1):
            stripped = line.strip()
            if stripped.startswith(("#", "{#", ";", "//")):
                continue
            for candidate in candidates(stripped, f"line {number}", urls_only=True):
                self.add(candidate, source, location, f"line {number}")
            directive = _DIRECTIVE.match(stripped)
            if directive and "{" not in directive.group("value") and "://" not in stripped:
                key = f"line {number} ({directive.group('name')})"
                for candidate in candidates(directive.group("value").strip("\"'"),
                                            f"{directive.group('name').lower()}_host"):
                    self.add(candidate, source, location, key)


# --------------------------------------------------------------------------- sources


def _relative(path: Path) -> str:
    return str(path.relative_to(paths.REPO_ROOT)) if path.is_relative_to(paths.REPO_ROOT) \
        else str(path)


def _decoded_config(config: StackConfig) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for full_key, value in config.values.items():
        stripped = value.strip()
        try:
            result[full_key] = json.loads(stripped) if stripped[:1] in ("{", "[") else value
        except json.JSONDecodeError:
            result[full_key] = value
    return result


def scan_config(scanner: Scanner, config: StackConfig, project_file: Path,
                stack_file: Path) -> None:
    stack_keys = set((yaml.safe_load(stack_file.read_text(encoding="utf-8")) or {})
                     .get("config") or {})
    for full_key, value in _decoded_config(config).items():
        if full_key == "citadelle:sovereignty" or full_key.startswith("pulumi:"):
            continue
        short = full_key.partition(":")[2]
        where = stack_file if (full_key in stack_keys or short in stack_keys) else project_file
        if full_key in config.secret_keys:
            continue
        scanner.scan_data(value, "config", _relative(where), full_key)


def scan_allow_list(scanner: Scanner, settings: Any, project_file: Path) -> None:
    env = settings.environment
    for index, endpoint in enumerate(settings.sovereignty.endpoints):
        if env not in endpoint.environments:
            continue
        provider = settings.sovereignty.provider(endpoint.provider)
        verdict = {"status": "allowed", "reason": f"{endpoint.kind} endpoint",
                   "endpoint": endpoint.name, "provider": provider.name,
                   "jurisdiction": provider.jurisdiction}
        scanner.uses.append(EndpointUse(
            value=endpoint.url, host=endpoint.host, form="allow-list", source="allow-list",
            location=_relative(project_file),
            key=f"citadelle:sovereignty.endpoints[{index}] ({endpoint.name})", **verdict))


def _backend_host(url: str) -> str:
    parsed = urlsplit(url)
    if not url:
        return "api.pulumi.com"
    if parsed.scheme == "s3":
        endpoint_url = (parse_qs(parsed.query).get("endpoint") or [""])[0]
        return endpoint_host(endpoint_url) if endpoint_url else "s3.amazonaws.com"
    if parsed.scheme == "file":
        return "(local file)"
    return (parsed.hostname or "").lower()


def _backend_use(scanner: Scanner, url: str, problems: tuple[str, ...], location: str,
                 key: str) -> EndpointUse:
    host = _backend_host(url)
    endpoint = next((e for e in scanner.classifier.endpoints
                     if e.host == host and e.kind == "state-backend"), None)
    provider = scanner.classifier.providers.get(endpoint.provider) if endpoint else None
    status = "denied" if problems else ("platform" if host == "(local file)" else "allowed")
    return EndpointUse(
        value=url or "(none: Pulumi Cloud)", host=host, form="backend", source="backend",
        location=location, key=key, status=status,
        reason="; ".join(problems) or ("local state" if status == "platform"
                                       else "state-backend endpoint"),
        endpoint=endpoint.name if endpoint else None,
        provider=provider.name if provider else None,
        jurisdiction=provider.jurisdiction if provider else None,
    )


def scan_backend(scanner: Scanner, env: str, project_file: Path, stack_file: Path,
                 environ: Mapping[str, str] | None) -> None:
    """The backend citadelle selects, the one a plain `pulumi` run selects, the secrets."""
    decision = decide_backend(env, environ, project_file, stack_file)
    if decision.source == "PULUMI_BACKEND_URL":
        where, key = "environment", "PULUMI_BACKEND_URL"
    else:
        where, key = _relative(project_file), f"policy for {env}"
    scanner.uses.append(_backend_use(scanner, decision.url, decision.backend_problems,
                                     where, key))
    direct_key = {"Pulumi.yaml backend.url": "backend.url",
                  "credentials.json current": "credentials.json current"}.get(
        decision.direct_source, "backend.url (absent)")
    scanner.uses.append(_backend_use(scanner, decision.direct_url, decision.direct_problems,
                                     _relative(project_file), direct_key))
    vault = decision.vault_addr
    vault_host = (urlsplit(vault).hostname or "") if vault else "(passphrase)"
    if vault:
        verdict = scanner.classifier.host(vault_host, "secrets")
    else:
        verdict = {"status": "platform", "reason": "passphrase: no outside service",
                   "endpoint": None, "provider": None, "jurisdiction": None}
    if decision.secrets_problems:
        verdict = {**verdict, "status": "denied",
                   "reason": "; ".join(decision.secrets_problems)}
    scanner.uses.append(EndpointUse(
        value=decision.secrets_provider or "(none)", host=vault_host, form="secrets-provider",
        source="backend", location=_relative(stack_file), key="secretsprovider", **verdict))


def floating_addresses(recording: Recording) -> frozenset[str]:
    """Addresses the program itself allocates (floating IPs): the platform's own."""
    return frozenset(
        str(r.outputs.get("address")) for r in recording.resources
        if r.type.endswith("floatingIp:FloatingIp") and r.outputs.get("address")
    )


def scan_recording(scanner: Scanner, recording: Recording) -> None:
    where = f"plan {recording.stack}"
    for resource in recording.resources:
        kubernetes = resource.type.startswith("kubernetes:")
        ingress = resource.inputs.get("direction") == "ingress"
        scanner.scan_data(resource.inputs, "kubernetes" if kubernetes else "plan", where,
                          f"{resource.type.rsplit(':', 1)[-1]} {resource.name}", images=kubernetes,
                          ingress=ingress)


def _yaml_documents(path: Path) -> list[Any]:
    try:
        return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    except yaml.YAMLError as err:
        raise CitadelleError(f"{_relative(path)}: malformed YAML ({err})") from None


def scan_roles(scanner: Scanner, roles_dir: Path) -> None:
    """Variables, templates and tasks of the hardening roles."""
    for path in sorted(roles_dir.glob("*/defaults/*.yml")) + \
            sorted(roles_dir.glob("*/vars/*.yml")):
        for document in _yaml_documents(path):
            scanner.scan_data(document, "roles", _relative(path))
    for path in sorted(roles_dir.glob("*/templates/**/*")) + \
            sorted(roles_dir.glob("*/tasks/*.yml")) + sorted(roles_dir.glob("*/handlers/*.yml")):
        if path.is_file():
            scanner.scan_lines(path.read_text(encoding="utf-8", errors="replace"), "roles",
                               _relative(path))


def scan_playbooks(scanner: Scanner, playbooks_dir: Path) -> None:
    for path in sorted(playbooks_dir.rglob("*.yml")):
        for document in _yaml_documents(path):
            scanner.scan_data(document, "playbooks", _relative(path))


def scan_manifests(scanner: Scanner, directory: Path) -> None:
    """Rendered Kubernetes manifests (`citadelle render`, pulumi-kubernetes render directory)."""
    for path in sorted([*directory.rglob("*.yaml"), *directory.rglob("*.yml")]):
        for document in _yaml_documents(path):
            scanner.scan_data(document, "kubernetes", _relative(path), images=True)


def inventory_variables(env: Environment, recording: Recording) -> dict[str, Any]:
    """The variables the generated inventory hands the roles, from the plan's stack outputs."""
    outputs = StackOutputs.from_plan(recording.stack_outputs)
    return inventory_mapping(env, outputs, Access(), paths.RUNS_DIR / env.name, target="cloud")


def scan_inventory(scanner: Scanner, env: Environment, recording: Recording) -> None:
    scanner.scan_data(inventory_variables(env, recording), "inventory",
                      f"citadelle inventory {env.name}")


# --------------------------------------------------------------------------- the report


def sovereignty_report(
    env: str,
    *,
    project_file: Path = paths.PROJECT_FILE,
    stack_file: Path | None = None,
    recording: Recording | None = None,
    roles_dir: Path = paths.ROLES_DIR,
    playbooks_dir: Path = paths.PLAYBOOKS_DIR,
    manifests_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Report:
    """Every endpoint ``env`` uses, classified against its allow-list."""
    environment = Environment.load(env, project_file=project_file, stack_file=stack_file)
    config, settings = environment.config, environment.settings
    stack_path = stack_file or (project_file.parent / str(
        (yaml.safe_load(project_file.read_text(encoding="utf-8")) or {}).get(
            "stackConfigDir", ".")) / f"Pulumi.{env}.yaml")
    if recording is None:
        recording = plan_stack(config)
    scanner = Scanner(settings, floating_addresses(recording))
    scan_allow_list(scanner, settings, project_file)
    scan_config(scanner, config, project_file, stack_path)
    scan_backend(scanner, env, project_file, stack_path, environ)
    scan_recording(scanner, recording)
    if roles_dir.is_dir():
        scan_roles(scanner, roles_dir)
    if playbooks_dir.is_dir():
        scan_playbooks(scanner, playbooks_dir)
    if "servers" in recording.stack_outputs:  # a program that deploys hosts to harden
        scan_inventory(scanner, environment, recording)
    if manifests_dir is not None:
        scan_manifests(scanner, manifests_dir)
    allow_list = []
    for endpoint in settings.sovereignty.endpoints:
        if env not in endpoint.environments:
            continue
        provider = settings.sovereignty.provider(endpoint.provider)
        allow_list.append({
            "name": endpoint.name, "kind": endpoint.kind, "url": endpoint.url,
            "host": endpoint.host, "provider": provider.name,
            "jurisdiction": provider.jurisdiction, "qualification": provider.qualification,
            "evidence": provider.evidence,
        })
    return Report(environment=env, allow_list=allow_list, uses=scanner.uses)


def render_table(report: Report, show_all: bool = True) -> str:
    rows = [u for u in report.uses if show_all or u.denied]
    rows.sort(key=lambda u: (STATUSES.index(u.status), u.source, u.host, u.location, u.key))
    header = ("STATUS", "HOST", "FORM", "SOURCE", "WHERE", "ALLOW-LIST / REASON")
    lines = [header]
    for use in rows:
        basis = use.endpoint or use.provider or ""
        note = f"{basis} ({use.jurisdiction})" if basis and use.jurisdiction else basis
        if use.status not in ("allowed",) or not note:
            note = f"{note}: {use.reason}" if note else use.reason
        lines.append((use.status, use.host, use.form, use.source,
                       f"{use.location}: {use.key}", note))
    widths = [min(max(len(r[i]) for r in lines), cap)
              for i, cap in enumerate((14, 40, 16, 10, 90, 200))]
    out = ["  ".join(c[:w].ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
           for r in lines]
    summary = ", ".join(f"{n} {s}" for s, n in report.summary().items() if n)
    verdict = "FAIL" if report.denied else "pass"
    out.append(f"citadelle sovereignty {report.environment}: {verdict}: {len(report.uses)} "
               f"endpoint uses ({summary}); allow-list: {len(report.allow_list)} endpoints")
    return "\n".join(out)


def _rule_of(use: EndpointUse) -> Rule:
    if use.form == "backend":
        return RULES["backend"]
    if use.form == "secrets-provider":
        return RULES["secrets-provider"]
    return RULES["endpoint"]


def _line_of(location: str, value: str) -> int | None:
    path = paths.REPO_ROOT / location
    if not path.is_file():
        return None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if value in line:
            return number
    return None


def findings(report: Report) -> list[Finding]:
    """Denied uses in the shared findings model (SARIF, JUnit writers)."""
    result: list[Finding] = []
    for use in report.denied:
        is_file = (paths.REPO_ROOT / use.location).is_file()
        result.append(Finding(
            rule_id=_rule_of(use).id,
            message=f"{use.location}: {use.key}: {use.host} ({use.form}): {use.reason}",
            subject=use.location if is_file else f"{use.location}: {use.key}",
            subject_type="file" if is_file else use.source,
            uri=use.location if is_file else use.key,
            line=_line_of(use.location, use.value) if is_file else None,
        ))
    return result


def write_sarif(report: Report, path: Path) -> None:
    document = sarif.to_sarif("citadelle sovereignty", __version__, list(RULES.values()),
                              findings(report))
    sarif.write_sarif(path, document)


def _directory(value: str) -> Path:
    path = Path(value)
    if not path.is_dir():
        raise CitadelleError(f"--manifests {value}: no such directory (write it with "
                             "`citadelle render ENV --out DIR`)")
    return path


def _handle(args: argparse.Namespace) -> int:
    recording = None
    if args.recording:
        try:
            recording = Recording.from_dict(json.loads(Path(args.recording).read_text()))
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise CitadelleError(f"{args.recording}: not a recorded plan "
                                 f"(citadelle plan ENV --json FILE): {err}") from None
        if recording.stack != args.env:
            raise CitadelleError(f"{args.recording} is the plan of {recording.stack!r}, not "
                                 f"{args.env!r}: record it with citadelle plan {args.env} --json")
    report = sovereignty_report(
        args.env,
        project_file=Path(args.project),
        stack_file=Path(args.stack_config) if args.stack_config else None,
        recording=recording,
        roles_dir=Path(args.roles),
        playbooks_dir=Path(args.playbooks),
        manifests_dir=_directory(args.manifests) if args.manifests else None,
    )
    print(render_table(report, show_all=not args.denied_only))
    for use in report.denied:
        print(f"citadelle: denied: {use.location}: {use.key}: {use.host}: {use.reason}")
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_dict(), indent=2) + "\n",
                                   encoding="utf-8")
    if args.sarif:
        write_sarif(report, Path(args.sarif))
    return 1 if report.denied else 0


def register(subparsers: Any) -> None:
    parser = env_command(
        subparsers, "sovereignty",
        "list every outside endpoint an environment uses and check it against the "
        "allow-list")
    parser.add_argument("--json", metavar="FILE", help="write the full report as JSON")
    parser.add_argument("--sarif", metavar="FILE", help="write denied uses as SARIF 2.1.0")
    parser.add_argument("--denied-only", action="store_true",
                        help="print only the uses that are not allowed")
    parser.add_argument("--recording", metavar="FILE",
                        help="scan this recorded plan (citadelle plan ENV --json) instead of "
                        "planning again")
    parser.add_argument("--manifests", metavar="DIR",
                        help="also scan rendered Kubernetes manifests (citadelle render ENV "
                        "--out DIR, or pulumi-kubernetes' render directory)")
    parser.add_argument("--project", default=str(paths.PROJECT_FILE),
                        help="the Pulumi.yaml of the project (default: this repository's)")
    parser.add_argument("--stack-config", metavar="FILE",
                        help="the stack file (default: <stackConfigDir>/Pulumi.ENV.yaml)")
    parser.add_argument("--roles", default=str(paths.ROLES_DIR), help=argparse.SUPPRESS)
    parser.add_argument("--playbooks", default=str(paths.PLAYBOOKS_DIR),
                        help=argparse.SUPPRESS)
    parser.set_defaults(func=_handle)
