"""A deploy run folder with known results, for the evidence report tests.

The gate's SARIF flags one policy; the checks' JUnit holds one passing, one failing and one
waived check: the report must show exactly those outcomes against the right requirements.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from citadelle.environment import Environment
from citadelle.evidence.report import check_catalogue, pack_policies

VIOLATED_POLICY = "eu-region-allow-list"
JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" tests="3">
<testcase classname="checks.test_time"
 name="test_chrony_is_running_and_enabled[citadelle-dev-node-1]">
<properties><property name="requirements" value="12.8"/>
<property name="host" value="citadelle-dev-node-1"/></properties></testcase>
<testcase classname="checks.test_segmentation"
 name="test_input_policy_is_drop[citadelle-dev-node-1]">
<properties><property name="requirements" value="13.2 9.7 R80"/>
<property name="host" value="citadelle-dev-node-1"/></properties>
<failure message="AssertionError: assert 'policy drop;' in ''">trace</failure></testcase>
<testcase classname="checks.test_logging"
 name="test_journal_upload_is_running[citadelle-dev-node-1]">
<properties><property name="requirements" value="12.7 R71"/>
<property name="host" value="citadelle-dev-node-1"/></properties>
<skipped type="pytest.xfail"
 message="waived: 12.7 on all until 2027-06-30 (owner platform-team): no collector"/>
</testcase>
</testsuite></testsuites>
"""


@pytest.fixture(scope="session")
def catalogue() -> list[dict[str, Any]]:
    return check_catalogue(Environment.load("dev"))


@pytest.fixture(scope="session")
def evidence_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
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
    (run / "checks.junit.xml").write_text(JUNIT)
    return run
