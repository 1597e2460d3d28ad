"""The findings model shared by every checker (policy gate, sovereignty scan, cloud audit) and
its one SARIF writer and one JUnit writer (``citadelle.evidence.sarif``, ``.junit``).

A ``Rule`` is a control with its requirement ids; a ``Finding`` is one violation of a rule on one
subject (a resource, a file line, a cloud object); a ``Check`` is one rule applied to one subject,
with the findings it produced, so that passing checks are reported too, and checks that could
not run are reported as skipped with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SEVERITIES = ("low", "medium", "high", "critical")


@dataclass(frozen=True)
class Rule:
    id: str
    description: str
    severity: str = "medium"  # low | medium | high | critical
    blocking: bool = True  # a finding fails the run (mandatory) or is only reported (advisory)
    remediation: str = ""
    snc: tuple[str, ...] = ()  # SecNumCloud 3.2 requirement ids
    bp028: tuple[str, ...] = ()  # ANSSI-BP-028 recommendation ids
    help_uri: str | None = None
    tags: tuple[str, ...] = ()

    @property
    def requirements(self) -> tuple[str, ...]:
        return tuple(f"SNC {i}" for i in self.snc) + tuple(f"BP-028 {i}" for i in self.bp028)


@dataclass(frozen=True)
class Finding:
    rule_id: str
    message: str
    subject: str  # resource name, host, file...
    subject_type: str = ""  # resource type token, "file", ...
    uri: str = ""  # URN, URL or repository-relative file path
    line: int | None = None  # for file subjects
    blocking: bool = True


@dataclass
class Check:
    rule_id: str
    subject: str
    subject_type: str = ""
    uri: str = ""
    findings: list[Finding] = field(default_factory=list)
    skipped: str = ""  # why the check could not run; empty when it ran
    notes: list[str] = field(default_factory=list)  # what it saw, for the record

    @property
    def failed(self) -> bool:
        return any(f.blocking for f in self.findings)
