"""Every Ansible run (harden, the transfer fan-out) keeps the process environment out of its run
folder: ansible-runner records it in artifacts/<ident>/command, which citadelle removes."""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

import pytest
import yaml

from citadelle.deploy.harden import run_playbook

pytestmark = pytest.mark.unit


def test_a_secret_in_the_environment_never_lands_in_the_run_folder(tmp_path: Path):
    token = secrets.token_hex(16)
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"here": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}))
    playbook = tmp_path / "probe.yml"
    playbook.write_text(yaml.safe_dump([{
        "name": "Probe", "hosts": "all", "gather_facts": False, "tasks": [{
            # The expected value is split so that the task's own text never holds it.
            "name": "Read the secret", "no_log": True,
            "ansible.builtin.assert": {"that": [
                f"lookup('ansible.builtin.env', 'CITADELLE_PROBE') == "
                f"'{token[:4]}' + '{token[4:]}'"]}}]}]))
    run = tmp_path / "run"
    result = run_playbook(playbook, inventory, run_dir=run, envvars={"CITADELLE_PROBE": token})
    assert result.ok and result.hosts["here"].ok == 1, result.summary()
    leaked = [p for p in run.rglob("*") if p.is_file() and token in p.read_text(errors="ignore")]
    assert leaked == []
    assert list(run.glob("artifacts/*/job_events/*.json")), "the run's events are kept"
