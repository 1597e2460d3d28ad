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


def test_role_defaults_render_with_the_group_level():
    expected = Expected({"bp028_level": "enhanced", "group_names": ["gateway"]})
    playbook_all = _yaml(PLAYBOOKS_DIR / "group_vars" / "all.yml")
    # The playbooks' group_vars/all outranks an inventory group variable, as in Ansible.
    assert expected["bp028_kernel_level"] == playbook_all["bp028_level"]
    bastion = Expected({"group_names": ["bastion"]})
    assert bastion["bp028_ssh_level"] == _yaml(
        PLAYBOOKS_DIR / "group_vars" / "bastion.yml")["bp028_level"]


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
