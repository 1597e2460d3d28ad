"""Audit output: a table for people, JSON, SARIF 2.1.0 and JUnit for machines."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from citadelle import __version__
from citadelle.audit.model import Result, Status
from citadelle.evidence import junit, sarif
from citadelle.evidence.findings import Check as FindingCheck
from citadelle.evidence.findings import Finding, Rule


def rule_catalogue() -> list[Rule]:
    """Every rule conformance and drift can report: the requirements the cloud layer covers."""
    # Imported here: the audits pull in the OpenStack SDK.
    from citadelle.audit import conformance, drift, objectstore  # noqa: PLC0415

    rules = {v.id: v for m in (conformance, drift, objectstore) for v in vars(m).values()
             if isinstance(v, Rule)}
    return [rules[k] for k in sorted(rules)]


def table(results: Sequence[Result]) -> str:
    rows = [("STATUS", "SEVERITY", "CHECK", "SNC 3.2", "DETAIL")]
    rows += [
        (r.status.value, r.check.severity, r.check.id, ",".join(r.check.snc), r.message)
        for r in results
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4])) + "  " + row[4]
             for row in rows]  # fmt: skip
    failed = [r for r in results if r.status is Status.FAIL]
    high = sum(1 for r in failed if r.check.blocking)
    lines.append(
        f"{len(results)} results: {len(failed)} failed ({high} high), "
        f"{sum(1 for r in results if r.status is Status.NOT_CHECKED)} not checked, "
        f"{sum(1 for r in results if r.status is Status.NOT_APPLICABLE)} not applicable"
    )
    return "\n".join(lines)


def _check_dict(check: Rule) -> dict[str, Any]:
    return {
        "id": check.id,
        "title": check.description,
        "snc": list(check.snc),
        "severity": check.severity,
        "remediation": check.remediation,
    }


def to_json(mode: str, env: str, cloud: str, results: Sequence[Result]) -> dict[str, Any]:
    return {
        "mode": mode,
        "environment": env,
        "cloud": cloud,
        "results": [
            {
                "check": _check_dict(r.check),
                "status": r.status.value,
                "message": r.message,
                "resource": r.resource,
            }
            for r in results
        ],
    }


def _rules(results: Sequence[Result]) -> list[Rule]:
    seen: dict[str, Rule] = {}
    for result in results:
        seen.setdefault(result.check.id, result.check)
    return list(seen.values())


def findings(cloud: str, results: Sequence[Result]) \
        -> tuple[list[Rule], list[FindingCheck], list[Finding]]:
    """The audit in the findings model every writer takes: high-severity failures block."""
    rules = _rules(results)
    checks: list[FindingCheck] = []
    found: list[Finding] = []
    for rule in rules:
        mine = [r for r in results if r.check.id == rule.id]
        failed = [Finding(rule.id, r.message, r.resource or cloud, "cloud resource",
                          f"{cloud}/{r.resource}", blocking=rule.blocking)
                  for r in mine if r.status is Status.FAIL]
        skipped = all(r.status in (Status.NOT_CHECKED, Status.NOT_APPLICABLE) for r in mine)
        checks.append(FindingCheck(
            rule.id, cloud, "cloud", findings=failed,
            skipped="; ".join(r.message for r in mine) if skipped else "",
            notes=[f"{r.status}: {r.message}" for r in mine]))
        found += failed
    return rules, checks, found


def write_sarif(path: Path, mode: str, cloud: str, results: Sequence[Result]) -> None:
    rules, _, found = findings(cloud, results)
    sarif.write_sarif(path, sarif.to_sarif(f"citadelle-audit-cloud ({mode})", __version__,
                                           rules, found))


def write_junit(path: Path, mode: str, cloud: str, results: Sequence[Result]) -> None:
    rules, checks, _ = findings(cloud, results)
    junit.write_junit(path, junit.to_junit(f"audit-cloud-{mode}", rules, checks))


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")
