"""What the gate cannot judge during a preview: security inputs known only at apply time.

During ``pulumi preview`` an input computed from another resource (an id, an address, a value
built in an ``apply``) is unknown. The other policies judge every resource they can and skip the
one input they cannot read; this advisory policy names each such resource and input, so that an
unknown never passes silently. A kubeconfig held as a Pulumi secret is masked for the offline
gate (it never holds a secret); ``pulumi preview`` hands its value to the pack, where
``provider-tls-verified`` judges it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pulumi_policy import ResourceValidationArgs, Severity
from pulumi_policy.proxy import UnknownValueError

from citadelle_policies.meta import Config, Control, Report, resource_policy
from citadelle_policies.rbac import is_rbac_type
from citadelle_policies.transport import (
    KUBERNETES_PROVIDER,
    PROVIDER_PREFIX,
    SECRET_MASK,
    parse_kubeconfig,
)

# The inputs the network policies judge, by type; providers and RBAC objects: all of them.
NETWORK_INPUTS: dict[str, tuple[str, ...]] = {
    "openstack:networking/secGroupRule:SecGroupRule": (
        "direction", "protocol", "portRangeMin", "portRangeMax", "remoteIpPrefix",
        "remoteGroupId", "remoteAddressGroupId", "securityGroupId", "ethertype"),
    "openstack:networking/secGroup:SecGroup": ("deleteDefaultRules",),
    "openstack:networking/subnet:Subnet": ("cidr", "noGateway", "gatewayIp", "hostRoutes",
                                           "networkId"),
    "openstack:networking/network:Network": ("external", "shared", "portSecurityEnabled"),
    "openstack:networking/port:Port": ("networkId", "fixedIps", "securityGroupIds",
                                       "portSecurityEnabled", "deviceOwner",
                                       "allowedAddressPairs"),
    "openstack:networking/routerInterface:RouterInterface": ("routerId", "subnetId", "portId"),
    "openstack:networking/router:Router": ("externalNetworkId", "externalFixedIps"),
    "openstack:networking/floatingIp:FloatingIp": ("portId", "fixedIp"),
    "openstack:networking/floatingIpAssociate:FloatingIpAssociate": ("portId", "fixedIp"),
    "openstack:compute/floatingIpAssociate:FloatingIpAssociate": ("instanceId", "fixedIp"),
    "openstack:networking/portForwardingV2:PortForwardingV2": ("internalPortId",
                                                                "internalIpAddress"),
    "openstack:networking/rbacPolicyV2:RbacPolicyV2": ("objectId", "objectType", "action"),
    "openstack:networking/portSecGroupAssociate:PortSecGroupAssociate": ("portId",
                                                                          "securityGroupIds"),
    "openstack:compute/instance:Instance": ("networks", "securityGroups"),
}

KNOWN = Control(
    name="security-inputs-known",
    description=(
        "Inputs that decide segmentation, RBAC or transport security should be known when the "
        "gate runs; an input known only at apply time is named rather than passed silently"
    ),
    severity=Severity.MEDIUM,
    snc=("13.2.a", "9.3.a", "10.2.a"),
    remediation=(
        "Give the named input a value known at preview (a literal, a stack config value), or "
        "review the resource in `pulumi up`'s policy run, where every value is known; for a "
        "kubeconfig held as a secret, run `pulumi preview --policy-pack policies/`, which hands "
        "its value to the pack."
    ),
    advisory_reason=(
        "the pack cannot judge a value unknown at preview; the same policies judge it again "
        "when the update registers it, known"
    ),
)


def unknown_paths(value: Any, path: str = "") -> Iterator[str]:
    if isinstance(value, Mapping):
        for key in value:
            where = f"{path}.{key}" if path else str(key)
            try:
                element = value[key]
            except UnknownValueError:
                yield where
                continue
            yield from unknown_paths(element, where)
    elif isinstance(value, Sequence) and not isinstance(value, str | bytes):
        for index in range(len(value)):
            try:
                element = value[index]
            except UnknownValueError:
                yield f"{path}[{index}]"
                continue
            yield from unknown_paths(element, f"{path}[{index}]")


def _selected(props: Any, keys: tuple[str, ...]) -> Iterator[str]:
    for key in keys:
        try:
            value = props.get(key) if isinstance(props, Mapping) else None
        except UnknownValueError:
            yield key
            continue
        yield from unknown_paths(value, key)


def check_known(args: ResourceValidationArgs, config: Config, report: Report) -> None:
    kind = args.resource_type
    if kind.startswith(PROVIDER_PREFIX) or is_rbac_type(kind):
        unknown = list(unknown_paths(args.props))
    elif kind in NETWORK_INPUTS:
        unknown = list(_selected(args.props, NETWORK_INPUTS[kind]))
    else:
        args.not_applicable(f"{kind}: no input the segmentation, RBAC or TLS policies read")
    if unknown:
        report(f"unknown until apply: {', '.join(unknown)}; not judged in this preview")
    if kind == KUBERNETES_PROVIDER and "kubeconfig" not in unknown:
        kubeconfig = args.props.get("kubeconfig")
        # A secret kubeconfig is masked offline; `pulumi preview` hands its value to the pack.
        if isinstance(kubeconfig, str) and kubeconfig != SECRET_MASK and parse_kubeconfig(
                kubeconfig) is None:
            report("kubeconfig is not kubeconfig text (a path?): the file's clusters and TLS "
                   "settings are not judged")


POLICIES = [resource_policy(KNOWN, check_known)]
