"""The real engine's path, driven through a stand-in `pulumi` executable: the policy pack is
attached to every preview and up with the environment's config, a failing or garbled engine
is a one-line error with the right exit code, never a pass and never a traceback."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from citadelle import paths
from citadelle.cli import main
from citadelle.deploy.pipeline import Run, run_pipeline
from citadelle.environment import Environment
from citadelle.environment.projections import policy_config
from citadelle.environment.targets import CloudTarget
from citadelle.errors import CitadelleError

pytestmark = pytest.mark.unit

HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFP+qKVsgKVUzae9fHCI8QkewZkWEhhoiYv8IdCFjiKd"
OUTPUTS = {
    "environment": "dev", "adminUser": "citadelle-admin", "adminGroup": "citadelle-admins",
    "bastion": {"publicIp": "192.0.2.10", "sshPort": 22, "hostKeyEd25519": HOST_KEY},
    "servers": {"citadelle-dev-workers-1": {"role": "node", "privateIp": "10.30.16.5"}},
}
# Answers the calls the Automation API and citadelle make; MODE says how it misbehaves.
ENGINE = """#!{python}
import json, sys
args = [a for a in sys.argv[1:] if a != "--non-interactive"]
record = {{"argv": args}}
if "--policy-pack-config" in args:
    with open(args[args.index("--policy-pack-config") + 1]) as handle:
        record["pack_config"] = json.load(handle)
with open({log!r}, "a") as log:
    log.write(json.dumps(record) + "\\n")
mode = {mode!r}
if args[:1] == ["version"]:
    print("v3.272.0")
elif args[:1] in (["up"], ["preview"]) and mode == "fail":
    print("Policies:\\n    citadelle-secnumcloud@v1\\n        - [mandatory] eu-region-allow-list")
    print("error: update failed: 1 mandatory policy violation", file=sys.stderr)
    sys.exit(255)
elif args[:2] == ["stack", "output"]:
    print("<<< this is not the engine you are looking for >>>" if mode == "garbage"
          else json.dumps({outputs}))
elif args[:2] == ["stack", "history"]:
    print(json.dumps([{{"kind": "update", "result": "succeeded", "version": 7,
                       "resourceChanges": {{"create": 187}}, "message": "",
                       "startTime": "2026-12-04T00:00:00.000Z",
                       "endTime": "2026-12-04T00:00:09.000Z", "environment": {{}},
                       "config": {{}}}}]))
"""


@pytest.fixture
def engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Install a stand-in `pulumi` behaving as ``mode``; returns the calls it received."""
    log = tmp_path / "calls.jsonl"

    def install(mode: str) -> Path:
        bin_dir = tmp_path / f"bin-{mode}"
        bin_dir.mkdir()
        script = bin_dir / "pulumi"
        script.write_text(ENGINE.format(python=sys.executable, log=str(log), mode=mode,
                                        outputs=json.dumps(OUTPUTS)))
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
        monkeypatch.setenv("PATH", f"{bin_dir}:{Path(sys.executable).parent}:/usr/bin:/bin")
        monkeypatch.delenv("PULUMI_BACKEND_URL", raising=False)
        return log

    return install


def calls(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_automation_api_up_attaches_the_pack_and_reads_the_outputs(engine, tmp_path: Path):
    log = engine("ok")
    env = Environment.load("dev", CloudTarget())
    outputs, detail = CloudTarget().up(env, tmp_path / "up.log")
    assert outputs.environment == "dev"
    assert set(outputs.servers) == {"citadelle-dev-workers-1"}
    assert detail == "pulumi up: create 187"
    up = next(c for c in calls(log) if c["argv"][0] == "up")
    argv = up["argv"]
    assert argv[argv.index("--policy-pack") + 1] == str(paths.POLICY_DIR)
    assert up["pack_config"] == policy_config(env.settings)


def test_a_failing_engine_stops_the_deploy_with_its_own_words(engine, tmp_path: Path):
    engine("fail")
    run = Run.create("dev", "cloud", base=tmp_path / "runs")
    with pytest.raises(CitadelleError) as err:
        run_pipeline(run, "up", "up", echo=lambda _: None)
    assert err.value.exit_code == 1
    assert "step 'up' failed: pulumi up -s dev failed: error: update failed: 1 mandatory " \
           "policy violation" in err.value.message
    assert json.loads(run.state_file.read_text())["steps"][1]["status"] == "failed"


def test_an_engine_answering_garbage_is_an_error_not_a_traceback(engine, tmp_path: Path):
    engine("garbage")
    env = Environment.load("dev", CloudTarget())
    with pytest.raises(CitadelleError) as err:
        CloudTarget().up(env, tmp_path / "up.log")
    assert err.value.exit_code == 2
    assert "the engine's answer is not JSON" in err.value.message


@pytest.mark.parametrize(("mode", "code"), [("ok", 0), ("fail", 1)])
def test_gate_through_the_engine_maps_its_exit_code(engine, mode: str, code: int,
                                                     capsys: pytest.CaptureFixture[str]):
    log = engine(mode)
    assert main(["gate", "dev", "--engine", "pulumi"]) == code
    preview = next(c for c in calls(log) if c["argv"][0] == "preview")
    assert "--policy-pack" in preview["argv"]
    assert preview["pack_config"] == policy_config(Environment.load("dev").settings)


def test_pulumi_command_passes_a_failing_engine_exit_code_through(engine):
    engine("fail")
    assert main(["pulumi", "dev", "--", "up", "--yes"]) == 255
