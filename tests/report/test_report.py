"""`citadelle report`: every automatable requirement listed with its controls, results and
waivers; requirements without control shown as such; totals by chapter add up."""

from __future__ import annotations

import dataclasses
import datetime
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from citadelle.cli import main
from citadelle.deploy.verify import CaseResult
from citadelle.deploy.waivers import bp028_reference, snc_reference
from citadelle.environment import Environment
from citadelle.errors import CitadelleError
from citadelle.evidence.findings import Rule
from citadelle.evidence.report import (
    LEVELS,
    STATUSES,
    CloudResult,
    MigrationEvidence,
    build_report,
    cloud_results,
    collect_evidence,
    render_html,
    render_markdown,
    role_partials,
)
from citadelle.migrate.custody import custody
from citadelle.migrate.state import WorkspaceState
from citadelle.plan.analyzer import PolicyInfo

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def report(evidence_run: Path, catalogue: list[dict[str, Any]]):
    return build_report("dev", evidence_run, catalogue=catalogue)


def _row(rows, rid):
    return next(r for r in rows if r.id == rid)


def test_lists_every_automatable_snc_requirement(report):
    expected = [sid for sid, s in snc_reference().items()
                if s["level"] != "chapter" and s.get("automatable") in (True, "partial")]
    assert [r.id for r in report.snc] == expected


def test_lists_every_bp028_recommendation_at_the_environment_level(report):
    hardening = Environment.load("dev").settings.hardening
    top = max(LEVELS.index(hardening.level), LEVELS.index(hardening.bastion_level))
    expected = [rid for rid, r in bp028_reference().items() if LEVELS.index(r["level"]) <= top]
    assert [r.id for r in report.bp028] == expected
    assert _row(report.bp028, "R73").note == "bastion"  # enhanced: the bastion only in dev


@pytest.mark.parametrize(("kind", "rid", "status", "reason"), [
    # the gate flagged a policy citing 19.2.b/19.2.d
    ("snc", "19.2", "failed", "policy eu-region-allow-list"),
    ("snc", "13.2", "failed",
     "test_segmentation.py::test_input_policy_is_drop on citadelle-dev-workers-1"),
    ("snc", "12.7", "waived", "no collector"),
    ("snc", "12.8", "met", ""),  # chrony passes on the baseline, the NTP-source check does not
    ("snc", "5.1", "not automated", "covered by process and documentation"),
    # the drift audit of the live project is what shows the deployed resources match the plan
    ("snc", "8.1", "partially met", "the live cloud is not audited in this report"),
    ("bp028", "R80", "failed", "test_input_policy_is_drop on citadelle-dev-workers-1"),
    ("bp028", "R71", "waived", "no collector"),
    # applicable on the datastore, no result there: missing evidence is a failure
    ("bp028", "R9", "failed", "applicable checks did not run: test_hardening.py::test_sysctl"),
    ("bp028", "R58", "partially met", "also pass on an unhardened Debian (baseline)"),
    ("bp028", "R67", "met", ""),
])
def test_status_comes_from_the_latest_results(report, kind, rid, status, reason):
    got, why = _row(getattr(report, kind), rid).evidence.verdict
    assert (got, reason in why) == (status, True), why


def test_a_plan_time_policy_alone_never_makes_a_requirement_met(report):
    for row in [*report.snc, *report.bp028]:
        if row.evidence.layers == ("plan",):
            assert row.evidence.status in ("partially met", "failed", "not run"), row.id


def test_checks_show_their_result_on_every_host(report):
    r9 = _row(report.bp028, "R9").evidence
    sysctl = next(c for c in r9.checks if c.name == "test_hardening.py::test_sysctl")
    assert sysctl.hosts == {"citadelle-dev-bastion-1": "passed",
                            "citadelle-dev-datastore-1": "not run",
                            "citadelle-dev-gateway-1": "passed",
                            "citadelle-dev-workers-1": "passed"}
    luks = _row(report.snc, "10.1").evidence
    # dev's gateway and datastore pools have data volumes; the others have none.
    assert [c.hosts for c in luks.checks if c.name.endswith("test_data_volume_is_attached")] == [
        {"citadelle-dev-datastore-1": "passed", "citadelle-dev-gateway-1": "passed"}]
    assert any(n.startswith("test_cryptography.py::test_data_volume_is_attached on "
                            "citadelle-dev-workers-1: citadelle_data_volume_gb is not set")
               for n in luks.not_applicable)


