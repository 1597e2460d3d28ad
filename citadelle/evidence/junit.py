"""JUnit XML output: one testsuite per run, one testcase per ``Check`` (rule x subject).

A check with blocking findings is a failure; advisory findings are kept in the testcase's
system-out so CI dashboards show them without failing the build.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from citadelle.evidence.findings import Check, Rule


def to_junit(suite: str, rules: Sequence[Rule], checks: Sequence[Check],
             time_s: float = 0.0) -> ET.ElementTree:
    by_id = {rule.id: rule for rule in rules}
    failures = sum(1 for c in checks if c.failed)
    skipped = sum(1 for c in checks if c.skipped and not c.failed)
    root = ET.Element("testsuites", name=suite, tests=str(len(checks)),
                      failures=str(failures), errors="0", time=f"{time_s:.3f}")
    element = ET.SubElement(root, "testsuite", name=suite, tests=str(len(checks)),
                            failures=str(failures), errors="0", skipped=str(skipped),
                            time=f"{time_s:.3f}")
    for check in checks:
        rule = by_id.get(check.rule_id)
        case = ET.SubElement(element, "testcase", classname=check.rule_id,
                             name=f"{check.subject} ({check.subject_type})"
                             if check.subject_type else check.subject)
        if rule is not None:
            properties = ET.SubElement(case, "properties")
            for requirement in rule.requirements:
                ET.SubElement(properties, "property", name="requirement", value=requirement)
            ET.SubElement(properties, "property", name="severity", value=rule.severity)
        blocking = [f for f in check.findings if f.blocking]
        if blocking:
            failure = ET.SubElement(case, "failure", type=check.rule_id,
                                    message=blocking[0].message.splitlines()[0][:200])
            failure.text = "\n".join(f.message for f in blocking) + (
                f"\nRemediation: {rule.remediation}" if rule is not None and rule.remediation
                else "")
        elif check.skipped:
            ET.SubElement(case, "skipped", message=check.skipped[:200])
        out = [f"advisory: {f.message}" for f in check.findings if not f.blocking]
        out += check.notes
        if out:
            ET.SubElement(case, "system-out").text = "\n".join(out)
    ET.indent(root)
    return ET.ElementTree(root)


def write_junit(path: Path, tree: ET.ElementTree) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tree.write(path, encoding="utf-8", xml_declaration=True)
