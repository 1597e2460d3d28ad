"""Waivers: valid ones mark the check waived (xfail with the reason, in JUnit), expired ones
fail, unknown requirement ids and malformed entries are refused."""

from __future__ import annotations

import ast
import datetime as dt
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml
from sarif_kit.validate import validation_errors

from citadelle.deploy.inventory import write_inventory
from citadelle.deploy.verify import run_checks
from citadelle.deploy.waivers import known_requirement_ids, parse_waivers
from citadelle.environment import Environment
from citadelle.environment.targets import Access
from citadelle.errors import CitadelleError
from citadelle.evidence.report import synthetic_outputs
from citadelle.paths import REPO_ROOT

pytestmark = pytest.mark.unit

TODAY = dt.date(2026, 11, 28)
RETENTION_CHECK = "test_journal_retention_covers_six_months"


def _entry(**changes: Any) -> dict[str, Any]:
    entry = {"requirement": "12.6", "scope": "node", "checks": [RETENTION_CHECK],
             "justification": "Short retention on the synthetic nodes while the archive lands.",
             "owner": "platform-team", "expires": dt.date(2027, 1, 31)}
    entry.update(changes)
    return entry


def _parse(*entries: dict[str, Any]):
    return parse_waivers({"waivers": list(entries)}, "waivers/test.yaml", known_requirement_ids())


# -- the file format ---------------------------------------------------------------------------

def test_valid_waiver_applies_to_its_scope_ids_and_checks():
    waiver = _parse(_entry())[0]
    assert waiver.applies(["12.6", "R71"], "citadelle-dev-node-1", ["node"], RETENTION_CHECK)
    assert waiver.applies(["12.6.a"], "citadelle-dev-node-1", ["node"], RETENTION_CHECK)
    assert not waiver.applies(["12.6"], "citadelle-dev-bastion-1", ["bastion"], RETENTION_CHECK)
    assert not waiver.applies(["12.6"], "n", ["node"], "test_auditd_is_running_and_enabled")
    assert not waiver.applies(["12.7"], "n", ["node"], RETENTION_CHECK)
    assert not waiver.expired(TODAY)
    assert waiver.expired(dt.date(2027, 2, 1))


@pytest.mark.parametrize(("entry", "message"), [
    (_entry(requirement="12.99"), "waivers/test.yaml: waivers[0].requirement: '12.99' is not a "
     "SecNumCloud 3.2 or BP-028 id (see reference/secnumcloud-3.2.yaml and "
     "reference/anssi-bp028.yaml)"),
    (_entry(requirement="R81"), "waivers/test.yaml: waivers[0].requirement: 'R81' is not a "
     "SecNumCloud 3.2 or BP-028 id (see reference/secnumcloud-3.2.yaml and "
     "reference/anssi-bp028.yaml)"),
    ({k: v for k, v in _entry().items() if k != "owner"},
     "waivers/test.yaml: waivers[0].owner: required key is missing"),
    (_entry(expires="next year"),
     "waivers/test.yaml: waivers[0].expires: 'next year' is not a date (YYYY-MM-DD)"),
    (_entry(justification="because"), "waivers/test.yaml: waivers[0].justification: too short; "
     "say why the risk is accepted and what covers it meanwhile"),
    (_entry(reviewer="x"), "waivers/test.yaml: waivers[0].reviewer: unknown key; allowed: "
     "checks, expires, justification, owner, requirement, scope"),
], ids=["unknown-snc-id", "unknown-bp028-id", "no-owner", "bad-date", "short", "unknown-key"])
def test_bad_waiver_is_refused(entry: dict[str, Any], message: str):
    with pytest.raises(CitadelleError) as err:
        _parse(entry)
    assert err.value.message == message


# -- through the checks runner (hosts that refuse SSH at once: every check fails fast) ---------

@pytest.fixture
def short_retention_inventory(tmp_path: Path) -> Path:
    # The hosts answer nothing (port 1 of loopback refuses at once), so the retention check,
    # which reads journald's effective settings on the host, fails on every one of them.
    env = Environment.load("dev")
    outputs = synthetic_outputs(env)
    closed = {name: server.model_copy(update={"ssh_host": "127.0.0.1", "ssh_port": 1})
              for name, server in outputs.servers.items()}
    files = write_inventory(env, outputs.model_copy(update={"servers": closed}), Access(),
                            tmp_path / "inv" / "inventory.yml", target="cloud", source="test")
    return files.inventory


