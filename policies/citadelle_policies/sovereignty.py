"""Data localisation and non-EU law: regions and endpoints only from the EU allow-list.

The allow-lists are never written here: the gate (``citadelle policy-config ENV``) builds them from
the environment's ``citadelle:sovereignty`` stack config, the one source of truth.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from pulumi_policy import ResourceValidationArgs, Severity

from citadelle_policies.meta import (
    Config,
    Control,
    Report,
    get,
    leaves,
    resource_policy,
    string_list,
)

OPENSTACK_PROVIDER = "pulumi:providers:openstack"
_URL_RE = re.compile(r"https?://[^\s\"'<>\\]+", re.IGNORECASE)

REGION = Control(
    name="eu-region-allow-list",
    description="OpenStack regions must be EU regions of a declared SecNumCloud provider",
    severity=Severity.CRITICAL,
    snc=("19.2.b", "19.2.d"),
    remediation=(
        "Set `citadelle:openstack.region` (and any resource's `region`) to a region listed under "
        "a provider of `citadelle:sovereignty.providers[].regions`; add a region there only with "
        "the provider's SecNumCloud qualification evidence."
    ),
    config={"allowedRegions": string_list("EU regions of the qualified providers")},
)

ENDPOINT = Control(
    name="eu-endpoint-allow-list",
    description=(
        "The OpenStack identity endpoint and every URL in resource inputs must be an "
        "allow-listed EU endpoint"
    ),
    severity=Severity.CRITICAL,
    snc=("19.6.c", "19.2.d"),
    remediation=(
        "Point the provider's authUrl at an `openstack-auth` endpoint of "
        "`citadelle:sovereignty.endpoints` over https, and use only hosts under the declared "
        "providers' domains in resource inputs; add an endpoint there with its provider's "
        "jurisdiction evidence first."
    ),
    config={
        "allowedAuthHosts": string_list("hosts of the environment's openstack-auth endpoints"),
        "allowedDomains": string_list("DNS domains of the declared EU providers"),
    },
)


def _covered(host: str, domains: list[str]) -> bool:
    return any(host == d or host.endswith("." + d) for d in domains)


def check_region(args: ResourceValidationArgs, config: Config, report: Report) -> None:
    allowed = list(config.get("allowedRegions") or [])
    region = get(args.props, "region")
    if args.resource_type == OPENSTACK_PROVIDER and not region:
        report("the OpenStack provider sets no region: it would take OS_REGION_NAME from the "
               f"operator's environment (allowed: {', '.join(allowed) or 'none configured'})")
        return
    if region is None:
        args.not_applicable("no region input")
    if region not in allowed:
        report(f"region {region!r} is not an allow-listed EU region "
               f"(allowed: {', '.join(allowed) or 'none configured'})")


def check_endpoint(args: ResourceValidationArgs, config: Config, report: Report) -> None:
    auth_hosts = [h.lower() for h in config.get("allowedAuthHosts") or []]
    domains = [d.lower() for d in config.get("allowedDomains") or []]
    if args.resource_type == OPENSTACK_PROVIDER:
        auth_url = get(args.props, "authUrl")
        if not isinstance(auth_url, str) or not auth_url:
            report("the OpenStack provider sets no authUrl: it would take OS_AUTH_URL from the "
                   f"operator's environment (allowed hosts: {', '.join(auth_hosts)})")
        else:
            parsed = urlsplit(auth_url)
            host = (parsed.hostname or "").lower()
            if parsed.scheme != "https" or host not in auth_hosts:
                report(f"authUrl {auth_url!r} is not an allow-listed https identity endpoint "
                       f"(allowed hosts: {', '.join(auth_hosts) or 'none configured'})")
    for path, text in leaves(args.props):
        if not isinstance(text, str):
            continue
        for url in _URL_RE.findall(text):
            host = (urlsplit(url).hostname or "").lower()
            if host and not _covered(host, domains):
                report(f"{path} points at {host!r}, outside the EU providers' domains "
                       f"({', '.join(domains) or 'none configured'})")


POLICIES = [resource_policy(REGION, check_region), resource_policy(ENDPOINT, check_endpoint)]
