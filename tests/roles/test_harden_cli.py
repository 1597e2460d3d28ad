"""`citadelle harden` refuses bad input with one line, before starting Ansible."""

from __future__ import annotations

from pathlib import Path

import pytest

from citadelle.cli import main

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("argv", "message"), [
    (["harden", "--inventory", "/nonexistent/inventory.yml"],
     "harden: inventory /nonexistent/inventory.yml not found"),
    (["harden"], "harden: --inventory FILE is required (`citadelle inventory ENV` writes one; "
                 "the lab's: `citadelle lab harden`)"),
    (["harden", "--inventory", "{inventory}", "--playbook", "workstation"],
     "harden: playbook 'workstation' not found (choose one of site, bastion, gateway, node"),
])
def test_refusals(argv: list[str], message: str, tmp_path: Path,
                  capsys: pytest.CaptureFixture[str]) -> None:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text("all: {}\n")
    code = main([a.replace("{inventory}", str(inventory)) for a in argv])
    err = capsys.readouterr().err
    assert code == 2  # bad input (citadelle.errors convention)
    assert err.startswith("citadelle: error: " + message)
    assert len(err.strip().splitlines()) == 1
