"""Policy metadata in one place: each policy is a ``Control`` turned into a pulumi_policy object.

pulumi-policy 1.21 carries severity, a compliance framework, tags and remediation steps on every
policy and sends them to the engine in ``GetAnalyzerInfo``; the gate reads them from there. The
framework holds the SecNumCloud 3.2 requirement ids; ANSSI-BP-028 ids and the resource types a
policy checks travel as tags (``bp028:R80``, ``checks:<type token>``). Config schema defaults are
applied by the engine; ``Control.settings`` applies them too, so a policy behaves the same when a
caller sends no config.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pulumi_policy import (
    EnforcementLevel,
    PolicyComplianceFramework,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

FRAMEWORK = "SecNumCloud"
FRAMEWORK_VERSION = "3.2"
FRAMEWORK_SPEC = "https://cyber.gouv.fr/sites/default/files/document/secnumcloud-referentiel-exigences-v3.2.pdf"

Config = Mapping[str, Any]


class Report(Protocol):
    """The SDK's report_violation: a message and, for stack policies, the resource's URN."""

    def __call__(self, message: str, urn: str | None = None) -> None: ...


ResourceCheck = Callable[[ResourceValidationArgs, Config, Report], None]
StackCheck = Callable[[StackValidationArgs, Config, Report], None]
RemediationCheck = Callable[[ResourceValidationArgs, Config], Mapping[str, Any] | None]


def string_list(description: str, default: list[str] | None = None) -> dict[str, Any]:
    """Config schema entry for a list of strings."""
    entry: dict[str, Any] = {"type": "array", "items": {"type": "string"},
                             "description": description}
    if default is not None:
        entry["default"] = default
    return entry


@dataclass(frozen=True)
class Control:
    """What a policy enforces, why (requirement ids) and how to fix a violation."""

    name: str
    description: str
    severity: Severity
    remediation: str
    snc: tuple[str, ...] = ()
    bp028: tuple[str, ...] = ()
    config: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    applies_to: tuple[str, ...] = ()
    advisory_reason: str | None = None
    remediate: bool = False

    @property
    def enforcement(self) -> EnforcementLevel:
        if self.remediate:
            return EnforcementLevel.REMEDIATE
        return EnforcementLevel.ADVISORY if self.advisory_reason else EnforcementLevel.MANDATORY

    def full_description(self) -> str:
        ids = [f"SecNumCloud 3.2 {', '.join(self.snc)}"] if self.snc else []
        ids += [f"ANSSI-BP-028 {', '.join(self.bp028)}"] if self.bp028 else []
        text = f"{self.description} ({'; '.join(ids)})"
        if self.advisory_reason:
            text += f" Advisory: {self.advisory_reason}"
        return text

    def tags(self) -> list[str]:
        return (
            [f"snc:{i}" for i in self.snc]
            + [f"bp028:{i}" for i in self.bp028]
            + [f"checks:{t}" for t in self.applies_to]
        )

    def framework(self) -> PolicyComplianceFramework:
        return PolicyComplianceFramework(
            name=FRAMEWORK,
            version=FRAMEWORK_VERSION,
            reference=", ".join(self.snc),
            specification=FRAMEWORK_SPEC,
        )

    def schema(self) -> PolicyConfigSchema | None:
        if not self.config:
            return None
        return PolicyConfigSchema(properties={k: dict(v) for k, v in self.config.items()})

    def settings(self, given: Mapping[str, Any] | None) -> dict[str, Any]:
        values = {k: v["default"] for k, v in self.config.items() if "default" in v}
        values.update(given or {})
        return values

    def _common(self) -> dict[str, Any]:
        return {
            "enforcement_level": self.enforcement,
            "config_schema": self.schema(),
            "severity": self.severity,
            "framework": self.framework(),
            "tags": self.tags(),
            "remediation_steps": self.remediation,
        }


def _adapt(report: ReportViolation) -> Report:
    def call(message: str, urn: str | None = None) -> None:
        report(message, urn)

    return call


def resource_policy(control: Control, check: ResourceCheck) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
        if control.applies_to and args.resource_type not in control.applies_to:
            args.not_applicable(f"{args.resource_type} is not checked by {control.name}")
        check(args, control.settings(args.get_config()), _adapt(report))

    return ResourceValidationPolicy(
        control.name, control.full_description(), validate=validate, **control._common()
    )


def remediation_policy(control: Control, fix: RemediationCheck) -> ResourceValidationPolicy:
    """A policy the engine applies in its Remediate pass (the only pass where the Python SDK
    keeps secret markers on the properties it hands to a policy)."""

    def remediate(args: ResourceValidationArgs) -> Mapping[str, Any] | None:
        if control.applies_to and args.resource_type not in control.applies_to:
            return None
        return fix(args, control.settings(args.get_config()))

    # The SDK accepts a plain (non-awaitable) mapping from remediate; its annotation is narrower.
    return ResourceValidationPolicy(
        control.name,
        control.full_description(),
        remediate=remediate,  # type: ignore[arg-type]
        **control._common(),
    )


def stack_policy(control: Control, check: StackCheck) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report: ReportViolation) -> None:
        check(args, control.settings(args.get_config()), _adapt(report))

    return StackValidationPolicy(
        control.name, control.full_description(), validate=validate, **control._common()
    )


# --------------------------------------------------------------------------- property helpers


def get(value: Any, *path: str | int) -> Any:
    """Nested lookup that answers None for any missing step (props are read-only proxies)."""
    for step in path:
        if isinstance(step, int):
            if not isinstance(value, Sequence) or isinstance(value, str) or step >= len(value):
                return None
            value = value[step]
        else:
            if not isinstance(value, Mapping):
                return None
            value = value.get(step)
        if value is None:
            return None
    return value


def peek(value: Any, *path: str | int) -> Any:
    """``get`` that answers None for a value unknown during a preview (graph building: the
    judgement of a resource with an unknown input is the advisory policy's job)."""
    try:
        return get(value, *path)
    except UnknownValueError:
        return None


def truthy(value: Any) -> bool:
    """A flag as programs spell it: a boolean, or a string from config ("true", "1", "yes")."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "on")
    return value is True


def tier_cidrs_schema() -> dict[str, Any]:
    """Config schema entry: tier name -> the CIDRs that define it (citadelle:network.tiers)."""
    return {"type": "object",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
            "default": {}, "description": "CIDRs of each tier, from the stack config"}


def items(value: Any) -> Iterator[Any]:
    """The elements of a list-like property (nothing when absent)."""
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return iter(list(value))
    return iter(())


def leaves(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every (path, leaf) of the inputs, ``a.b[0]``; values unknown during a preview are
    skipped (checked when the update registers them, known; the advisory policy
    security-inputs-known names them)."""
    if isinstance(value, Mapping):
        for key in value:
            try:
                element = value[key]
            except UnknownValueError:
                continue
            yield from leaves(element, f"{path}.{key}" if path else str(key))
    elif isinstance(value, Sequence) and not isinstance(value, str | bytes):
        for index in range(len(value)):
            try:
                element = value[index]
            except UnknownValueError:
                continue
            yield from leaves(element, f"{path}[{index}]")
    else:
        yield path, value


def number(value: Any) -> int | None:
    """Wire numbers arrive as floats."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
