"""Checks, their SecNumCloud 3.2 ids, and the results an audit produces."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache

import yaml

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


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    snc: tuple[str, ...]
    severity: Severity
    remediation: str


@dataclass(frozen=True)
class Result:
    """One outcome of a check: for drift, one per offending (or missing) resource."""

    check: Check
    status: Status
    message: str
    resource: str = ""
    details: dict[str, object] = field(default_factory=dict)

    @property
    def is_high_failure(self) -> bool:
        return self.status is Status.FAIL and self.check.severity is Severity.HIGH


@cache
def snc_section_ids() -> frozenset[str]:
    data = yaml.safe_load((REFERENCE_DIR / "secnumcloud-3.2.yaml").read_text())
    return frozenset(str(section["id"]) for section in data["sections"])
