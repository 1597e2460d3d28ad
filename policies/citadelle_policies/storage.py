"""Data at rest: encrypted volume types and private object storage."""

from __future__ import annotations

from pulumi_policy import (
    PolicyResource,
    ResourceValidationArgs,
    Severity,
    StackValidationArgs,
)

from citadelle_policies.graph import StackGraph
from citadelle_policies.meta import (
    Config,
    Control,
    Report,
    get,
    number,
    resource_policy,
    stack_policy,
    string_list,
)

VOLUME = "openstack:blockstorage/volume:Volume"
VOLUME_TYPE = "openstack:blockstorage/volumeTypeV3:VolumeTypeV3"
CONTAINER = "openstack:objectstorage/container:Container"

ENCRYPTED = Control(
    name="volume-encrypted-type",
    description="Every block volume must use an encrypted (LUKS) volume type",
    severity=Severity.CRITICAL,
    snc=("10.1.a", "10.1.b"),
    remediation=(
        "Set volume_type to the environment's encrypted type (citadelle:storage.volumeType, "
        "declared by the keys component with its LUKS encryption spec); a volume without a type "
        "gets the provider's default, unencrypted type."
    ),
    config={
        "encryptedVolumeTypes": string_list(
            "encrypted volume type names; a declared type named <prefix>-<entry> matches too"),
        "encryptionProviders": string_list("accepted encryption providers", ["luks"]),
        "minKeySize": {"type": "integer", "default": 256,
                       "description": "minimum LUKS key size in bits"},
    },
    applies_to=(VOLUME,),
)

PRIVATE = Control(
    name="object-storage-private",
    description="Object storage containers must never be public (no referrer or wildcard ACL)",
    severity=Severity.CRITICAL,
    snc=("9.7.a", "13.2.a", "19.2.b"),
    remediation=(
        "Leave container_read and container_write empty (owning project only) or name the "
        "reading identity (`*:<user id>`); never '.r:*', '.r:<referrer>', '.rlistings', '*' "
        "or '*:*'."
    ),
    applies_to=(CONTAINER,),
)

# Referrer ACLs (anonymous HTTP access) and wildcards over every account of the cloud. A named
# identity (``*:<user id>``, ``<project id>:<user id>``) is not public.
_PUBLIC_ENTRIES = ("*", "*:*", ".rlistings")


def _matches(name: str, allowed: list[str]) -> bool:
    return any(name == entry or name.endswith("-" + entry) for entry in allowed)


def _spec_problem(volume_type: PolicyResource, config: Config) -> str | None:
    specs = get(volume_type.props, "extraSpecs") or {}
    provider = specs.get("citadelle:encryption_provider") or specs.get("encryption_provider")
    size = number(specs.get("citadelle:encryption_key_size") or specs.get("encryption_key_size"))
    providers = list(config.get("encryptionProviders") or [])
    minimum = int(config.get("minKeySize") or 256)
    if provider not in providers:
        return f"declares no encryption provider among {providers}"
    if size is None or size < minimum:
        return f"declares a {size or 'missing'}-bit key (minimum {minimum})"
    return None


def check_encrypted(args: StackValidationArgs, config: Config, report: Report) -> None:
    graph = StackGraph(args.resources)
    allowed = list(config.get("encryptedVolumeTypes") or [])
    declared = {str(get(t.props, "name")): t for t in graph.of_type(VOLUME_TYPE)}
    for volume in graph.of_type(VOLUME):
        type_name = get(volume.props, "volumeType")
        if not type_name:
            report("no volume_type: the provider's default type is not encrypted", volume.urn)
            continue
        if not _matches(str(type_name), allowed):
            report(f"volume type {type_name!r} is not an encrypted type "
                   f"(allowed: {', '.join(allowed) or 'none configured'})", volume.urn)
            continue
        declared_type = declared.get(str(type_name))
        problem = _spec_problem(declared_type, config) if declared_type is not None else None
        if problem:
            report(f"volume type {type_name!r} {problem}", volume.urn)


def check_private(args: ResourceValidationArgs, config: Config, report: Report) -> None:
    for key in ("containerRead", "containerWrite"):
        acl = str(get(args.props, key) or "")
        entries = [e.strip() for e in acl.split(",") if e.strip()]
        public = [e for e in entries if e in _PUBLIC_ENTRIES or e.startswith(".r:")]
        if public:
            report(f"{key} {acl!r} makes the container public ({', '.join(public)})")


POLICIES = [stack_policy(ENCRYPTED, check_encrypted), resource_policy(PRIVATE, check_private)]
