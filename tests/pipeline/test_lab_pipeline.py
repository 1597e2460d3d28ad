"""The post-`pulumi up` half of the pipeline on real Debian 12 VMs (the lab).

Stack outputs pointing at the clones -> `citadelle inventory` -> hardening -> `citadelle verify`
-> `citadelle report`. The hardened clones come from the session fixture ``hardened_lab``
(tests/conftest.py: bastion, gateway and node converged once with the lab endpoints of
``citadelle.lab.target.lab_harden_vars()``), so this module never converges again. The same checks
then run on a fresh, unhardened clone and must fail with the expected requirement ids.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from citadelle.deploy.inventory import host_vars, load_inventory, write_inventory
from citadelle.deploy.verify import CheckRun, run_checks
from citadelle.deploy.waivers import default_files
from citadelle.environment import Environment
from citadelle.evidence.report import build_report, save_report
from citadelle.lab import Clone, LabInventory
from citadelle.lab.image import DEFAULT_ADMIN_GROUP, DEFAULT_ADMIN_USER
from citadelle.lab.target import LabTarget, lab_harden_vars, lab_outputs

pytestmark = [pytest.mark.vm, pytest.mark.timeout(3600)]

# What an unhardened Debian 12 image must be caught on, by requirement: host firewall (13.2,
# R80), audit (12.6, R73), journal and forwarding (12.7, R71), SSH crypto (10.2), admin access
# (9.6, R33), kernel settings (R9, R12), mounts (R28), passwords (R31), time (12.8).
EXPECTED_FAILING = {"13.2", "R80", "12.6", "R73", "12.7", "R71", "10.2", "9.6", "R33", "R9",
                    "R12", "R28", "R31", "12.8"}


def _inventory(clones: Sequence[Clone], out: Path) -> Path:
    """The lab target's outputs for exactly these clones, then `citadelle inventory dev`."""
    target = LabTarget()
    env = Environment.load("dev", target)
    outputs = lab_outputs(env, tuple(clones), DEFAULT_ADMIN_USER, DEFAULT_ADMIN_GROUP)
    # The endpoints `citadelle lab harden` applied (the platform's are unreachable from here).
    return write_inventory(env, outputs, target.access(env), out / "inventory.yml",
                           target="lab", source="the clones under test",
                           extra_vars=lab_harden_vars()).inventory


@pytest.fixture(scope="module")
def hardened_run(hardened_lab: LabInventory,
                 tmp_path_factory: pytest.TempPathFactory) -> CheckRun:
    out = tmp_path_factory.mktemp("hardened")
    inventory = _inventory(hardened_lab.clones, out)
    return run_checks("dev", inventory, out, waiver_files=default_files("dev", "lab"),
                      stream=False)


@pytest.fixture(scope="module")
def unhardened_run(module_lab_clones: Any, tmp_path_factory: pytest.TempPathFactory) -> CheckRun:
    # A fresh clone restored from the golden snapshot: seconds, no converge.
    pristine = module_lab_clones({"pristine": "node"}).clone("pristine")
    out = tmp_path_factory.mktemp("unhardened")
    return run_checks("dev", _inventory([pristine], out), out,
                      waiver_files=default_files("dev", "lab"), stream=False)


def test_inventory_from_outputs_reaches_every_clone(hardened_lab: LabInventory, tmp_path: Path):
    inventory = _inventory(hardened_lab.clones, tmp_path)
    hosts = host_vars(load_inventory(inventory))
    ssh_config = inventory.with_name("ssh_config").read_text()
    for clone in hardened_lab.clones:
        block = ssh_config.split(f"Host {clone.name}\n", 1)[1].split("\n\n", 1)[0]
        assert f"  Port {clone.port}" in block and "  StrictHostKeyChecking yes" in block
    assert {h: v["group_names"] for h, v in hosts.items()} == {
        c.name: [c.role] for c in hardened_lab.clones}


def test_checks_pass_on_the_hardened_clones(hardened_run: CheckRun, hardened_lab: LabInventory):
    failures = [f"{r.host} {r.name}: {r.message[:160]}" for r in hardened_run.results
                if r.outcome in ("failed", "error")]
    assert failures == []
    assert hardened_run.exit_code == 0
    hosts = {r.host for r in hardened_run.results if r.host}
    assert hosts == {c.name for c in hardened_lab.clones}
    assert hardened_run.counts["passed"] >= 100 * len(hosts)
    assert all(r.message.startswith("waived: ") for r in hardened_run.results
               if r.outcome == "waived")


def test_unhardened_clone_fails_with_the_expected_requirements(unhardened_run: CheckRun):
    assert unhardened_run.exit_code == 1
    missing = EXPECTED_FAILING - set(unhardened_run.failed_requirements())
    assert not missing, f"an unhardened clone passed the checks of {sorted(missing)}"


@pytest.mark.parametrize(("check", "ids"), [
    ("test_input_policy_is_drop", ("13.2", "9.7", "R80")),
    ("test_audit_rules_with_key_are_loaded", ("12.6", "R73")),
    ("test_journal_is_persistent_and_kept", ("12.6", "12.7", "R71")),
    ("test_sshd_algorithms", ("10.2", "R67")),
])
def test_unhardened_failures_carry_their_ids(unhardened_run: CheckRun, check: str,
                                             ids: tuple[str, ...]):
    failed = [r for r in unhardened_run.results if r.check == check]
    assert failed and all(r.outcome == "failed" for r in failed)
    assert all(set(ids) <= set(r.requirements) for r in failed)


def test_report_shows_the_hardened_run(hardened_run: CheckRun, tmp_path: Path):
    run = hardened_run.junit.parent
    (run / "run.json").write_text(json.dumps({"environment": "dev", "target": "lab",
                                              "steps": []}))
    report = build_report("dev", run)
    html_path, _ = save_report(report, tmp_path)
    statuses = {r.id: r.evidence.status for r in report.snc}
    assert statuses["12.6"] == "passed" and statuses["13.2"] == "passed"
    assert "failed" not in statuses.values()
    assert "12.6" in html_path.read_text()
