"""`citadelle deploy ENV`: policy gate -> pulumi up -> inventory -> hardening -> checks -> report.

Each run has its own folder ``runs/<UTC time>-<env>/`` holding ``run.json`` (every step's status,
duration and reason) and the artefacts of each step: the gate's SARIF and JUnit, the stack
outputs, the generated inventory, ansible-runner's folder, the checks' JUnit and log, and the
evidence report. The pipeline stops at the first failing step and says why; ``--from-step STEP``
resumes the latest run of the environment (or ``--run DIR``) at that step.

The ``up`` step is the target's (``citadelle.environment.targets``): ``pulumi up`` through the
Automation API on the cloud, or the VM lab's clones with ``--target lab``; every other step runs
unchanged against what the target supplies, so the whole chain works on a machine with no
cloud and no Pulumi CLI. The steps after ``up`` also run alone against saved stack outputs
(``--from-step inventory --outputs FILE``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from citadelle import paths
from citadelle.deploy.inventory import write_inventory
from citadelle.deploy.verify import run_checks
from citadelle.environment import Environment, env_command
from citadelle.environment.outputs import StackOutputs
from citadelle.environment.targets import Target, add_target_choice, make_target, read_json
from citadelle.errors import CitadelleError
from citadelle.evidence.report import BASELINE_JUNIT, latest_run, write_report
from citadelle.plan.gate import gate_environment, render

STEPS: tuple[str, ...] = ("gate", "up", "inventory", "harden", "verify", "report")


@dataclass
class StepRecord:
    name: str
    status: str = "pending"  # pending | running | ok | failed | skipped
    started: str = ""
    duration_s: float = 0.0
    detail: str = ""
    exit_code: int = 0


@dataclass
class Run:
    env: str
    target: str
    directory: Path
    steps: dict[str, StepRecord] = field(default_factory=dict)
    lab_run_dir: str = ""  # with the lab target: where its clones live (default: .lab/)

    @property
    def state_file(self) -> Path:
        return self.directory / "run.json"

    def save(self) -> None:
        data = {"environment": self.env, "target": self.target, "lab_run_dir": self.lab_run_dir,
                "steps": [asdict(self.steps[name]) for name in STEPS]}
        self.state_file.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def create(cls, env: str, target: str, base: Path = paths.RUNS_DIR,
               lab_run_dir: str = "") -> Run:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        directory = base.resolve() / f"{stamp}-{env}"
        suffix = 1
        while directory.exists():
            suffix += 1
            directory = base / f"{stamp}.{suffix}-{env}"
        directory.mkdir(parents=True)
        run = cls(env, target, directory, {name: StepRecord(name) for name in STEPS},
                  lab_run_dir)
        run.save()
        return run

    @classmethod
    def load(cls, directory: Path) -> Run:
        # Resolved once: artefact paths are compared with it (a symlinked --run included).
        directory = directory.resolve()
        try:
            data = json.loads((directory / "run.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CitadelleError(f"{directory}: not a deploy run folder (no run.json)") from None
        steps = {s["name"]: StepRecord(**s) for s in data["steps"]}
        return cls(data["environment"], data["target"], directory, steps,
                   str(data.get("lab_run_dir", "")))

    def target_(self) -> Target:
        return make_target(self.target,
                           lab_run_dir=Path(self.lab_run_dir) if self.lab_run_dir else None)

    # Artefact locations, shared by the steps and the report.
    @property
    def outputs(self) -> Path:
        return self.directory / "stack-outputs.json"

    @property
    def inventory(self) -> Path:
        return self.directory / "inventory" / "inventory.yml"


# --------------------------------------------------------------------------- the steps


def step_gate(run: Run) -> str:
    result = gate_environment(run.env, sarif=run.directory / "gate.sarif",
                              junit=run.directory / "gate.junit.xml")
    text = render(result)
    (run.directory / "gate.log").write_text(text + "\n", encoding="utf-8")
    if result.exit_code != 0:
        raise CitadelleError(f"{len(result.violations)} mandatory policy violation(s): "
                             f"{', '.join(result.policies_violated())} (see gate.log)",
                             exit_code=1)
    return f"{result.resources} resources, {len(result.rules)} policies, 0 violations"


def step_up(run: Run) -> str:
    target = run.target_()
    outputs, detail = target.up(Environment.load(run.env, target), run.directory / "up.log")
    run.outputs.write_text(json.dumps(outputs.to_json(), indent=2) + "\n", encoding="utf-8")
    return detail


def step_inventory(run: Run) -> str:
    if not run.outputs.is_file():
        raise CitadelleError(f"no stack outputs in {run.directory} (run the up step, or pass "
                             "--outputs FILE)")
    target = run.target_()
    env = Environment.load(run.env, target)
    outputs = StackOutputs.parse(read_json(run.outputs))
    files = write_inventory(env, outputs, target.access(env), run.inventory,
                            target=target.name, source=str(run.outputs))
    prepared = target.prepare(env)
    detail = f"{len(outputs.servers)} hosts -> {files.inventory.relative_to(run.directory)}"
    return "; ".join([detail, *prepared])


def step_harden(run: Run) -> str:
    # Imported on use: ansible-runner is only needed from this step on.
    from citadelle.deploy.harden import run_playbook  # noqa: PLC0415

    result = run_playbook("site", run.inventory, run_dir=run.directory / "harden")
    (run.directory / "harden.log").write_text(result.summary() + "\n", encoding="utf-8")
    if not result.ok:
        failures = "; ".join(f"{f.host}: {f.task}" for f in result.failures[:3])
        raise CitadelleError(f"hardening failed ({failures or result.status}); see harden.log",
                             exit_code=1)
    return f"{len(result.hosts)} hosts, {result.changed} changed, in {result.elapsed:.0f} s"


def step_verify(run: Run) -> str:
    checks = run_checks(run.env, run.inventory, run.directory, stream=False)
    counts = checks.counts
    text = (f"{len(checks.results)} checks: {counts['passed']} passed, {counts['waived']} "
            f"waived, {counts['failed'] + counts['error']} failed")
    # The same checks on an unhardened host, where the target has one: what passes there
    # proves nothing of the roles (the report shows it as baseline).
    target = run.target_()
    env = Environment.load(run.env, target)
    with target.baseline(env, run.directory / "baseline") as inventory:
        if inventory is not None:
            base = run_checks(run.env, inventory, inventory.parent, stream=False)
            shutil.copyfile(base.junit, run.directory / BASELINE_JUNIT)
            text += (f"; baseline (unhardened clone): {base.counts['passed']} of "
                     f"{len(base.results)} pass")
    if checks.exit_code != 0:
        raise CitadelleError(f"{text}; failing requirements: "
                             f"{' '.join(checks.failed_requirements())} (see checks.log)",
                             exit_code=1)
    return text


def step_report(run: Run) -> str:
    html, markdown = write_report(run.env, run.directory, run.directory)
    return f"{html.name}, {markdown.name}"


STEP_FUNCTIONS: dict[str, Callable[[Run], str]] = {
    "gate": step_gate, "up": step_up, "inventory": step_inventory, "harden": step_harden,
    "verify": step_verify, "report": step_report,
}


# --------------------------------------------------------------------------- pipeline


def run_pipeline(run: Run, first: str = STEPS[0], last: str = STEPS[-1],
                 echo: Callable[[str], Any] = print) -> int:
    """Run steps ``first``..``last`` in order; stop at the first failure."""
    selected = STEPS[STEPS.index(first): STEPS.index(last) + 1]
    # Earlier steps this run never ran (a run started from saved outputs) are marked skipped.
    for name in STEPS[: STEPS.index(first)]:
        if run.steps[name].status in ("pending", "running"):
            run.steps[name].status = "skipped"
    echo(f"deploy {run.env} (target {run.target}): run folder {run.directory}")
    for name in selected:
        record = run.steps[name]
        record.status, record.detail, record.exit_code = "running", "", 0
        record.started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        run.save()
        echo(f"[{STEPS.index(name) + 1}/{len(STEPS)}] {name} ...")
        start = time.monotonic()
        try:
            record.detail = STEP_FUNCTIONS[name](run)
            record.status = "ok"
        except CitadelleError as err:
            record.status, record.detail, record.exit_code = "failed", err.message, err.exit_code
        record.duration_s = round(time.monotonic() - start, 1)
        run.save()
        echo(f"[{STEPS.index(name) + 1}/{len(STEPS)}] {name} {record.status} "
             f"({record.duration_s:.1f} s): {record.detail}")
        if record.status == "failed":
            raise CitadelleError(
                f"deploy {run.env}: step '{name}' failed: {record.detail} (run folder "
                f"{run.directory}; resume with --from-step {name})", record.exit_code)
    return 0


def _handle(args: argparse.Namespace) -> int:
    first = args.from_step or STEPS[0]
    last = args.to_step or STEPS[-1]
    if STEPS.index(last) < STEPS.index(first):
        raise CitadelleError(f"--to-step {args.to_step} comes before --from-step {first}")
    hardens = STEPS.index(first) <= STEPS.index("harden") <= STEPS.index(last)
    if args.outputs or (first == STEPS[0] and not args.run):
        if args.outputs and STEPS.index(first) < STEPS.index("inventory"):
            raise CitadelleError("--outputs replaces the up step: use it with --from-step "
                                 "inventory (or a later step)")
        if hardens:  # before the run folder, the gate or `pulumi up`
            make_target(args.target, lab_run_dir=args.lab_run_dir).require_hardening_secrets()
        run = Run.create(args.env, args.target, lab_run_dir=str(args.lab_run_dir or ""))
        if args.outputs:
            shutil.copyfile(args.outputs, run.outputs)
    else:
        directory = Path(args.run) if args.run else latest_run(args.env)
        if directory is None:
            raise CitadelleError(f"no previous run of {args.env} under {paths.RUNS_DIR} to "
                                 f"resume; run `citadelle deploy {args.env}` first or pass "
                                 "--outputs FILE")
        run = Run.load(directory)
        if run.env != args.env:
            raise CitadelleError(f"{directory} is a run of {run.env}, not {args.env}")
        if hardens:
            run.target_().require_hardening_secrets()
    return run_pipeline(run, first, last)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = env_command(
        subparsers, "deploy",
        "gate, pulumi up, inventory, hardening, checks and evidence report",
        description="The deploy pipeline: " + " -> ".join(STEPS) + ". Each run's logs and "
        "artefacts land in runs/<UTC time>-ENV/; the pipeline stops at the first failing step.")
    add_target_choice(parser, "pulumi up on the environment's OpenStack (needs the Pulumi CLI)")
    parser.add_argument("--from-step", choices=STEPS, metavar="STEP",
                        help="resume at STEP (" + ", ".join(STEPS) + ") in the latest run")
    parser.add_argument("--to-step", choices=STEPS, metavar="STEP", help="stop after STEP")
    parser.add_argument("--run", metavar="DIR", help="run folder to resume (default: latest)")
    parser.add_argument("--outputs", metavar="FILE", type=Path,
                        help="saved stack outputs: start a new run at --from-step inventory")
    parser.set_defaults(func=_handle)
