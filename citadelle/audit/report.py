"""Audit output: a table for people, JSON, SARIF 2.1.0 and JUnit for machines."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from citadelle.audit.model import Check, Result, Severity, Status

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_LEVEL = {Severity.HIGH: "error", Severity.MEDIUM: "warning", Severity.LOW: "note"}


def table(results: Sequence[Result]) -> str:
    rows = [("STATUS", "SEVERITY", "CHECK", "SNC 3.2", "DETAIL")]
    rows += [
        (r.status.value, r.check.severity.value, r.check.id, ",".join(r.check.snc), r.message)
        for r in results
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4])) + "  " + row[4]
             for row in rows]  # fmt: skip
    failed = [r for r in results if r.status is Status.FAIL]
    high = sum(1 for r in failed if r.check.severity is Severity.HIGH)
    lines.append(
        f"{len(results)} results: {len(failed)} failed ({high} high), "
        f"{sum(1 for r in results if r.status is Status.NOT_CHECKED)} not checked, "
        f"{sum(1 for r in results if r.status is Status.NOT_APPLICABLE)} not applicable"
    )
    return "\n".join(lines)


def _check_dict(check: Check) -> dict[str, Any]:
    return {
        "id": check.id,
        "title": check.title,
        "snc": list(check.snc),
        "severity": check.severity.value,
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


def _checks(results: Sequence[Result]) -> list[Check]:
    seen: dict[str, Check] = {}
    for result in results:
        seen.setdefault(result.check.id, result.check)
    return list(seen.values())


def to_sarif(mode: str, cloud: str, results: Sequence[Result]) -> dict[str, Any]:
    checks = _checks(results)
    index = {check.id: i for i, check in enumerate(checks)}
    rules = [
        {
            "id": check.id,
            "name": check.id,
            "shortDescription": {"text": check.title},
            "help": {"text": check.remediation},
            "defaultConfiguration": {"level": SARIF_LEVEL[check.severity]},
            "properties": {
                "tags": [f"SecNumCloud-3.2:{i}" for i in check.snc],
                "severity": check.severity.value,
            },
        }
        for check in checks
    ]
    sarif_results = [
        {
            "ruleId": r.check.id,
            "ruleIndex": index[r.check.id],
            "level": SARIF_LEVEL[r.check.severity],
            "message": {"text": r.message},
            "locations": [
                {
                    "logicalLocations": [
                        {"name": r.resource or cloud, "fullyQualifiedName": f"{cloud}/{r.resource}"}
                    ]
                }
            ],
            "properties": {"snc": list(r.check.snc)},
        }
        for r in results
        if r.status is Status.FAIL
    ]
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "citadelle-audit-cloud",
                        "informationUri": "https://github.com/citadelle/citadelle",
                        "rules": rules,
                    }
                },
                "properties": {"mode": mode},
                "results": sarif_results,
            }
        ],
    }


def to_junit(mode: str, results: Sequence[Result]) -> ET.Element:
    """One testcase per check: failed if any of its results failed, skipped if none ran."""
    suite = ET.Element("testsuite", name=f"audit-cloud-{mode}")
    failures = skipped = 0
    for check in _checks(results):
        mine = [r for r in results if r.check.id == check.id]
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"audit-cloud.{mode}",
            name=f"{check.id} [{','.join(check.snc)}]",
        )
        failed = [r for r in mine if r.status is Status.FAIL]
        if failed:
            failures += 1
            failure = ET.SubElement(
                case, "failure", message=failed[0].message, type=check.severity.value
            )
            failure.text = "\n".join(r.message for r in failed)
        elif all(r.status in (Status.NOT_CHECKED, Status.NOT_APPLICABLE) for r in mine):
            skipped += 1
            ET.SubElement(case, "skipped", message="; ".join(r.message for r in mine))
        ET.SubElement(case, "system-out").text = "\n".join(f"{r.status}: {r.message}" for r in mine)
    suite.set("tests", str(len(suite.findall("testcase"))))
    suite.set("failures", str(failures))
    suite.set("skipped", str(skipped))
    suite.set("errors", "0")
    return suite


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")


def write_junit(path: Path, suite: ET.Element) -> None:
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)