def test_without_a_run_nothing_is_met(catalogue):
    report = build_report("dev", None, catalogue=catalogue)
    statuses = Counter(r.evidence.status for r in [*report.snc, *report.bp028])
    assert statuses["met"] == 0 and statuses["failed"] == 0
    assert statuses["not run"] > 0


def test_controls_are_listed_per_requirement(report):
    r9 = _row(report.bp028, "R9").evidence
    assert "test_hardening.py::test_sysctl" in [c.name for c in r9.checks]
    assert any(t.startswith("bp028_kernel: ") for t in r9.tasks)
    snc192 = _row(report.snc, "19.2").evidence
    assert ("eu-region-allow-list", "violated") in snc192.policies
    assert "test_localisation.py::test_ntp_servers_are_the_in_region_ones" in [
        c.name for c in snc192.checks]
    assert snc192.layers == ("plan", "host")
    waivers = _row(report.snc, "19.2").evidence.waivers
    assert any("built-in resolver (10.0.2.3)" in w for w in waivers)


@pytest.mark.parametrize("kind", ["snc", "bp028"])
def test_totals_by_chapter_add_up(report, kind):
    rows = getattr(report, kind)
    totals = report.totals(rows)
    overall = totals.pop("all")
    assert overall["requirements"] == len(rows)
    assert sum(c["requirements"] for c in totals.values()) == len(rows)
    assert Counter(r.evidence.status for r in rows) == Counter(
        {s: overall[s] for s in STATUSES if overall[s]})
    for counts in totals.values():
        assert sum(counts[s] for s in STATUSES) == counts["requirements"]
        assert counts["automated"] == counts["requirements"] - counts["not automated"]


def test_snc_chapter_totals_match_the_reference(report):
    sections = snc_reference()
    per_chapter = Counter(r.group for r in report.snc)
    assert {c: report.totals(report.snc)[c]["requirements"] for c in per_chapter} == per_chapter
    assert set(per_chapter) <= {sid for sid, s in sections.items() if s["level"] == "chapter"}


def test_markdown_carries_the_same_totals(report):
    text = render_markdown(report)
    overall = report.totals(report.snc)["all"]
    line = next(line for line in text.splitlines() if line.startswith("| All |"))
    assert line == "| All | " + " | ".join(str(overall[k]) for k in (
        "requirements", "automated", *STATUSES)) + " |"


