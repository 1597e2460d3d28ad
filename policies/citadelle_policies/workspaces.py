"""Research workspaces: every workspace namespace is approved, unexpired and bounded by quotas.

A workspace namespace carries the label ``workspaceLabel`` (its project id) and the annotations
``expiresKey`` (ISO date) and ``approvalKey`` (the approval reference), set by the workspace
component from ``citadelle:workspaces``.
"""

from __future__ import annotations

import datetime as dt

from pulumi_policy import (
    PolicyResource,
    ResourceValidationArgs,
    Severity,
    StackValidationArgs,
)

from citadelle_policies.kubernetes import NAMESPACE, namespace_of
from citadelle_policies.meta import Config, Control, Report, get, resource_policy, stack_policy

QUOTA = "kubernetes:core/v1:ResourceQuota"
LIMIT_RANGE = "kubernetes:core/v1:LimitRange"

KEYS = {
    "workspaceLabel": {"type": "string", "default": "citadelle.io/workspace",
                       "description": "namespace label naming the workspace"},
    "expiresKey": {"type": "string", "default": "citadelle.io/expires",
                   "description": "namespace annotation (or label) with the expiry date"},
    "approvalKey": {"type": "string", "default": "citadelle.io/approval-ref",
                    "description": "namespace annotation (or label) with the approval reference"},
}

EXPIRY = Control(
    name="workspace-not-expired",
    description=(
        "A research workspace must carry its approval reference and an expiry date that has not "
        "passed"
    ),
    severity=Severity.HIGH,
    snc=("9.2.c", "9.3.g", "9.4.a"),
    remediation=(
        "Renew the project's approval and update `expires` in citadelle:workspaces, or remove the "
        "workspace from the stack (its namespace, key and extraction container go with it)."
    ),
    config=KEYS,
    applies_to=(NAMESPACE,),
)

QUOTAS = Control(
    name="workspace-quota",
    description="Every workspace namespace must hold a ResourceQuota and a LimitRange",
    severity=Severity.MEDIUM,
    snc=("9.7.a",),
    remediation=(
        "Declare `quotas` for the workspace in citadelle:workspaces; the workspace component "
        "creates the ResourceQuota and LimitRange from it."
    ),
    config=KEYS,
    applies_to=(NAMESPACE, QUOTA, LIMIT_RANGE),
)


def _marker(props: object, key: str) -> str | None:
    value = get(props, "metadata", "annotations", key) or get(props, "metadata", "labels", key)
    return str(value) if value else None


def _workspace(resource_props: object, config: Config) -> str | None:
    value = get(resource_props, "metadata", "labels", str(config.get("workspaceLabel")))
    return str(value) if value else None


def check_expiry(args: ResourceValidationArgs, config: Config, report: Report) -> None:
    workspace = _workspace(args.props, config)
    if workspace is None:
        args.not_applicable("not a workspace namespace")
    if not _marker(args.props, str(config.get("approvalKey"))):
        report(f"workspace {workspace} has no approval reference ({config.get('approvalKey')})")
    expires = _marker(args.props, str(config.get("expiresKey")))
    if expires is None:
        report(f"workspace {workspace} has no expiry date ({config.get('expiresKey')})")
        return
    try:
        date = dt.date.fromisoformat(expires)
    except ValueError:
        report(f"workspace {workspace} expiry {expires!r} is not an ISO date (YYYY-MM-DD)")
        return
    if date < dt.datetime.now(dt.UTC).date():
        report(f"workspace {workspace} expired on {date.isoformat()}")


def check_quota(args: StackValidationArgs, config: Config, report: Report) -> None:
    kinds: dict[str, set[str]] = {}
    for resource in args.resources:
        if resource.resource_type in (QUOTA, LIMIT_RANGE):
            kinds.setdefault(namespace_of(resource.props), set()).add(resource.resource_type)
    workspaces: list[PolicyResource] = [
        r for r in args.resources
        if r.resource_type == NAMESPACE and _workspace(r.props, config) is not None
    ]
    for namespace in workspaces:
        name = str(get(namespace.props, "metadata", "name") or namespace.name)
        missing = [t.rsplit(":", 1)[-1] for t in (QUOTA, LIMIT_RANGE)
                   if t not in kinds.get(name, set())]
        if missing:
            report(f"workspace namespace {name} has no {' and no '.join(missing)}", namespace.urn)


POLICIES = [resource_policy(EXPIRY, check_expiry), stack_policy(QUOTAS, check_quota)]
