"""The audit's checks (rules of the one findings model), their SecNumCloud 3.2 ids, and the
results an audit produces."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache

import yaml

from citadelle.evidence.findings import Rule
from citadelle.paths import REFERENCE_DIR


class Severity(StrEnum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class Status(StrEnum):
    PASS = "pass"  # noqa: S105 - a status word, not a password
    FAIL = "fail"
    NOT_CHECKED = "not-checked"
    NOT_APPLICABLE = "not-applicable"


def audit_rule(rule_id: str, title: str, snc: tuple[str, ...], severity: Severity,
               remediation: str) -> Rule:
    """An audit check as a rule of the one findings model: a high-severity failure blocks."""
    return Rule(id=rule_id, description=title, severity=severity.value,
                blocking=severity is Severity.HIGH, remediation=remediation, snc=snc)


@dataclass(frozen=True)
class Result:
    """One outcome of a check: for drift, one per offending (or missing) resource."""

    check: Rule
    status: Status
    message: str
    resource: str = ""
    details: dict[str, object] = field(default_factory=dict)

    @property
    def is_high_failure(self) -> bool:
        return self.status is Status.FAIL and self.check.blocking


@cache
def snc_section_ids() -> frozenset[str]:
    data = yaml.safe_load((REFERENCE_DIR / "secnumcloud-3.2.yaml").read_text())
    return frozenset(str(section["id"]) for section in data["sections"])
