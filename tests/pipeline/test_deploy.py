"""`citadelle deploy`: step by step, run folder, stop at the first failure with its reason,
resume from a step; `pulumi up` says clearly that it needs the Pulumi CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from citadelle.deploy.pipeline import STEPS, Run, run_pipeline
from citadelle.errors import CitadelleError
from citadelle.evidence.report import latest_run

pytestmark = pytest.mark.unit

OUTPUTS = {
    "environment": "dev", "adminUser": "citadelle-admin", "adminGroup": "citadelle-admins",
    "bastion": {"publicIp": "192.0.2.10", "sshPort": 22, "hostKeyEd25519":
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFP+qKVsgKVUzae9fHCI8QkewZkWEhhoiYv8IdCFjiKd"},
    "servers": {"citadelle-dev-workers-1": {"role": "node", "privateIp": "10.30.16.5"}},
}


def _statuses(run: Run) -> dict[str, str]:
    saved = json.loads(run.state_file.read_text())
    return {s["name"]: s["status"] for s in saved["steps"]}


def test_up_without_the_pulumi_cli_stops_with_exit_2(tmp_path: Path, monkeypatch):
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert shutil.which("pulumi") is None
    run = Run.create("dev", "cloud", base=tmp_path)
    lines: list[str] = []
    with pytest.raises(CitadelleError) as err:
        run_pipeline(run, echo=lines.append)
    assert err.value.exit_code == 2
    assert err.value.message.startswith(
        "deploy dev: step 'up' failed: the Pulumi CLI is not on PATH: `pulumi up` runs through "
        "the Automation API, which drives the CLI.")
    assert _statuses(run) == {"gate": "ok", "up": "failed", "inventory": "pending",
                              "harden": "pending", "verify": "pending", "report": "pending"}
    assert (run.directory / "gate.sarif").is_file() and (run.directory / "gate.log").is_file()
    assert lines[0] == f"deploy dev (target cloud): run folder {run.directory}"
    assert lines[1:3] == ["[1/6] gate ...", lines[2]] and lines[2].startswith("[1/6] gate ok")


def test_steps_after_up_run_alone_and_resume(tmp_path: Path):
    run = Run.create("dev", "cloud", base=tmp_path)
    run.outputs.write_text(json.dumps(OUTPUTS))
    run_pipeline(run, "inventory", "inventory", echo=lambda _: None)
    assert run.inventory.is_file()
    assert _statuses(run) == {"gate": "skipped", "up": "skipped", "inventory": "ok",
                              "harden": "pending", "verify": "pending", "report": "pending"}
    assert latest_run("dev", tmp_path) == run.directory
    resumed = Run.load(run.directory)
    assert resumed.steps["inventory"].detail.startswith("1 hosts -> inventory/inventory.yml")


def test_inventory_step_without_outputs_names_the_fix(tmp_path: Path):
    run = Run.create("dev", "cloud", base=tmp_path)
    with pytest.raises(CitadelleError) as err:
        run_pipeline(run, "inventory", echo=lambda _: None)
    assert "no stack outputs in" in err.value.message
    assert "--from-step inventory" in err.value.message
    assert _statuses(run)["inventory"] == "failed"


def test_step_order_is_the_pipeline():
    assert STEPS == ("gate", "up", "inventory", "harden", "verify", "report")
