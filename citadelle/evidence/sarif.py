"""SARIF 2.1.0 output: one rule per ``Rule``, one result per ``Finding``.

Resources are logical locations (name, fully qualified by URN); file findings also get a physical
location. Severity maps to SARIF's ``level`` (blocking -> error, advisory -> warning) and to the
``security-severity`` score code-scanning tools sort by.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from citadelle.evidence.findings import Finding, Rule

SCHEMA_URI = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
SECURITY_SEVERITY = {"low": "3.0", "medium": "5.5", "high": "8.0", "critical": "9.5"}


def _rule(rule: Rule) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": rule.id,
        "name": "".join(part.capitalize() for part in rule.id.split("-")),
        "shortDescription": {"text": rule.description.split(" (")[0]},
        "fullDescription": {"text": rule.description},
        "defaultConfiguration": {"level": "error" if rule.blocking else "warning"},
        "properties": {
            "security-severity": SECURITY_SEVERITY.get(rule.severity, "5.5"),
            "severity": rule.severity,
            "enforcement": "mandatory" if rule.blocking else "advisory",
            "tags": ["security", *rule.requirements, *rule.tags],
            "secnumcloud": list(rule.snc),
            "bp028": list(rule.bp028),
        },
    }
    if rule.remediation:
        entry["help"] = {"text": rule.remediation}
    if rule.help_uri:
        entry["helpUri"] = rule.help_uri
    return entry


def _result(finding: Finding, index: int, rule: Rule) -> dict[str, Any]:
    location: dict[str, Any] = {
        "logicalLocations": [{
            "name": finding.subject,
            "fullyQualifiedName": finding.uri or finding.subject,
            "kind": "resource" if finding.subject_type != "file" else "module",
        }],
    }
    if finding.subject_type == "file":
        physical: dict[str, Any] = {"artifactLocation": {"uri": finding.uri or finding.subject}}
        if finding.line:
            physical["region"] = {"startLine": finding.line}
        location["physicalLocation"] = physical
    result: dict[str, Any] = {
        "ruleId": finding.rule_id,
        "ruleIndex": index,
        "level": "error" if finding.blocking else "warning",
        "message": {"text": finding.message},
        "locations": [location],
    }
    properties: dict[str, Any] = {"snc": list(rule.snc), "bp028": list(rule.bp028)}
    if finding.subject_type and finding.subject_type != "file":
        properties["resourceType"] = finding.subject_type
    result["properties"] = properties
    return result


def to_sarif(
    tool: str,
    version: str,
    rules: Sequence[Rule],
    findings: Iterable[Finding],
    information_uri: str | None = None,
) -> dict[str, Any]:
    index = {rule.id: i for i, rule in enumerate(rules)}
    driver: dict[str, Any] = {"name": tool, "version": version, "rules": [_rule(r) for r in rules]}
    if information_uri:
        driver["informationUri"] = information_uri
    results = [_result(f, index[f.rule_id], rules[index[f.rule_id]]) for f in findings
               if f.rule_id in index]
    return {
        "$schema": SCHEMA_URI,
        "version": "2.1.0",
        "runs": [{"tool": {"driver": driver}, "results": results,
                  "columnKind": "unicodeCodePoints"}],
    }


def write_sarif(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
