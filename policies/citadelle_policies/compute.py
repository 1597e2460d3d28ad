"""Servers carry the metadata the inventory and the auditors need."""

from __future__ import annotations

from pulumi_policy import ResourceValidationArgs, Severity

from citadelle_policies.meta import Config, Control, Report, get, resource_policy, string_list

INSTANCE = "openstack:compute/instance:Instance"

METADATA = Control(
    name="server-required-metadata",
    description=(
        "Every server must carry its environment, node role, data classification and owner in "
        "its metadata"
    ),
    severity=Severity.MEDIUM,
    snc=("8.1.a",),
    remediation=(
        "Add the missing keys to the server's `metadata` (the compute component sets them from "
        "citadelle:metadata and the node pool)."
    ),
    config={"requiredMetadata": string_list(
        "metadata keys every server must carry",
        ["environment", "node_role", "data_classification", "owner"])},
    applies_to=(INSTANCE,),
)


def check(args: ResourceValidationArgs, config: Config, report: Report) -> None:
    metadata = get(args.props, "metadata") or {}
    missing = [k for k in config.get("requiredMetadata") or [] if not metadata.get(k)]
    if missing:
        report(f"metadata lacks {', '.join(missing)}")


POLICIES = [resource_policy(METADATA, check)]
