"""Every resource goes through an explicit, reviewed provider, never an ambient default one."""

from __future__ import annotations

from pulumi_policy import ResourceValidationArgs, Severity

from citadelle_policies.meta import Config, Control, Report, resource_policy

EXPLICIT = Control(
    name="explicit-provider",
    description=(
        "Resources must use an explicit provider: a default provider takes its endpoint, region "
        "and credentials from whatever environment runs the deployment"
    ),
    severity=Severity.HIGH,
    snc=("14.2.a", "19.2.d"),
    remediation=(
        "Pass `opts=pulumi.ResourceOptions(provider=...)` (or a parent that carries it) with the "
        "environment's explicit provider, and keep `pulumi:disable-default-providers: [\"*\"]` in "
        "Pulumi.yaml so the engine refuses default providers."
    ),
)


def check(args: ResourceValidationArgs, config: Config, report: Report) -> None:
    provider = args.provider
    if provider is None:
        # Components and provider resources have no provider; custom resources always do.
        args.not_applicable("no provider: a component or a provider resource")
        return
    if provider.name.startswith("default"):
        report(f"uses the default {provider.resource_type} provider ({provider.name})")


POLICIES = [resource_policy(EXPLICIT, check)]
