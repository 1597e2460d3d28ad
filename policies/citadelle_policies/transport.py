"""Transport security of providers: what a provider's arguments turn off, not only where it points.

A provider that skips certificate verification, speaks plain HTTP to an endpoint (identity,
an endpoint override, a cluster's API server) or trusts an empty CA bundle hands the platform's
credentials and every API call to whoever sits on the path, whatever host it names.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

import yaml
from pulumi_policy import ResourceValidationArgs, Severity
from pulumi_policy.proxy import UnknownValueError

from citadelle_policies.meta import (
    Config,
    Control,
    Report,
    get,
    items,
    leaves,
    resource_policy,
    truthy,
)

PROVIDER_PREFIX = "pulumi:providers:"
KUBERNETES_PROVIDER = "pulumi:providers:kubernetes"
# Argument spellings that turn verification off when true, across providers (openstack
# `insecure`, vault `skipTlsVerify`, kubeconfig `insecure-skip-tls-verify`, ...).
_OFF_WHEN_TRUE = re.compile(r"insecure|skip.?(tls|ssl|cert).?verif|no.?verify|(tls|ssl).?skip",
                            re.IGNORECASE)
# ... and those that turn it off when false (`sslVerify`, `verifySsl`, `tlsVerify`).
_OFF_WHEN_FALSE = re.compile(r"^(ssl|tls|cert)?.?verif(y|ication)?.?(ssl|tls|cert)?$",
                             re.IGNORECASE)
_CA_KEYS = re.compile(r"ca.?cert|cacert|ca.?file|ca.?bundle|certificate.?authority",
                      re.IGNORECASE)
_URL_RE = re.compile(r"^\s*([a-z][a-z0-9+.-]*)://", re.IGNORECASE)
# What the offline gate sends for a secret's value (it never holds one).
SECRET_MASK = "[secret]"  # noqa: S105 - a mask, not a credential

TLS = Control(
    name="provider-tls-verified",
    description=(
        "Providers must verify the TLS certificates of every endpoint they call and never speak "
        "plain HTTP: no insecure or skip-verify flag, no http:// endpoint or override, no empty "
        "CA bundle, no kubeconfig cluster with insecure-skip-tls-verify or an http server"
    ),
    severity=Severity.CRITICAL,
    snc=("10.2.a", "10.2.c", "19.6.c"),
    remediation=(
        "Remove `insecure`/skip-verify flags; point auth_url, endpoint overrides and the "
        "kubeconfig's server at https endpoints; give `cacert_file` the provider's CA bundle "
        "(or leave it unset for the system store); build the Kubernetes provider from a "
        "kubeconfig whose clusters carry certificate-authority-data."
    ),
)


def _turned_off(path: str, value: Any) -> bool:
    key = re.split(r"[.\[]", path)[-1] if path else ""
    if _OFF_WHEN_TRUE.search(key) and truthy(value):
        return True
    falsy = value is False or (isinstance(value, str)
                               and value.strip().lower() in ("false", "0", "no"))
    return bool(_OFF_WHEN_FALSE.match(key)) and falsy


def _odd_ca(value: Any) -> bool:
    return isinstance(value, str) and value.strip() in ("", "/dev/null")


def transport_findings(values: Any, where: str = "") -> Iterator[str]:
    """What in a provider's (or a kubeconfig's) settings turns transport security off."""
    for path, value in leaves(values):
        label = f"{where}{path}"
        if _turned_off(path, value):
            yield f"{label}={value!r} turns certificate verification off"
        key = re.split(r"[.\[]", path)[-1] if path else ""
        if _CA_KEYS.search(key) and _odd_ca(value):
            yield f"{label}={value!r} is not a CA bundle: nothing can be verified against it"
        if isinstance(value, str):
            scheme = _URL_RE.match(value)
            if scheme and scheme.group(1).lower() in ("http", "ws"):
                yield f"{label} {value.strip()!r} is plain {scheme.group(1).lower()}"


def _decoded(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def parse_kubeconfig(text: str) -> Mapping[str, Any] | None:
    """A kubeconfig given as YAML or JSON text; None for a path or anything unreadable."""
    try:
        data = json.loads(text)
    except ValueError:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError:
            return None
    return data if isinstance(data, Mapping) and "clusters" in data else None


def kubeconfig_findings(config: Mapping[str, Any]) -> Iterator[str]:
    for cluster in items(get(config, "clusters")):
        name = get(cluster, "name") or "?"
        body = get(cluster, "cluster") or {}
        yield from transport_findings(body, f"kubeconfig cluster {name}: ")
        server = get(body, "server")
        if isinstance(server, str) and not server.startswith("https://") and not _URL_RE.match(
                server):
            yield f"kubeconfig cluster {name}: server {server!r} names no https endpoint"


def check_tls(args: ResourceValidationArgs, config: Config, report: Report) -> None:
    if not args.resource_type.startswith(PROVIDER_PREFIX):
        args.not_applicable("not a provider")
    # Providers receive every non-string input JSON-encoded (endpoint overrides, flags).
    settings = {k: _decoded(v) for k, v in leaves(args.props) if k != "kubeconfig"}
    for finding in transport_findings(settings):
        report(finding)
    if args.resource_type != KUBERNETES_PROVIDER:
        return
    try:
        kubeconfig = get(args.props, "kubeconfig")
    except UnknownValueError:
        return  # named by security-inputs-known
    if kubeconfig is None:
        report("the Kubernetes provider has no kubeconfig: it would take the cluster, its "
               "credentials and its TLS settings from the operator's KUBECONFIG or ~/.kube/config")
    elif isinstance(kubeconfig, Mapping):
        for finding in kubeconfig_findings(kubeconfig):
            report(finding)
    elif isinstance(kubeconfig, str) and kubeconfig != SECRET_MASK:
        parsed = parse_kubeconfig(kubeconfig)
        for finding in kubeconfig_findings(parsed or {}):
            report(finding)


POLICIES = [resource_policy(TLS, check_tls)]
