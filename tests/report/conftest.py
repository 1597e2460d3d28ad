"""A deploy run folder with known results, for the evidence report tests.

The gate's SARIF flags one policy. The checks' JUnit holds a result for every (check, host)
the dev inventory makes applicable, all passed except: the input-policy check failed on the
workers, the journal upload waived everywhere, and the sysctl check of the datastore never
ran. The baseline's JUnit (an unhardened clone) passes only the chrony and the absent-package
checks. The report
must show exactly what follows from that.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import pytest

from citadelle.environment import Environment
from citadelle.evidence.report import BASELINE_JUNIT, check_catalogue, pack_policies

VIOLATED_POLICY = "eu-region-allow-list"
WORKERS = "citadelle-dev-workers-1"
DATASTORE = "citadelle-dev-datastore-1"
FAILED = ("test_input_policy_is_drop", WORKERS)
WAIVED = "test_journal_upload_is_running"
MISSING = ("test_sysctl", DATASTORE)
BASELINE_PASSES = ("test_chrony_is_running_and_enabled", "test_needless_package_absent")


def _case(entry: dict[str, Any], outcome: str) -> str:
    module = "checks." + Path(str(entry["module"])).stem
    name = str(entry["nodeid"]).split("::", 1)[1]
    body = {"passed": "", "failed": '<failure message="AssertionError">trace</failure>',
            "waived": '<skipped type="pytest.xfail" message="waived: 12.7 on all until '
                      '2027-06-30 (owner platform-team): no collector"/>'}[outcome]
    return (f"<testcase classname={quoteattr(module)} name={quoteattr(name)}><properties>"
            f'<property name="requirements" value="{" ".join(entry["requirements"])}"/>'
            f'<property name="host" value="{entry["host"]}"/></properties>{body}</testcase>')


def junit(cases: list[str]) -> str:
    return ('<?xml version="1.0" encoding="utf-8"?>\n<testsuites><testsuite name="pytest">'
            + "\n".join(cases) + "</testsuite></testsuites>\n")


def outcome_of(entry: dict[str, Any]) -> str | None:
    key = (entry["check"], entry["host"])
    if key == MISSING:
        return None
    if key == FAILED:
        return "failed"
    return "waived" if entry["check"] == WAIVED else "passed"


@pytest.fixture(scope="session")
def catalogue() -> list[dict[str, Any]]:
    return check_catalogue(Environment.load("dev"))


@pytest.fixture(scope="session")
def evidence_run(tmp_path_factory: pytest.TempPathFactory,
                 catalogue: list[dict[str, Any]]) -> Path:
    run = tmp_path_factory.mktemp("run") / "20261128T120000Z-dev"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"environment": "dev", "target": "lab",
                                              "steps": []}))
    rules = [{"id": p.name} for p in pack_policies()]
    results = [{"ruleId": VIOLATED_POLICY, "level": "error",
                "message": {"text": "region us-east-1 outside the EU allow-list"}}]
    (run / "gate.sarif").write_text(json.dumps({
        "version": "2.1.0", "runs": [{"tool": {"driver": {"name": "citadelle-gate",
                                                           "rules": rules}},
                                      "results": results}]}))
    applicable = [e for e in catalogue if not e.get("not_applicable")]
    cases = [_case(e, o) for e in applicable if (o := outcome_of(e)) is not None]
    (run / "checks.junit.xml").write_text(junit(cases))
    on_workers = [e for e in applicable if e["host"] == WORKERS]
    (run / BASELINE_JUNIT).write_text(junit([
        _case(e, "passed" if e["check"] in BASELINE_PASSES else "failed") for e in on_workers]))
    return run
