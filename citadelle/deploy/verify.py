"""`citadelle verify ENV`: run the post-deploy checks (checks/) against an inventory.

The checks run in their own pytest process over SSH (testinfra) and write a JUnit file whose
test cases carry their requirement ids and host as properties; :func:`read_junit` turns it back
into results for the summary, the pipeline and the evidence report. Exit code: 0 when every
check passed or was waived, 1 when a check failed, 2 when the checks could not run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from citadelle import __version__, paths
from citadelle.deploy.inventory import host_vars, load_inventory
from citadelle.deploy.waivers import default_files, load_waivers
from citadelle.environment import env_command
from citadelle.errors import CitadelleError
from citadelle.evidence import sarif
from citadelle.evidence.findings import Finding, Rule

CHECKS_DIR = paths.REPO_ROOT / "checks"
CHECK_TIMEOUT_S = 900


@dataclass(frozen=True)
class CaseResult:
    """One check on one host, as the JUnit file reports it."""

    module: str
    name: str
    host: str
    requirements: tuple[str, ...]
    outcome: str  # passed | failed | error | waived | skipped
    message: str = ""

    @property
    def check(self) -> str:
        return self.name.split("[", 1)[0]


@dataclass
class CheckRun:
    exit_code: int
    junit: Path
    log: Path
    results: list[CaseResult] = field(default_factory=list)

    @property
    def counts(self) -> Counter[str]:
        return Counter(r.outcome for r in self.results)

    def failed_requirements(self) -> list[str]:
        return sorted({rid for r in self.results if r.outcome in ("failed", "error")
                       for rid in r.requirements})

    def summary(self) -> str:
        counts = self.counts
        lines = [f"checks: {len(self.results)}  passed {counts['passed']}  failed "
                 f"{counts['failed']}  errors {counts['error']}  waived {counts['waived']}  "
                 f"skipped {counts['skipped']}"]
        for result in self.results:
            if result.outcome in ("failed", "error"):
                lines.append(f"  FAILED {result.host or '-'} {result.module}::{result.name} "
                             f"[{' '.join(result.requirements)}]: {result.message[:200]}")
        if self.failed_requirements():
            lines.append("requirements with a failing check: "
                         + " ".join(self.failed_requirements()))
        lines.append(f"JUnit: {self.junit}   log: {self.log}")
        return "\n".join(lines)


def _outcome(case: ET.Element) -> tuple[str, str]:
    for tag, outcome in (("failure", "failed"), ("error", "error")):
        node = case.find(tag)
        if node is not None:
            return outcome, (node.get("message") or node.text or "").strip()
    skipped = case.find("skipped")
    if skipped is not None:
        message = skipped.get("message") or ""
        if skipped.get("type") == "pytest.xfail":
            return "waived", message.removeprefix("reason: ")
        return "skipped", message
    return "passed", ""


def read_junit(path: Path) -> list[CaseResult]:
    """The results of a checks run (JUnit written by pytest with our properties)."""
    try:
        root = ET.parse(path).getroot()  # noqa: S314 (our own file, written by pytest)
    except (OSError, ET.ParseError) as err:
        raise CitadelleError(f"{path}: cannot read the checks' JUnit report ({err})") from None
    results = []
    for case in root.iter("testcase"):
        props = {p.get("name"): p.get("value") or "" for p in case.iter("property")}
        outcome, message = _outcome(case)
        results.append(CaseResult(
            module=str(case.get("classname", "")), name=str(case.get("name", "")),
            host=props.get("host", ""),
            requirements=tuple((props.get("requirements") or "").split()),
            outcome=outcome, message=" ".join(message.split())))
    return results


def merge_junit(parts: Sequence[Path], target: Path) -> None:
    """One JUnit file with the test suites of every per-host run."""
    merged = ET.Element("testsuites", name="citadelle checks")
    for part in parts:
        root = ET.parse(part).getroot()  # noqa: S314 (written by pytest just now)
        merged.extend(root.iter("testsuite"))
        part.unlink()
    ET.ElementTree(merged).write(target, encoding="utf-8", xml_declaration=True)


def run_checks(env: str, inventory: Path, out_dir: Path, *,
               waiver_files: Sequence[Path] | None = None, today: dt.date | None = None,
               select: str | None = None, stream: bool = True) -> CheckRun:
    """Run checks/ against ``inventory``; JUnit and log land in ``out_dir``."""
    hosts = host_vars(load_inventory(inventory))
    if not hosts:
        raise CitadelleError(f"{inventory}: no host to check")
    targets = {str(v.get("citadelle_target", "cloud")) for v in hosts.values()}
    if len(targets) != 1:
        raise CitadelleError(
            f"{inventory}: hosts of several targets ({', '.join(sorted(targets))})")
    files = list(waiver_files) if waiver_files is not None else default_files(env, targets.pop())
    load_waivers(files)  # refuse a bad waiver file before any SSH connection
    out_dir.mkdir(parents=True, exist_ok=True)
    junit, log = out_dir / "checks.junit.xml", out_dir / "checks.log"
    base = [sys.executable, "-m", "pytest", str(CHECKS_DIR), "-p", "no:cacheprovider",
            "-o", "junit_family=xunit1", "-q", "-rfE", "--tb=short",
            f"--timeout={CHECK_TIMEOUT_S}", "--citadelle-inventory", str(inventory.resolve())]
    for path in files:
        if path.is_file():
            base += ["--citadelle-waivers", str(path.resolve())]
    if today is not None:
        base += ["--citadelle-today", today.isoformat()]
    if select:
        base += ["-k", select]
    # One pytest per host, all at once: each host is its own machine, the wait is on SSH.
    env_vars = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    runs: list[tuple[str, subprocess.Popen[str], Path, Path]] = []
    for index, host in enumerate(sorted(hosts)):
        host_junit, host_log = out_dir / f"checks.{host}.junit.xml", out_dir / f"checks.{host}.log"
        argv = [*base, f"--junitxml={host_junit}", "--citadelle-host", host]
        if index == 0:
            argv.append("--citadelle-hostless")
        with host_log.open("w", encoding="utf-8") as handle:
            proc = subprocess.Popen(argv, cwd=paths.REPO_ROOT, env=env_vars, text=True,
                                    stdout=handle, stderr=subprocess.STDOUT)
        runs.append((host, proc, host_junit, host_log))
    problems = []
    with log.open("w", encoding="utf-8") as combined:
        for host, proc, host_junit, host_log in runs:
            code = proc.wait()
            text = host_log.read_text(encoding="utf-8")
            combined.write(f"==== {host} (pytest exit {code})\n{text}")
            if stream:
                print(f"{host}: " + (text.strip().splitlines() or ["no output"])[-1], flush=True)
            if code not in (0, 1) or not host_junit.is_file():
                tail = " | ".join(text.strip().splitlines()[-3:])
                problems.append(f"{host}: pytest exit {code}: {tail}")
    if problems:
        raise CitadelleError("checks could not run: " + "; ".join(problems) + f" (log: {log})")
    merge_junit([r[2] for r in runs], junit)
    results = read_junit(junit)
    write_sarif(out_dir / "checks.sarif", *findings(results))
    failed = any(r.outcome in ("failed", "error") for r in results)
    return CheckRun(exit_code=1 if failed else 0, junit=junit, log=log, results=results)


def findings(results: Sequence[CaseResult]) -> tuple[list[Rule], list[Finding]]:
    """The run in the findings model: one rule per check, one finding per failed case."""
    rules: dict[str, Rule] = {}
    found = []
    for result in results:
        ids = result.requirements
        rule = rules.setdefault(result.check, Rule(
            id=result.check, description=f"{result.module}::{result.check}",
            severity="high", snc=tuple(i for i in ids if not i.startswith("R")),
            bp028=tuple(i for i in ids if i.startswith("R"))))
        if result.outcome in ("failed", "error"):
            found.append(Finding(rule.id, result.message or result.outcome, result.host or "-",
                                 "host", f"{result.host}::{result.name}"))
    return list(rules.values()), found


def write_sarif(path: Path, rules: Sequence[Rule], found: Sequence[Finding]) -> None:
    sarif.write_sarif(path, sarif.to_sarif("citadelle-verify", __version__, rules, found))


def _handle(args: argparse.Namespace) -> int:
    inventory = Path(args.inventory) if args.inventory else paths.inventory_path(args.env)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = Path(args.out) if args.out else paths.RUNS_DIR / f"verify-{args.env}-{stamp}"
    run = run_checks(args.env, inventory, out,
                     waiver_files=[Path(p) for p in args.waivers] if args.waivers else None,
                     select=args.select, stream=not args.quiet)
    print(run.summary())
    return run.exit_code


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = env_command(
        subparsers, "verify",
        "run the post-deploy SecNumCloud/BP-028 checks against an inventory",
        description="Run the testinfra checks of checks/ over SSH against the hosts of an "
        "inventory written by `citadelle inventory`; waivers from waivers/ENV.yaml.")
    parser.add_argument("--inventory", metavar="FILE",
                        help="inventory (default: runs/ENV/inventory.yml)")
    parser.add_argument("--out", metavar="DIR",
                        help="folder for the JUnit and the log (default: runs/verify-ENV-<time>)")
    parser.add_argument("--waivers", metavar="FILE", action="append",
                        help="waiver file (repeatable; default: waivers/ENV.yaml, plus "
                        "waivers/lab.yaml for lab inventories)")
    parser.add_argument("-k", dest="select", metavar="EXPR", help="only checks matching EXPR")
    parser.add_argument("--quiet", action="store_true", help="print only the summary")
    parser.set_defaults(func=_handle)
