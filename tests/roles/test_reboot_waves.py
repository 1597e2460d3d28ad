"""The reboot waves of bp028_kernel (BP-028 R7, R8, R33, R45 hold only after a reboot): one
host of each group per wave, so a tier never goes down whole, and the jump hosts (the bastion)
after every other host, one at a time, so no reboot loses the connection it goes through.

The role's own wave variables and plan task, run for real by ansible-runner on a generated
inventory of local-connection hosts (the plan only prints; nothing reboots).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from citadelle.deploy import harden

pytestmark = [pytest.mark.unit, pytest.mark.bp028("R7", "R8")]

PLAY = [{"name": "Reboot plan", "hosts": "all", "gather_facts": False, "tasks": [{
    "name": "Plan", "ansible.builtin.include_role": {"name": "bp028_kernel",
                                                     "tasks_from": "reboot_plan"}}]}]


def plan(tmp_path: Path, groups: dict[str, list[str]]) -> dict[str, tuple[int, int]]:
    """host -> (its wave, number of waves) as the role computes them."""
    local = {"ansible_connection": "local",
             "ansible_python_interpreter": str(Path(harden.VENV_BIN) / "python")}
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": {
        group: {"hosts": dict.fromkeys(hosts, local)} for group, hosts in groups.items()}}}))
    playbook = tmp_path / "plan.yml"
    playbook.write_text(yaml.safe_dump(PLAY, sort_keys=False))
    result = harden.run_playbook(playbook, inventory, run_dir=tmp_path / "run")
    assert result.ok, result.failures
    waves = {}
    for event in (tmp_path / "run").glob("artifacts/*/job_events/*.json"):
        data = json.loads(event.read_text())
        if data.get("event") == "runner_on_ok" and data["event_data"]["task"].startswith(
                "Citadelle | Reboot plan"):
            found = re.fullmatch(r"wave (\d+) of (\d+)", data["event_data"]["res"]["msg"])
            assert found is not None
            waves[data["event_data"]["host"]] = (int(found[1]), int(found[2]))
    return waves


def test_one_host_of_each_group_per_wave_and_the_bastions_last(tmp_path: Path) -> None:
    waves = plan(tmp_path, {"bastion": ["bastion-1", "bastion-2"], "gateway": ["gw-1", "gw-2"],
                            "node": ["node-1", "node-2", "node-3"]})
    assert waves == {
        "gw-1": (1, 5), "node-1": (1, 5), "gw-2": (2, 5), "node-2": (2, 5), "node-3": (3, 5),
        "bastion-1": (4, 5), "bastion-2": (5, 5)}


def test_a_lone_bastion_reboots_last(tmp_path: Path) -> None:
    waves = plan(tmp_path, {"bastion": ["bastion-1"], "gateway": ["gw-1"], "node": ["node-1"]})
    assert waves == {"gw-1": (1, 2), "node-1": (1, 2), "bastion-1": (2, 2)}
