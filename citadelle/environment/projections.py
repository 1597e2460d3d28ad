"""What one environment's settings mean for each consumer, computed in one place.

- :func:`policy_config`: the policy pack's config (``citadelle gate``, ``policy-config``, and
  ``--policy-pack-config`` of a real ``pulumi preview``/``up``);
- :func:`role_vars`: the hardening roles' and the checks' variables derived from the allow-list;
- :func:`host_levels`: the BP-028 level of each node role (the program tags servers with it,
  the inventory hands it to the roles).

docs/architecture.md follows one key (the provider allow-list) through all of them.
"""

from __future__ import annotations

from typing import Any

from citadelle.environment.settings import INGRESS_NAMESPACE, Settings

# Policies that recognise tiers by the CIDRs of citadelle:network.tiers.
TIERED_POLICIES = ("no-world-open-ingress", "ssh-from-bastion-only",
                   "floating-ip-edge-bastion-only", "data-tier-no-external-route",
                   "data-tier-peers-only")
# Policies that read the allow-list of system namespaces (citadelle:kubernetes.systemNamespaces).
K8S_POLICIES_WITH_SYSTEM_NAMESPACES = (
    "namespace-pod-security-restricted",
    "namespace-default-deny",
    "no-privileged-containers",
    "no-host-access",
    "no-root-containers",
    "image-allowed-registry",
    "image-pinned-digest",
    "rbac-platform-subjects",
)


def policy_config(settings: Settings) -> dict[str, dict[str, Any]]:
    """The pack's config for one environment, from its typed stack config."""
    sovereignty = settings.sovereignty
    env = settings.environment
    system = [ns.name for ns in settings.kubernetes.system_namespaces]
    config: dict[str, dict[str, Any]] = {
        "eu-region-allow-list": {"allowedRegions": sorted(sovereignty.allowed_regions())},
        "eu-endpoint-allow-list": {
            "allowedAuthHosts": sorted(
                {e.host for e in sovereignty.for_environment(env, "openstack-auth")}),
            "allowedDomains": sorted({d for p in sovereignty.providers for d in p.domains}),
        },
        "ssh-from-bastion-only": {"adminCidrs": list(settings.network.admin_cidrs)},
        "volume-encrypted-type": {
            "encryptedVolumeTypes": [settings.storage.volume_type],
            "minKeySize": settings.storage.encryption_key_size,
        },
        "image-allowed-registry": {"allowedRegistries": [settings.kubernetes.registry]},
        "service-exposure-edge-only": {"edgeNamespaces": [INGRESS_NAMESPACE]},
    }
    for name in K8S_POLICIES_WITH_SYSTEM_NAMESPACES:
        config.setdefault(name, {})["systemNamespaces"] = system
    # Tiers are recognised by their CIDRs, not by names or tags.
    tier_cidrs = {tier: [str(t.cidr)] for tier, t in settings.network.tiers.items()}
    for name in TIERED_POLICIES:
        config.setdefault(name, {})["tierCidrs"] = tier_cidrs
    config["data-tier-peers-only"]["serviceCidrs"] = [str(c) for c in
                                                      settings.network.service_cidrs]
    return config


def role_vars(settings: Settings) -> dict[str, Any]:
    """Variables every host gets from the allow-list: the checks' and the roles' names."""
    mirrors = settings.sovereignty.for_environment(settings.environment, "package-mirror")
    security = [m.url for m in mirrors if "security" in m.name]
    main = [m.url for m in mirrors if "security" not in m.name]
    return {
        # The allow-list (citadelle:sovereignty) the localisation checks hold the hosts to.
        "citadelle_ntp_servers": list(settings.endpoint_hosts("ntp")),
        "citadelle_dns_resolvers": list(settings.endpoint_hosts("dns")),
        "citadelle_package_mirrors": list(settings.endpoint_urls("package-mirror")),
        "citadelle_log_collectors": list(settings.endpoint_urls("log-collector")),
        # The same endpoints as the roles name them. The schema guarantees one main and one
        # security mirror, and a log collector, for every environment.
        "bp028_time_ntp_servers": list(settings.endpoint_hosts("ntp")),
        "bp028_audit_forward_url": settings.endpoint_urls("log-collector")[0],
        "bp028_packages_mirror_url": main[0],
        "bp028_packages_security_mirror_url": security[0],
    }


def host_levels(settings: Settings) -> dict[str, str]:
    """Node role -> BP-028 hardening level (the bastion is held to its own, higher level)."""
    hardening = settings.hardening
    return {"bastion": hardening.bastion_level, "gateway": hardening.level,
            "node": hardening.level}
