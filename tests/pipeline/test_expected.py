"""The checks' expected values are the roles' variables as Ansible resolves them per host."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

from citadelle.paths import PLAYBOOKS_DIR, REPO_ROOT, ROLES_DIR

pytestmark = pytest.mark.unit


def _load_expected():
    # checks/ is run by `citadelle verify` from the repository, not installed: load it by path.
    spec = importlib.util.spec_from_file_location("checks_expected",
                                                  REPO_ROOT / "checks" / "expected.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_expected = _load_expected()
Expected, applicable_ids = _expected.Expected, _expected.applicable_ids


def _yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def test_role_level_is_the_inventory_level():
    # One place decides each host's level: citadelle:hardening, as bp028_level per group.
    assert Expected({"group_names": ["bastion"], "bp028_level": "high"})["bp028_ssh_level"] == \
        "high"
    assert Expected({"group_names": ["node"], "bp028_level": "intermediary"})[
        "bp028_audit_level"] == "intermediary"


def test_playbook_group_vars_apply_to_their_group():
    bastion = _yaml(PLAYBOOKS_DIR / "group_vars" / "bastion.yml")
    assert Expected({"group_names": ["bastion"]})["bp028_ssh_allow_tcp_forwarding"] == \
        bastion["bp028_ssh_allow_tcp_forwarding"]
    assert Expected({"group_names": ["node"]})["bp028_ssh_allow_tcp_forwarding"] == _yaml(
        ROLES_DIR / "bp028_ssh" / "defaults" / "main.yml")["bp028_ssh_allow_tcp_forwarding"]


def test_host_variables_outrank_group_vars_and_defaults():
    expected = Expected({"group_names": ["node"], "bp028_ssh_port": 2200},
                        {"bp028_ssh_allow_tcp_forwarding": "local"})
    assert expected["bp028_ssh_port"] == 2200
    assert expected["bp028_ssh_allow_tcp_forwarding"] == "local"
    assert expected["bp028_ssh_ciphers"] == _yaml(ROLES_DIR / "bp028_ssh" / "defaults" /
                                                  "main.yml")["bp028_ssh_ciphers"]


def test_role_vars_win_over_the_inventory():
    expected = Expected({"group_names": ["node"], "bp028_ssh_service": "sshd-custom"})
    assert expected["bp028_ssh_service"] == _yaml(ROLES_DIR / "bp028_ssh" / "vars" /
                                                  "Debian.yml")["bp028_ssh_service"]


@pytest.mark.parametrize(("level", "included", "excluded"), [
    ("minimal", "R31", "R12"), ("intermediary", "R12", "R73"), ("enhanced", "R73", "R15")])
def test_levels_are_cumulative(level, included, excluded):
    ids = applicable_ids(level)
    assert included in ids and excluded not in ids
