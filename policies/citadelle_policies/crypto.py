"""Key management: Barbican payloads are Pulumi secrets, keys are strong and readable by few."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import ResourceValidationArgs, Secret, Severity

from citadelle_policies.meta import (
    Config,
    Control,
    Report,
    get,
    number,
    remediation_policy,
    resource_policy,
)

SECRET = "openstack:keymanager/secretV1:SecretV1"  # noqa: S105 - a type token
CONTAINER = "openstack:keymanager/containerV1:ContainerV1"

PAYLOAD = Control(
    name="barbican-payload-secret",
    description=(
        "A Barbican secret's payload must be a Pulumi secret, so that state, logs and previews "
        "never hold the key in clear"
    ),
    severity=Severity.CRITICAL,
    snc=("10.5.c", "10.5.a"),
    remediation=(
        "Generate the key with pulumi-random (RandomBytes, a secret) or read it with "
        "`config.require_secret`, and pass it as `pulumi.Output.secret(...)`; never a literal or "
        "a plain config value. The engine wraps the payload as a secret when this policy "
        "remediates, but the source must be fixed: the gate fails until it is."
    ),
    applies_to=(SECRET,),
    remediate=True,
)

KEY = Control(
    name="barbican-key-protection",
    description=(
        "Barbican key-encryption keys must be AES of at least the configured length and readable "
        "only by the named service users, not by the whole project"
    ),
    severity=Severity.HIGH,
    snc=("10.5.a", "10.5.c", "10.1.b"),
    remediation=(
        "Declare the secret with algorithm 'aes' and bit_length >= minKeyBits, and an ACL "
        "`read: {project_access: False, users: [<service users>]}` (citadelle:keys.readers)."
    ),
    config={"minKeyBits": {"type": "integer", "default": 256,
                           "description": "minimum symmetric key length (RGS B1)"}},
    applies_to=(SECRET, CONTAINER),
)


def _raw(props: Any) -> Any:
    """The underlying dict of the SDK's read-only proxies (where Secret markers live)."""
    seen = 0
    while not isinstance(props, dict) and isinstance(props, Mapping) and seen < 4:
        props = props["__target"]
        seen += 1
    return props


def fix_payload(args: ResourceValidationArgs, config: Config) -> Mapping[str, Any] | None:
    raw = _raw(args.props)
    payload = raw.get("payload") if isinstance(raw, dict) else None
    if payload is None or isinstance(payload, Secret):
        return None
    fixed = dict(raw)
    fixed["payload"] = Secret(payload)
    return fixed


def check_key(args: ResourceValidationArgs, config: Config, report: Report) -> None:
    if args.resource_type == SECRET and get(args.props, "secretType") in (None, "symmetric"):
        algorithm = str(get(args.props, "algorithm") or "").lower()
        bits = number(get(args.props, "bitLength"))
        minimum = int(config.get("minKeyBits") or 256)
        if algorithm != "aes" or bits is None or bits < minimum:
            report(f"symmetric key is {algorithm or 'no algorithm'}/{bits or 'no length'}; "
                   f"required: aes, at least {minimum} bits")
    read = get(args.props, "acl", "read")
    if read is None:
        report("no read ACL: every member of the project can read the key")
        return
    if get(read, "projectAccess") is not False:
        report("read ACL keeps project_access: every member of the project can read the key")
    if not list(get(read, "users") or []):
        report("read ACL names no service user")


POLICIES = [remediation_policy(PAYLOAD, fix_payload), resource_policy(KEY, check_key)]