def _run(tmp_path: Path, inventory: Path, waivers: list[dict[str, Any]]):
    path = tmp_path / "waivers.yaml"
    path.write_text(yaml.safe_dump({"waivers": waivers}, sort_keys=False))
    return run_checks("dev", inventory, tmp_path / "out", waiver_files=[path], today=TODAY,
                      select=f"{RETENTION_CHECK} or test_waiver_is_current", stream=False)


def _by_host(run) -> dict[str, str]:
    return {r.host: r.outcome for r in run.results if r.check == RETENTION_CHECK}


def test_valid_waiver_reports_the_failing_check_as_waived(tmp_path, short_retention_inventory):
    run = _run(tmp_path, short_retention_inventory, [_entry()])
    assert _by_host(run) == {"citadelle-dev-bastion-1": "failed",
                             "citadelle-dev-gateway-1": "failed",
                             "citadelle-dev-datastore-1": "waived",
                             "citadelle-dev-workers-1": "waived"}
    waived = next(r for r in run.results if r.outcome == "waived")
    assert waived.message.startswith("waived: 12.6 on node until 2027-01-31 (owner "
                                     "platform-team): Short retention")
    assert run.failed_requirements() == ["12.6"]
    # Visible as such in the JUnit file itself.
    cases = ET.parse(run.junit).getroot().iter("testcase")
    skipped = [c.find("skipped") for c in cases if "workers-1" in c.get("name", "")
               and RETENTION_CHECK in c.get("name", "")]
    assert [s.get("type") for s in skipped if s is not None] == ["pytest.xfail"]
    current = [r for r in run.results if r.check == "test_waiver_is_current"]
    assert [r.outcome for r in current] == ["passed"]


def test_expired_waiver_fails_and_no_longer_waives(tmp_path, short_retention_inventory):
    run = _run(tmp_path, short_retention_inventory, [_entry(expires=dt.date(2026, 10, 31))])
    assert set(_by_host(run).values()) == {"failed"}
    current = [r for r in run.results if r.check == "test_waiver_is_current"]
    assert [r.outcome for r in current] == ["failed"]
    assert "expired on 2026-10-31" in current[0].message
    assert run.exit_code == 1


def test_unknown_requirement_refuses_the_run(tmp_path, short_retention_inventory):
    with pytest.raises(CitadelleError) as err:
        _run(tmp_path, short_retention_inventory, [_entry(requirement="19.9")])
    assert "'19.9' is not a SecNumCloud 3.2 or BP-028 id" in err.value.message
    assert not (tmp_path / "out" / "checks.junit.xml").exists()


def test_failures_are_findings_in_the_shared_sarif(tmp_path, short_retention_inventory):
    run = _run(tmp_path, short_retention_inventory, [_entry()])
    document = json.loads((tmp_path / "out" / "checks.sarif").read_text())
    assert validation_errors(document) == []
    results = [r for r in document["runs"][0]["results"] if r["ruleId"] == RETENTION_CHECK]
    # The waived hosts are not findings; the two failing ones are, with the requirement ids.
    assert sorted(r["locations"][0]["logicalLocations"][0]["name"] for r in results) == [
        "citadelle-dev-bastion-1", "citadelle-dev-gateway-1"]
    assert all(r["properties"]["snc"] == ["12.6"] for r in results)
    assert run.exit_code == 1


# Boot-time, AppArmor and GRUB recommendations: the lab boots its clones like servers (GRUB
# from their own disk, the reboot step), so none of their checks may be waived there.
BOOT_TIME = {"R5", "R7", "R8", "R10", "R29", "R33", "R45"}


def boot_time_checks() -> set[str]:
    found = {"test_kernel_command_line"}  # its cases are R7, R8, R33 and R45's parameters
    for path in (REPO_ROOT / "checks").glob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef):
                continue
            for mark in node.decorator_list:
                if isinstance(mark, ast.Call) and getattr(mark.func, "attr", "") == "bp028" \
                        and {a.value for a in mark.args if isinstance(a, ast.Constant)} & BOOT_TIME:
                    found.add(node.name)
    return found


def test_the_lab_waives_little_and_never_a_boot_time_check() -> None:
    entries = yaml.safe_load((REPO_ROOT / "waivers" / "lab.yaml").read_text())["waivers"]
    assert len(entries) <= 10
    boot = boot_time_checks()
    assert {"test_grub_menu_needs_the_superuser_password",
            "test_apparmor_enforces_every_loaded_profile",
            "test_module_loading_is_locked_after_boot"} <= boot
    for entry in entries:
        assert entry["requirement"] not in BOOT_TIME
        assert not set(entry["checks"]) & boot, entry