def test_cli_writes_html_and_markdown(evidence_run: Path, tmp_path: Path, capsys):
    assert main(["report", "dev", "--run", str(evidence_run), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "report.html").is_file() and (tmp_path / "report.md").is_file()
    assert out.startswith("SecNumCloud 3.2: ")


def test_baseline_is_judged_per_requirement_of_a_parametrized_check():
    # One check, one case per requirement: stock Debian fails only the R12 case, so the check
    # proves R12 and says nothing about R9 (the R12 failure must not vouch for R9).
    host = "citadelle-dev-bastion-1"
    cases = {"R9": "kernel.sysrq", "R12": "net.ipv4.ip_forward"}
    catalogue = [{"module": "checks/test_hardening.py", "check": "test_sysctl", "host": host,
                  "nodeid": f"checks/test_hardening.py::test_sysctl[{host}-{name}]",
                  "requirements": [rid]} for rid, name in cases.items()]

    def results(failing: str) -> list[CaseResult]:
        return [CaseResult("checks.test_hardening", f"test_sysctl[{host}-{name}]", host, (rid,),
                           "failed" if rid == failing else "passed")
                for rid, name in cases.items()]

    evidence = collect_evidence([], {}, catalogue, results(failing=""), [],
                                baseline=results(failing="R12"), partial={})
    assert evidence["R12"].verdict == ("met", "")
    assert evidence["R9"].verdict[0] == "partially met"
    assert "unhardened Debian" in evidence["R9"].verdict[1]


def test_a_check_without_host_is_not_judged_by_the_baseline():
    # A waiver's expiry check runs in the baseline's verify too; passing there says nothing
    # about the hosts, so it neither proves nor disproves the hardening.
    entry = {"module": "checks/test_waivers.py", "check": "test_waiver_is_current", "host": "",
             "nodeid": "checks/test_waivers.py::test_waiver_is_current[19.2@all#0]",
             "requirements": ["18.4"]}
    result = [CaseResult("checks.test_waivers", "test_waiver_is_current[19.2@all#0]", "",
                         ("18.4",), "passed")]
    evidence = collect_evidence([], {}, [entry], result, [], baseline=result, partial={})
    assert evidence["18.4"].verdict == ("met", "")


def test_custody_section_names_who_ran_each_step(report, tmp_path: Path) -> None:
    state = WorkspaceState.load(tmp_path / "migrate" / "dev", "demo")
    state.record("verify", datetime.datetime.now(datetime.UTC), ok=True)
    state.data["history"][0]["by"] = "auditor@eu-host"
    state.data["steps"] = {"freeze": {"by": "ops@eu-host"}}
    state.save()
    chained = dataclasses.replace(report, custody=custody("dev", tmp_path))
    expected = "verify: auditor@eu-host; cutover freeze: ops@eu-host"
    text = render_markdown(chained)
    section = text.split("chain of custody per workspace", 1)[1]
    assert "| demo | planned |" in section and expected in section
    assert f"<td>{expected}</td>" in render_html(chained)
    assert "No workspace cutover" in render_markdown(dataclasses.replace(report, custody=[]))


@pytest.mark.parametrize("rid", sorted(role_partials()))
def test_what_a_role_declares_partial_is_never_met(report, rid: str) -> None:
    # The roles' own declarations (meta/partial.yml), not a test double: R39-R41, R45.
    row = _row(report.bp028, rid)
    assert row.evidence.partial == role_partials()[rid]
    assert row.evidence.status != "met"
    if row.evidence.status == "partially met":
        assert role_partials()[rid][0].split(": ", 1)[1] in row.evidence.verdict[1]


def test_the_roles_declare_the_partial_items_of_the_hardening_issue() -> None:
    assert {"R39", "R40", "R41", "R45"} <= set(role_partials())


def _volume_encryption(cloud: list[CloudResult], data: tuple[MigrationEvidence, ...] = ()):
    """10.1 (encryption at rest) with a passing gate policy and a host check proving the data
    volume is attached: a guest cannot see front-end LUKS, only the cloud audit can."""
    host = "citadelle-dev-workers-1"
    nodeid = f"checks/test_storage.py::test_data_volume_is_attached[{host}]"
    entry = {"module": "checks/test_storage.py", "check": "test_data_volume_is_attached",
             "host": host, "nodeid": nodeid, "requirements": ["10.1"]}
    result = [CaseResult("checks.test_storage", f"test_data_volume_is_attached[{host}]", host,
                         ("10.1",), "passed")]
    policy = PolicyInfo(name="volumes-encrypted", description="", enforcement="mandatory",
                        severity="high", kind="resource", framework="SecNumCloud",
                        framework_version="3.2", snc=("10.1",), bp028=(), checks=(),
                        remediation="", config_schema={}, tags=())
    rule = Rule("encrypted-volume-type", "LUKS volume type", snc=("10.1",))
    return collect_evidence([policy], {"volumes-encrypted": "passed"}, [entry], result, [],
                            baseline=[], partial={}, cloud_rules=[rule], cloud=cloud, data=data)


def test_plan_and_host_never_make_encryption_at_rest_met_without_the_cloud() -> None:
    evidence = _volume_encryption([])["10.1"]
    assert evidence.layers == ("plan", "host")
    assert evidence.other_results() == ["audit-cloud encrypted-volume-type: not run"]
    assert evidence.verdict == ("partially met", "the live cloud is not audited in this report "
                                "(citadelle audit-cloud: encrypted-volume-type)")
    audited = _volume_encryption([CloudResult("encrypted-volume-type", "pass", "luks",
                                              ("10.1",))])["10.1"]
    assert audited.layers == ("plan", "host", "cloud") and audited.verdict == ("met", "")
    failed = _volume_encryption([CloudResult("encrypted-volume-type", "fail", "luks",
                                             ("10.1",))])["10.1"]
    assert failed.verdict == ("failed", "audit-cloud encrypted-volume-type on luks")
    unchecked = _volume_encryption([CloudResult("encrypted-volume-type", "not-checked", "",
                                                ("10.1",))])["10.1"]
    assert unchecked.verdict == ("partially met",
                                 "the cloud audit could not check encrypted-volume-type")


def test_a_verified_transfer_is_the_data_layer_of_localisation() -> None:
    good = MigrationEvidence("runs/migrate/dev/verify-1/evidence.json", True, 3, 30, "d", "t",
                             "holds")
    evidence = _volume_encryption([], (good,))
    assert evidence["19.2"].layers == ("data",) and evidence["19.2"].verdict == ("met", "")
    tampered = dataclasses.replace(good, recheck="the evidence's digest does not match")
    assert _volume_encryption([], (tampered,))["19.2"].verdict == (
        "failed", "migration verify runs/migrate/dev/verify-1/evidence.json")


def test_cloud_audit_files_are_read_for_their_environment(tmp_path: Path) -> None:
    path = tmp_path / "audit.json"
    path.write_text(json.dumps({"mode": "prod", "environment": "dev", "cloud": "c", "results": [
        {"check": {"id": "encrypted-volume-type", "snc": ["10.1"]}, "status": "pass",
         "message": "", "resource": "luks"}]}))
    assert cloud_results(path, "dev") == [CloudResult("encrypted-volume-type", "pass", "luks",
                                                      ("10.1",))]
    with pytest.raises(CitadelleError, match="an audit of 'dev', not 'prod'"):
        cloud_results(path, "prod")
    path.write_text("{}")
    with pytest.raises(CitadelleError, match="not the JSON of `citadelle audit-cloud --json`"):
        cloud_results(path, "dev")
    with pytest.raises(CitadelleError, match="no such audit-cloud results file"):
        cloud_results(tmp_path / "missing.json", "dev")


def test_a_check_not_tried_on_the_baseline_proves_nothing():
    # The run had a baseline clone, but R36's check applies to a bastion only and the baseline
    # never ran it: its pass says nothing of the hardening. Without any baseline (a deployed
    # environment has no pristine host) the check is judged on its own.
    host = "citadelle-dev-bastion-1"
    catalogue = [{"module": "checks/test_hardening.py", "check": name, "host": host,
                  "nodeid": f"checks/test_hardening.py::{name}[{host}]", "requirements": [rid]}
                 for name, rid in (("test_default_umask", "R36"), ("test_sysctl", "R9"))]
    results = [CaseResult("checks.test_hardening", f"{name}[{host}]", host, (rid,), "passed")
               for name, rid in (("test_default_umask", "R36"), ("test_sysctl", "R9"))]
    baseline = [CaseResult("checks.test_hardening", "test_sysctl[baseline-node]",
                           "baseline-node", ("R9",), "failed")]
    evidence = collect_evidence([], {}, catalogue, results, [], baseline=baseline, partial={},
                                cloud_rules=[])
    assert evidence["R9"].verdict == ("met", "")
    assert evidence["R36"].checks[0].baseline == "not tried"
    assert evidence["R36"].verdict[0] == "partially met"
    assert "not tried there" in evidence["R36"].verdict[1]
    alone = collect_evidence([], {}, catalogue, results, [], partial={}, cloud_rules=[])
    assert alone["R36"].verdict == ("met", "")
