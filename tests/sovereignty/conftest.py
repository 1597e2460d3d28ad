"""Copies of the project with one mutation, recordings made once, a fake `pulumi` on PATH."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from citadelle import paths
from citadelle.cli import main
from citadelle.plan.offline import Recording
from citadelle.plan.plan import plan_environment

Mutation = Callable[[dict[str, Any], dict[str, Any]], None]
_RECORDINGS: dict[str, Recording] = {}


def _recording_for(env: str) -> Recording:
    if env not in _RECORDINGS:
        _RECORDINGS[env] = plan_environment(env)
    return _RECORDINGS[env]


@pytest.fixture(scope="session")
def recordings() -> Callable[[str], Recording]:
    """The offline recording of one of the project's environments, made once per session."""
    return _recording_for


@pytest.fixture
def copy_project(tmp_path: Path) -> Callable[..., Path]:
    """A copy of Pulumi.yaml and one stack file after ``mutate(project, stack)`` (whole
    documents, so backend and secretsprovider can change too); returns its Pulumi.yaml."""
    root = tmp_path / "project"
    (root / "environments").mkdir(parents=True)
    (root / "infra").symlink_to(paths.PROGRAM_DIR)

    def make(env: str, mutate: Mutation | None = None) -> Path:
        project = yaml.safe_load(paths.PROJECT_FILE.read_text())
        stack = yaml.safe_load((paths.ENVIRONMENTS_DIR / f"Pulumi.{env}.yaml").read_text())
        if mutate is not None:
            mutate(project, stack)
        (root / "Pulumi.yaml").write_text(yaml.safe_dump(project))
        (root / "environments" / f"Pulumi.{env}.yaml").write_text(yaml.safe_dump(stack))
        return root / "Pulumi.yaml"

    return make


@pytest.fixture
def environ(tmp_path: Path) -> Callable[..., dict[str, str]]:
    """This process's environment without any Pulumi/Vault/AWS selection, HOME in tmp."""
    home = tmp_path / "home"
    home.mkdir()

    def make(**extra: str) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items()
                if not k.startswith(("PULUMI_", "VAULT_", "AWS_"))}
        return {**base, "HOME": str(home), **extra}

    return make


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) \
        -> Callable[[list[str], dict[str, str]], subprocess.CompletedProcess[str]]:
    """Run the `citadelle` entry point in this process with exactly the environment ``env``
    (restored afterwards); returns what a subprocess run would."""

    def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        for name in list(os.environ):
            monkeypatch.delenv(name)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        capsys.readouterr()
        code = main(args)
        captured = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, captured.out, captured.err)

    return run


_FAKE_PULUMI = """#!{python}
# Stand-in for the Pulumi CLI: records how it was started and touches nothing else.
import json, os, sys
argv = sys.argv[1:]
# The policy-pack config is a temporary file: keep what the engine would have read.
pack_config = None
if "--policy-pack-config" in argv:
    with open(argv[argv.index("--policy-pack-config") + 1]) as handle:
        pack_config = json.load(handle)
with open({record!r}, "w") as out:
    json.dump({{"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ),
               "pack_config": pack_config}}, out)
"""


@pytest.fixture
def fake_pulumi(tmp_path: Path) -> tuple[Path, Path]:
    """(directory holding a fake `pulumi`, the JSON file it writes if it is ever started).

    The refusal logic never looks for the CLI; the fake only shows whether citadelle would
    have started it, and with which environment."""
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    record = tmp_path / "pulumi-invocation.json"
    script = bin_dir / "pulumi"
    script.write_text(_FAKE_PULUMI.format(python=sys.executable, record=str(record)))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return bin_dir, record


@pytest.fixture(autouse=True)
def _no_ambient_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    """The operator's shell may select a backend or a vault; every test states its own."""
    for name in ("PULUMI_BACKEND_URL", "PULUMI_ACCESS_TOKEN", "VAULT_ADDR"):
        monkeypatch.delenv(name, raising=False)
