"""Where each check applies comes from the inventory: the hosts out of a check's scope are
recorded with the reason, and a check that applies but has nothing to check fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from citadelle.deploy.inventory import write_inventory
from citadelle.deploy.verify import run_checks
from citadelle.environment import Environment
from citadelle.environment.targets import Access
from citadelle.evidence.report import check_catalogue, synthetic_outputs

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def catalogue() -> list[dict]:
    return check_catalogue(Environment.load("dev"))


def test_not_applicable_pairs_carry_their_reason(catalogue):
    absent = {(e["check"], e["host"]): e["not_applicable"] for e in catalogue
              if e.get("not_applicable")}
    # dev's workers and bastion have no data volume; the bastion serves nothing but SSH.
    assert absent[("test_data_volume_is_attached", "citadelle-dev-workers-1")] == \
        "citadelle_data_volume_gb is not set for this host"
    assert absent[("test_role_service_open_only_to_its_sources", "citadelle-dev-bastion-1")] \
        == "bp028_firewall_allowed_services is not set for this host"
    applicable = {(e["check"], e["host"]) for e in catalogue if not e.get("not_applicable")}
    assert ("test_data_volume_is_attached", "citadelle-dev-datastore-1") in applicable
    assert ("test_role_service_open_only_to_its_sources", "citadelle-dev-workers-1") in applicable
    assert not applicable & set(absent)


def test_every_applicable_check_has_a_case_on_every_host(catalogue):
    assert [e["nodeid"] for e in catalogue if e["nodeid"].endswith("-no case]")] == []


def test_a_check_that_applies_with_nothing_to_check_fails(tmp_path: Path):
    env = Environment.load("dev")
    outputs = synthetic_outputs(env)
    closed = {name: server.model_copy(update={"ssh_host": "127.0.0.1", "ssh_port": 1})
              for name, server in outputs.servers.items()}
    # A module blacklist emptied by a variable: the check applies and has no case left.
    inventory = write_inventory(env, outputs.model_copy(update={"servers": closed}), Access(),
                                tmp_path / "inventory.yml", target="cloud", source="test",
                                extra_vars={"bp028_kernel_modules_blacklist": []}).inventory
    run = run_checks("dev", inventory, tmp_path / "out", waiver_files=[],
                     select="test_module_cannot_load", stream=False)
    no_case = [r for r in run.results if r.name.endswith("-no case]")]
    assert {r.host for r in no_case} == set(outputs.servers)
    # Failed at set-up, before any connection: an error in JUnit, a failure of the run.
    assert all(r.outcome == "error" and "has no case there" in r.message for r in no_case)
    assert run.exit_code == 1
