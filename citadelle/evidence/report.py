"""`citadelle report ENV [--run DIR]`: compliance evidence for auditors, HTML and Markdown.

For each SecNumCloud 3.2 requirement the reference marks automatable (true or partial) and each
ANSSI-BP-028 recommendation at the environment's level, the report lists the controls that
enforce or verify it and their latest results:

- policies of the CrossGuard pack (``policies/``: each policy's ``snc:``/``bp028:`` tags),
  with the gate's result from the run's SARIF;
- hardening role tasks (``roles/*/tasks/*.yml``: task names cite BP-028 ids);
- post-deploy checks (``checks/``: their ``snc``/``bp028`` marks, collected by pytest), with the
  run's JUnit results per host;
- waivers (``waivers/<env>.yaml``, plus ``waivers/lab.yaml`` for lab runs).

Each row gets one status, with its reason and the layers of evidence it rests on (plan: the
offline gate; host: the checks on the deployed hosts; cloud: `citadelle audit-cloud` results
given to the report; data: verified transfers): **met** only when every check that applies
passed on every host it applies to, at least one of them failing on an unhardened baseline
clone, every audit-cloud rule citing it passed on the live cloud, and no policy failed;
**partially met** (plan-time policy only, baseline-only checks, the live cloud not audited,
or a rule the roles implement in part, with why); **waived** (justification, owner,
expiry); **failed** (which policy, which check on which host, or an applicable check that did
not run); **not applicable** (why); **not run**; **not automated**. Totals by chapter
(SecNumCloud) and by level (BP-028) are counted from the rows. The HTML is one self-contained
file: inline CSS, no script, no external link.
"""

from __future__ import annotations

import argparse
import datetime as dt
import html
import json
import re
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from citadelle import paths
from citadelle.deploy.inventory import write_inventory
from citadelle.deploy.verify import CHECKS_DIR, CaseResult, read_junit
from citadelle.deploy.waivers import (
    Waiver,
    bp028_reference,
    default_files,
    load_waivers,
    snc_reference,
)
from citadelle.environment import Environment, env_command
from citadelle.environment.outputs import StackOutputs
from citadelle.environment.projections import host_levels
from citadelle.environment.targets import Access
from citadelle.errors import CitadelleError
from citadelle.evidence.findings import Rule
from citadelle.plan.analyzer import PolicyAnalyzer, PolicyInfo

if TYPE_CHECKING:
    from citadelle.migrate.custody import Custody

LEVELS: tuple[str, ...] = ("minimal", "intermediary", "enhanced", "high")
# The same checks run on one unhardened clone: what passes there proves nothing of the roles.
BASELINE_JUNIT = "baseline.junit.xml"
_TASK_IDS = re.compile(r"^((?:R\d+)(?:\s*,\s*R\d+)*)\s*\|")


# --------------------------------------------------------------------------- controls


STATUSES: tuple[str, ...] = ("failed", "waived", "partially met", "met", "not applicable",
                             "not run", "not automated")
# What a result rests on: the offline gate (plan), the hosts (verify), the live cloud
# (audit-cloud), the migrated data (migration verify).
LAYERS: tuple[str, ...] = ("plan", "host", "cloud", "data")
_WORST = ("error", "failed", "not run", "waived", "passed")


@dataclass
class CheckEvidence:
    """One check mapped to a requirement: its outcome on every host it applies to."""

    name: str  # module.py::function
    # host -> passed | failed | error | waived | not run
    hosts: dict[str, str] = field(default_factory=dict)
    # Its outcome on the unhardened baseline clone: "" when the run had none (a deployed
    # environment has no pristine host), "not tried" when it had one but not this check.
    baseline: str = ""
    waived_by: list[str] = field(default_factory=list)  # the waivers its results name

    @property
    def outcome(self) -> str:
        outcomes = set(self.hosts.values())
        return next((o for o in _WORST if o in outcomes), "not run")

    @property
    def failing_hosts(self) -> list[str]:
        return [h for h, o in self.hosts.items() if o in ("failed", "error")]

    @property
    def proves(self) -> bool:
        """Passing here says something about the roles: it fails on stock Debian."""
        return self.outcome == "passed" and self.baseline not in ("passed", "not tried")


@dataclass
class Evidence:
    """Controls and results for one requirement id, and the status they support."""

    policies: list[tuple[str, str]] = field(default_factory=list)  # (policy, gate status)
    tasks: list[str] = field(default_factory=list)
    checks: list[CheckEvidence] = field(default_factory=list)
    waivers: list[str] = field(default_factory=list)
    partial: list[str] = field(default_factory=list)  # declared by the roles, with the reason
    not_applicable: list[str] = field(default_factory=list)  # "check on host: why"
    verified: bool = False  # the run's verify step produced results (for any requirement)
    # The live cloud: the audit-cloud rules citing the requirement, and their results here.
    cloud_rules: list[str] = field(default_factory=list)
    cloud: list[tuple[str, str, str]] = field(default_factory=list)  # (rule, status, resource)
    data: list[tuple[str, bool]] = field(default_factory=list)  # (migration evidence, ok)

    @property
    def layers(self) -> tuple[str, ...]:
        present = {"plan": bool(self.policies), "host": bool(self.checks),
                   "cloud": bool(self.cloud), "data": bool(self.data)}
        return tuple(layer for layer in LAYERS if present.get(layer))

    @property
    def automated(self) -> bool:
        return bool(self.policies or self.checks or self.not_applicable or self.cloud_rules
                    or self.data)

    def other_results(self) -> list[str]:
        """The results beside the host checks': not applicable pairs, cloud audit, data."""
        audited = {r for r, _, _ in self.cloud}
        return ([f"not applicable: {n}" for n in self.not_applicable]
                + [f"audit-cloud {r}: {st}" + (f" ({res})" if res else "")
                   for r, st, res in self.cloud]
                + [f"audit-cloud {r}: not run" for r in sorted(set(self.cloud_rules) - audited)]
                + [f"migration verify {p}: {'verified' if ok else 'FAILED'}"
                   for p, ok in self.data])

    @property
    def status(self) -> str:
        return self.verdict[0]

    @property
    def verdict(self) -> tuple[str, str]:
        """(status, reason): met only when every applicable check passed on every host it
        applies to, proving something a stock Debian does not have, and no policy failed.

        A decision table, read top to bottom: the first row that holds gives the status.
        """
        gate = {status for _, status in self.policies}
        failing = [c for c in self.checks if c.outcome in ("failed", "error")]
        unrun = [c.name for c in self.checks if "not run" in c.hosts.values()]
        cloud_failed = [f"audit-cloud {r} on {res or 'the cloud'}" for r, st, res in self.cloud
                        if st == "fail"]
        unchecked = sorted({r for r, st, _ in self.cloud if st == "not-checked"})
        audited = {r for r, _, _ in self.cloud}
        table: tuple[tuple[bool, str, str], ...] = (
            (not self.automated, "not automated",
             "role tasks cite it, no check verifies it" if self.tasks
             else "covered by process and documentation"),
            ("violated" in gate or bool(failing) or bool(cloud_failed)
             or not all(ok for _, ok in self.data), "failed", "; ".join(
                [f"policy {n}" for n, st in self.policies if st == "violated"]
                + [f"{c.name} on {', '.join(c.failing_hosts)}" for c in failing]
                + cloud_failed + [f"migration verify {p}" for p, ok in self.data if not ok])),
            (not self.checks and not self.policies and not self.cloud_rules and not self.data,
             "not applicable", "; ".join(self.not_applicable)),
            (not self.verified and bool(self.checks) and gate <= {"not run"}, "not run",
             "no check or gate result in this run"),
            (not self.verified and bool(self.checks), "partially met",
             "plan-time policies only: the host checks did not run in this run"),
            (bool(unrun), "failed", "applicable checks did not run: " + ", ".join(unrun)),
            (any(c.outcome == "waived" for c in self.checks), "waived",
             "; ".join(dict.fromkeys(w for c in self.checks for w in c.waived_by))),
            (bool(self.partial), "partially met", "; ".join(self.partial)),
            (bool(set(self.cloud_rules) - audited), "partially met",
             "the live cloud is not audited in this report (citadelle audit-cloud: "
             + ", ".join(sorted(set(self.cloud_rules) - audited)) + ")"),
            (bool(unchecked), "partially met",
             "the cloud audit could not check " + ", ".join(unchecked)),
            (not self.checks and not self.cloud and not self.data, "partially met",
             "plan-time policy only: the deployed hosts, volumes or data are not verified"),
            (bool(self.checks) and not any(c.proves for c in self.checks), "partially met",
             "its checks also pass on an unhardened Debian (baseline), or were not tried "
             "there: no proof of the hardening"),
            ("not run" in gate, "partially met", "the gate did not run in this run"),
        )
        return next(((status, why) for holds, status, why in table if holds), ("met", ""))


def pack_policies(pack_dir: Path = paths.POLICY_DIR) -> list[PolicyInfo]:
    """The pack's policies and their requirement ids, as the engine sees them: asked of the
    pack running out of process (GetAnalyzerInfo), exactly as the gate does."""
    with PolicyAnalyzer(pack_dir) as analyzer:
        return list(analyzer.info)


def role_tasks(roles_dir: Path = paths.ROLES_DIR) -> dict[str, list[str]]:
    """BP-028 id -> ``role: task name`` for every task whose name cites it."""
    result: dict[str, list[str]] = defaultdict(list)
    for path in sorted(roles_dir.glob("*/tasks/*.yml")):
        tasks = yaml.safe_load(path.read_text(encoding="utf-8")) or []
        for task in tasks if isinstance(tasks, list) else []:
            name = str(task.get("name", "")) if isinstance(task, dict) else ""
            match = _TASK_IDS.match(name)
            if match:
                for rid in re.findall(r"R\d+", match.group(1)):
                    result[rid].append(f"{path.parts[-3]}: {name}")
    return result


def role_partials(roles_dir: Path = paths.ROLES_DIR) -> dict[str, list[str]]:
    """BP-028 id -> "role: reason" for the recommendations a role implements only in part.

    Each role declares them in ``meta/partial.yml`` (``- id: R40`` / ``reason: ...``): where the
    recommendation conflicts with operating the platform, the strictest workable rule is
    applied and the evidence says "partially met", never "met".
    """
    result: dict[str, list[str]] = defaultdict(list)
    for path in sorted(roles_dir.glob("*/meta/partial.yml")):
        for entry in yaml.safe_load(path.read_text(encoding="utf-8")) or []:
            result[str(entry["id"])].append(f"{path.parts[-3]}: {entry['reason']}")
    return result


def synthetic_outputs(env: Environment) -> StackOutputs:
    # One host per server group, placed as the program places it: enough for pytest to collect
    # every check, its marks and where it applies, offline.
    compute = env.settings.compute
    groups = [("bastion", "bastion", "admin"), ("gateway", "gateway", "transfer")]
    groups += [(pool.name, "node", pool.tier) for pool in compute.node_pools]
    return StackOutputs.parse({
        "environment": env.name, "adminUser": "admin", "adminGroup": "admins",
        "servers": {f"{env.prefix}-{pool}-1": {"role": role, "privateIp": "192.0.2.2",
                                               "sshHost": "192.0.2.2", "sshPort": 22,
                                               "pool": pool, "tier": tier}
                    for pool, role, tier in groups}})


def check_catalogue(env: Environment, inventory: Path | None = None,
                    waiver_files: Sequence[Path] = ()) -> list[dict[str, Any]]:
    """Every check pytest collects for the environment, with its requirement ids; with the
    waiver files verify was given, the waivers' own expiry checks too."""
    with tempfile.TemporaryDirectory(prefix="citadelle-catalogue-") as tmp:
        if inventory is None or not inventory.is_file():
            inventory = write_inventory(env, synthetic_outputs(env), Access(),
                                        Path(tmp) / "inv.yml", target="cloud",
                                        source="a synthetic host per role").inventory
        out = Path(tmp) / "catalogue.json"
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", str(CHECKS_DIR), "--collect-only", "-q",
             "-p", "no:cacheprovider", "--citadelle-inventory", str(inventory),
             "--citadelle-catalogue", str(out),
             *(arg for path in waiver_files for arg in ("--citadelle-waivers", str(path)))],
            cwd=paths.REPO_ROOT, capture_output=True, text=True, check=False)
        if proc.returncode != 0 or not out.is_file():
            last = (proc.stdout.strip().splitlines() or ["no output"])[-1]
            raise CitadelleError(f"report: collecting the checks failed: {last}")
        data: list[dict[str, Any]] = json.loads(out.read_text(encoding="utf-8"))
        return data


# --------------------------------------------------------------------------- results


def gate_results(sarif: Path) -> dict[str, str]:
    """policy -> passed | violated | advisory, from the gate's SARIF."""
    document = json.loads(sarif.read_text(encoding="utf-8"))
    status: dict[str, str] = {}
    for run in document.get("runs", []):
        for rule in run.get("tool", {}).get("driver", {}).get("rules", []):
            status[rule["id"]] = "passed"
        for result in run.get("results", []):
            level = result.get("level", "error")
            if level == "error":
                status[result["ruleId"]] = "violated"
            elif status.get(result["ruleId"]) != "violated":
                status[result["ruleId"]] = "advisory"
    return status


# --------------------------------------------------------------------------- the model


@dataclass
class Row:
    kind: str  # snc | bp028
    id: str
    title: str
    group: str  # chapter (SecNumCloud) or level (BP-028)
    note: str  # automatable (SecNumCloud) or roles at that level (BP-028)
    evidence: Evidence


@dataclass
class Report:
    env: str
    generated: str
    run: Path | None
    run_target: str
    sources: list[str]
    snc: list[Row]
    bp028: list[Row]
    chapter_titles: dict[str, str]
    # The latest verified data transfer of the environment (and of its lab rehearsal).
    migration: list[MigrationEvidence] = field(default_factory=list)
    # Per migrating workspace: its chain of custody (citadelle.migrate.custody).
    custody: list[Custody] = field(default_factory=list)

    def totals(self, rows: Sequence[Row]) -> dict[str, Counter[str]]:
        totals: dict[str, Counter[str]] = {}
        for row in rows:
            counts = totals.setdefault(row.group, Counter())
            counts["requirements"] += 1
            counts["automated"] += row.evidence.automated
            counts[row.evidence.status] += 1
        overall: Counter[str] = Counter()
        for counts in totals.values():
            overall.update(counts)
        totals["all"] = overall
        return totals


def _section_of(rid: str, sections: Mapping[str, Any]) -> str | None:
    """The SecNumCloud section a requirement id belongs to (19.2.b -> 19.2)."""
    candidate = rid
    while candidate:
        if candidate in sections and sections[candidate]["level"] != "chapter":
            return candidate
        if "." not in candidate:
            return None
        candidate = candidate.rsplit(".", 1)[0]
    return None


def _chapter(section: Mapping[str, Any], sections: Mapping[str, Any]) -> str:
    current = section
    while current.get("parent"):
        current = sections[str(current["parent"])]
    return str(current["id"])


class _Keys:
    """Maps any cited id to the row it evidences: a BP-028 id, or its SecNumCloud section."""

    def __init__(self) -> None:
        self.sections = snc_reference()
        self.recommendations = bp028_reference()

    def __call__(self, rid: str) -> str | None:
        if rid in self.recommendations:
            return rid
        return _section_of(rid, self.sections)


def _outcomes(results: Sequence[CaseResult], key: _Keys) \
        -> dict[tuple[str, str], dict[str, str]]:
    """(row, check) -> host -> the worst outcome of the check's cases on that host."""
    found: dict[tuple[str, str], dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for result in results:
        name = f"{result.module.removeprefix('checks.')}.py::{result.check}"
        for row in {k for k in map(key, result.requirements) if k}:
            # A skipped check verified nothing: as good as not run.
            outcome = "not run" if result.outcome == "skipped" else result.outcome
            found[(row, name)][result.host].append(outcome)
    return {pair: {host: next((o for o in _WORST if o in outcomes), "passed")
                   for host, outcomes in hosts.items()} for pair, hosts in found.items()}


def _add_checks(evidence: Mapping[str, Evidence], key: _Keys,
                catalogue: Sequence[Mapping[str, Any]], results: Sequence[CaseResult],
                baseline: Sequence[CaseResult]) -> None:
    """Each requirement's checks with their outcome on every host they apply to."""
    outcomes = _outcomes(results, key)
    # Per (row, check): a check parametrized over several requirements proves each one apart.
    # Only host checks: a check that needs no host (a waiver's expiry) says nothing of a host.
    # Stock Debian fails it if it failed on any baseline host it applies to.
    base = {pair: next((o for o in _WORST if o in hosts.values()), "passed")
            for pair, hosts in _outcomes([r for r in baseline if r.host], key).items()}
    untried = "not tried" if any(r.host for r in baseline) else ""
    applicable: dict[tuple[str, str], set[str]] = defaultdict(set)
    for entry in catalogue:
        name = f"{str(entry['module']).removeprefix('checks/')}::{entry['check']}"
        for row in {k for k in map(key, entry["requirements"]) if k}:
            if entry.get("not_applicable"):
                evidence[row].not_applicable.append(
                    f"{name} on {entry['host']}: {entry['not_applicable']}")
            else:
                applicable[(row, name)].add(str(entry.get("host", "")))
    waived_by: dict[str, list[str]] = defaultdict(list)
    for result in results:
        if result.outcome == "waived":
            waived_by[f"{result.module.removeprefix('checks.')}.py::{result.check}"].append(
                result.message.removeprefix("waived: "))
    for (row, name), hosts in sorted(applicable.items()):
        seen = outcomes.get((row, name), {})
        per_host = {h: seen.get(h, "not run") for h in sorted(hosts)}
        evidence[row].checks.append(CheckEvidence(
            name, per_host, base.get((row, name), untried),
            list(dict.fromkeys(waived_by.get(name, [])))))


# What a verified transfer proves: the data is in the EU object store, byte for byte.
DATA_REQUIREMENTS = ("19.2",)


@dataclass(frozen=True)
class CloudResult:
    """One result of `citadelle audit-cloud ... --json`."""

    rule: str
    status: str  # pass | fail | not-checked | not-applicable
    resource: str
    snc: tuple[str, ...]


def cloud_results(path: Path, env: str) -> list[CloudResult]:
    """The results of one audit-cloud JSON file of ``env``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if "results" not in data:
            raise KeyError("results")
        if data.get("environment") != env:
            raise CitadelleError(f"{path}: an audit of {data.get('environment')!r}, not {env!r}")
        return [CloudResult(str(r["check"]["id"]), str(r["status"]), str(r.get("resource", "")),
                            tuple(map(str, r["check"].get("snc", [])))) for r in data["results"]]
    except FileNotFoundError:
        raise CitadelleError(f"{path}: no such audit-cloud results file") from None
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise CitadelleError(f"{path}: not the JSON of `citadelle audit-cloud --json` "
                             f"({err.__class__.__name__}: {err})") from None


def _add_cloud_and_data(evidence: dict[str, Evidence], key: _Keys,
                        cloud_rules: Sequence[Rule] | None, cloud: Sequence[CloudResult],
                        data: Sequence[MigrationEvidence]) -> None:
    if cloud_rules is None:
        from citadelle.audit.report import rule_catalogue  # noqa: PLC0415

        cloud_rules = rule_catalogue()
    for rule in cloud_rules:
        for rid in {k for k in map(key, rule.snc) if k}:
            evidence[rid].cloud_rules.append(rule.id)
    for found in cloud:
        for rid in {k for k in map(key, found.snc) if k}:
            evidence[rid].cloud.append((found.rule, found.status, found.resource))
    for transfer in data:
        for rid in DATA_REQUIREMENTS:
            evidence[rid].data.append((transfer.path, transfer.ok and transfer.recheck == "holds"))


def collect_evidence(policies: Sequence[PolicyInfo], gate: Mapping[str, str],
                     catalogue: Sequence[Mapping[str, Any]], results: Sequence[CaseResult],
                     waivers: Sequence[Waiver], *, baseline: Sequence[CaseResult] = (),
                     partial: Mapping[str, Sequence[str]] | None = None,
                     cloud_rules: Sequence[Rule] | None = None,
                     cloud: Sequence[CloudResult] = (),
                     data: Sequence[MigrationEvidence] = ()) -> dict[str, Evidence]:
    """Requirement row id -> its controls and their latest results.

    The catalogue lists every (check, host) the inventory makes applicable and the pairs that
    are not applicable with the reason; ``results`` (the JUnit of verify) must hold a result
    for each applicable pair, or the requirement fails for lack of evidence. A requirement an
    audit-cloud rule cites needs that rule's result (``cloud``) to be met: a plan and host
    checks do not show what the live cloud runs. Verified transfers (``data``) add the data
    layer to the requirements they prove.
    """
    key = _Keys()
    verified = bool(results)
    evidence: dict[str, Evidence] = defaultdict(lambda: Evidence(verified=verified))
    for policy in policies:
        for rid in {k for k in map(key, (*policy.snc, *policy.bp028)) if k}:
            evidence[rid].policies.append((policy.name, gate.get(policy.name, "not run")))
    for rid, tasks in role_tasks().items():
        evidence[rid].tasks.extend(tasks)
    for rid, reasons in (partial if partial is not None else role_partials()).items():
        row = key(rid)
        if row:
            evidence[row].partial.extend(reasons)
    _add_cloud_and_data(evidence, key, cloud_rules, cloud, data)
    _add_checks(evidence, key, catalogue, results, baseline)
    for waiver in waivers:
        row_key = key(waiver.requirement)
        if row_key:
            evidence[row_key].waivers.append(_waiver_text(waiver))
    return evidence


@dataclass(frozen=True)
class MigrationEvidence:
    path: str
    ok: bool
    objects: int
    bytes: int
    digest: str
    verified: str  # when verify ended
    recheck: str  # "holds", or what check-evidence found


def migration_evidence(env: str, base: Path = paths.RUNS_DIR) -> list[MigrationEvidence]:
    """The newest evidence of ``citadelle migrate verify`` per run folder, re-verified now."""
    # Imported here: the migrate package is only needed when a transfer was verified.
    from citadelle.migrate import evidence  # noqa: PLC0415

    found = []
    for folder in (base / "migrate" / env, base / "migrate" / f"{env}-lab"):
        files = sorted(folder.glob("verify-*/evidence.json"))
        if not files:
            continue
        try:
            problems = evidence.check(files[-1])
            data = json.loads(files[-1].read_text())
        except (CitadelleError, ValueError) as err:
            found.append(MigrationEvidence(str(files[-1]), False, 0, 0, "", "",
                                           f"unreadable: {err}"))
            continue
        destination = data.get("destination", {})
        found.append(MigrationEvidence(
            str(files[-1]), bool(data.get("ok")), int(destination.get("objects", 0)),
            int(destination.get("bytes", 0)), str(data.get("digest", "")),
            str(data.get("time_range", {}).get("verify_finished", "")),
            "holds" if not problems else "; ".join(problems)))
    return found


def build_report(env: str, run: Path | None, *, catalogue: list[dict[str, Any]] | None = None,
                 policies: list[PolicyInfo] | None = None,
                 cloud_audits: Sequence[Path] = ()) -> Report:
    """The evidence of ``env`` from a deploy run, audit-cloud results (``cloud_audits`` and the
    run's ``audit-cloud*.json``) and the verified transfers."""
    environment = Environment.load(env)
    sections = snc_reference()
    run_info = json.loads((run / "run.json").read_text()) if run and (run / "run.json").is_file() \
        else {}
    target = str(run_info.get("target", ""))
    sources: list[str] = []
    gate: dict[str, str] = {}
    if run is not None and (run / "gate.sarif").is_file():
        gate = gate_results(run / "gate.sarif")
        sources.append(str(run / "gate.sarif"))
    inventory = run / "inventory" / "inventory.yml" if run is not None else None
    results: list[CaseResult] = []
    if run is not None and (run / "checks.junit.xml").is_file():
        results = read_junit(run / "checks.junit.xml")
        sources.append(str(run / "checks.junit.xml"))
    baseline: list[CaseResult] = []
    if run is not None and (run / BASELINE_JUNIT).is_file():
        baseline = read_junit(run / BASELINE_JUNIT)
        sources.append(str(run / BASELINE_JUNIT))
    waivers = load_waivers(default_files(env, target))
    sources += [str(p) for p in waivers.files]
    audits = [*cloud_audits, *(sorted(run.glob("audit-cloud*.json")) if run else [])]
    cloud = [found for path in audits for found in cloud_results(path, env)]
    sources += [str(p) for p in audits]
    migration = migration_evidence(env)
    sources += [m.path for m in migration]
    evidence = collect_evidence(
        pack_policies() if policies is None else policies, gate,
        check_catalogue(environment, inventory, waivers.files) if catalogue is None
        else catalogue, results,
        waivers.waivers, baseline=baseline, cloud=cloud, data=migration)

    snc_rows = [
        Row("snc", sid, str(section["title"]), _chapter(section, sections),
            "true" if section["automatable"] is True else "partial", evidence[sid])
        for sid, section in sections.items()
        if section["level"] != "chapter" and section.get("automatable") in (True, "partial")]
    levels = host_levels(environment.settings)
    top = max(LEVELS.index(level) for level in levels.values())
    bp_rows = [
        Row("bp028", rid, str(rec["title"]), str(rec["level"]),
            ", ".join(r for r, level in levels.items()
                      if LEVELS.index(rec["level"]) <= LEVELS.index(level)), evidence[rid])
        for rid, rec in bp028_reference().items() if LEVELS.index(rec["level"]) <= top]
    chapters = {sid: str(s["title"]) for sid, s in sections.items() if s["level"] == "chapter"}
    from citadelle.migrate.custody import custody  # noqa: PLC0415

    chain = custody(env, paths.RUNS_DIR)
    sources += [c.folder for c in chain]
    return Report(env=env, generated=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                  run=run, run_target=target or "none", sources=sources, snc=snc_rows,
                  bp028=bp_rows, chapter_titles=chapters, migration=migration, custody=chain)


def _migration_cells(m: MigrationEvidence) -> list[str]:
    return [m.path, "verified, every byte" if m.ok else "differences found", str(m.objects),
            str(m.bytes), m.verified, m.recheck, m.digest]


MIGRATION_HEADERS = ("Evidence", "Result", "Objects", "Bytes", "Verified", "Re-verified now",
                     "Digest")


def _waiver_text(waiver: Waiver) -> str:
    return (f"{waiver.scope}: {waiver.justification} (owner {waiver.owner}, expires "
            f"{waiver.expires.isoformat()}"
            + (f", checks {', '.join(waiver.checks)}" if waiver.checks else "") + ")")


# --------------------------------------------------------------------------- rendering

TOTAL_KEYS: tuple[str, ...] = ("requirements", "automated", *STATUSES)

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem;color:#1b1f24;
max-width:1400px}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{margin-top:2.2rem;border-bottom:2px solid #d0d7de}
p.meta{color:#57606a;margin-top:0}
table{border-collapse:collapse;width:100%;margin:.8rem 0;font-size:.86rem}
th,td{border:1px solid #d0d7de;padding:.3rem .45rem;vertical-align:top;text-align:left}
th{background:#f6f8fa}td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.all td{font-weight:600;background:#f6f8fa}
.status{font-weight:600;white-space:nowrap}
.s-met{color:#116329}.s-failed{color:#a40e26}.s-waived{color:#7d4e00}
.s-partially-met{color:#9a6700}.s-not-applicable{color:#57606a}.s-not-run{color:#57606a}
.s-not-automated{color:#6639ba}
.layer{display:inline-block;border:1px solid #d0d7de;border-radius:.6rem;padding:0 .4rem;
margin-right:.2rem;font-size:.75rem}.reason{display:block;font-weight:400;font-size:.78rem}
.o-passed{color:#116329}.o-failed,.o-error,.o-not-run{color:#a40e26}.o-waived{color:#7d4e00}
ul{margin:0;padding-left:1.1rem}li{margin:.1rem 0}code{font-size:.8rem;overflow-wrap:anywhere}
table[id^="requirements-"] td:nth-child(5){min-width:13rem}
table[id^="requirements-"] td:nth-child(7){min-width:22rem}
"""


def ordered_groups(totals: Mapping[str, Any]) -> list[str]:
    """Chapters in numeric order, BP-028 levels from minimal to high, then the overall row."""
    def rank(group: str) -> tuple[int, int]:
        if group in LEVELS:
            return (0, LEVELS.index(group))
        return (1, int(group)) if group.isdigit() else (2, 0)

    return [*sorted((g for g in totals if g != "all"), key=rank), "all"]


def _slug(status: str) -> str:
    return status.replace(" ", "-")


def _check_text(check: CheckEvidence, markup: bool) -> str:
    def outcome(host: str, value: str) -> str:
        if markup:
            return (f'{html.escape(host or "(no host)")}: '
                    f'<span class="o-{_slug(value)}">{html.escape(value)}</span>')
        return f"{host or '(no host)'}: {value}"

    hosts = ", ".join(outcome(h, o) for h, o in check.hosts.items())
    baseline = f"; baseline: {check.baseline}" if check.baseline else ""
    name = f"<code>{html.escape(check.name)}</code>" if markup else f"`{check.name}`"
    return f"{name}: {hosts}{html.escape(baseline) if markup else baseline}"


def _html_list(items: Iterable[str]) -> str:
    values = list(items)
    if not values:
        return "&mdash;"
    return "<ul>" + "".join(f"<li>{v}</li>" for v in values) + "</ul>"


def _totals_html(report: Report, rows: Sequence[Row], kind: str, label: str) -> str:
    totals = report.totals(rows)
    head = "".join(f"<th>{html.escape(k)}</th>" for k in TOTAL_KEYS)
    lines = [f'<table id="totals-{kind}"><thead><tr><th>{label}</th>{head}</tr></thead><tbody>']
    for group in ordered_groups(totals):
        counts = totals[group]
        title = report.chapter_titles.get(group, "") if kind == "snc" else ""
        name = "All" if group == "all" else html.escape(f"{group} {title}".strip())
        cells = "".join(f'<td class="n" data-key="{k}">{counts[k]}</td>' for k in TOTAL_KEYS)
        css = ' class="all"' if group == "all" else ""
        lines.append(f'<tr data-group="{html.escape(group)}"{css}><td>{name}</td>{cells}</tr>')
    lines.append("</tbody></table>")
    return "\n".join(lines)


def _rows_html(rows: Sequence[Row], kind: str, note: str) -> str:
    lines = [f'<table id="requirements-{kind}"><thead><tr><th>Id</th><th>Requirement</th>'
             f"<th>{note}</th><th>Status</th><th>Evidence layers</th><th>Policies (gate)</th>"
             "<th>Role tasks</th><th>Checks (results per host)</th><th>Waivers</th>"
             "</tr></thead><tbody>"]
    for row in rows:
        ev = row.evidence
        status, reason = ev.verdict
        policies = (f"<code>{html.escape(n)}</code>: {html.escape(s)}" for n, s in ev.policies)
        tasks = (html.escape(t) for t in ev.tasks)
        checks = [_check_text(c, markup=True) for c in ev.checks]
        checks += [html.escape(t) for t in ev.other_results()]
        waivers = (html.escape(w) for w in ev.waivers)
        layers = "".join(f'<span class="layer">{layer}</span>' for layer in ev.layers) or "&mdash;"
        why = f'<span class="reason">{html.escape(reason)}</span>' if reason else ""
        lines.append(
            f'<tr id="{kind}-{html.escape(row.id)}" data-status="{_slug(status)}" '
            f'data-layers="{" ".join(ev.layers)}">'
            f"<td>{html.escape(row.id)}</td><td>{html.escape(row.title)}</td>"
            f"<td>{html.escape(row.note)}</td>"
            f'<td class="status s-{_slug(status)}">{html.escape(status)}{why}</td>'
            f"<td>{layers}</td><td>{_html_list(policies)}</td><td>{_html_list(tasks)}</td>"
            f"<td>{_html_list(checks)}</td><td>{_html_list(waivers)}</td></tr>")
    lines.append("</tbody></table>")
    return "\n".join(lines)


def render_html(report: Report) -> str:
    run = html.escape(str(report.run)) if report.run else "none (controls only, no results)"
    sources = _html_list(f"<code>{html.escape(s)}</code>" for s in report.sources)
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Citadelle compliance evidence: {html.escape(report.env)}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>Compliance evidence: environment {html.escape(report.env)}</h1>",
        f'<p class="meta">Generated {html.escape(report.generated)} by <code>citadelle report'
        f"</code>; run {run} (target {html.escape(report.run_target)}). SecNumCloud 3.2 "
        "requirements marked automatable (true or partial) and ANSSI-BP-028 recommendations at "
        "the environment's levels, with the policies, role tasks and checks that enforce or "
        "verify them, their latest results per host and the waivers in force. Met means every "
        "applicable check passed on every host it applies to and fails on an unhardened "
        "baseline; a plan-time policy alone never makes a requirement met.</p>",
        f"<h2>Evidence sources</h2>{sources}",
        "<h2>SecNumCloud 3.2: totals by chapter</h2>",
        _totals_html(report, report.snc, "snc", "Chapter"),
        "<h2>ANSSI-BP-028: totals by level</h2>",
        _totals_html(report, report.bp028, "bp028", "Level"),
        "<h2>SecNumCloud 3.2 requirements</h2>",
        _rows_html(report.snc, "snc", "Automatable"),
        "<h2>ANSSI-BP-028 recommendations</h2>",
        _rows_html(report.bp028, "bp028", "Node roles"),
        "<h2>Data migration (SecNumCloud 19.2, 10.1): verified transfers</h2>",
        _migration_html(report.migration),
        f"<h2>{CUSTODY_TITLE}</h2>",
        _custody_html(report.custody),
        "</body></html>", ""])


CUSTODY_TITLE = ("Data migration (SecNumCloud 19.1.h, 19.1.i, 19.4): chain of custody per "
                 "workspace")
NO_CUSTODY = "No workspace cutover (`citadelle migrate sync`) recorded yet."


def _custody_html(chain: Sequence[Custody]) -> str:
    if not chain:
        return f"<p>{html.escape(NO_CUSTODY)}</p>"
    from citadelle.migrate.custody import HEADERS  # noqa: PLC0415

    head = "".join(f"<th>{h}</th>" for h in HEADERS)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row.cells)
                   + "</tr>" for row in chain)
    return f"<table><tr>{head}</tr>{rows}</table>"


def _migration_html(evidence: Sequence[MigrationEvidence]) -> str:
    if not evidence:
        return "<p>No verified transfer (<code>citadelle migrate verify</code>) yet.</p>"
    head = "".join(f"<th>{h}</th>" for h in MIGRATION_HEADERS)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in _migration_cells(m))
                   + "</tr>" for m in evidence)
    return f"<table><tr>{head}</tr>{rows}</table>"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(report: Report) -> str:
    lines = [f"# Compliance evidence: environment {report.env}", "",
             f"Generated {report.generated} by `citadelle report`; run "
             f"{report.run or 'none (controls only, no results)'} (target {report.run_target}).",
             "", "Evidence sources:", ""]
    lines += [f"- `{s}`" for s in report.sources] or ["- none"]
    for title, rows, kind, label in (
            ("SecNumCloud 3.2: totals by chapter", report.snc, "snc", "Chapter"),
            ("ANSSI-BP-028: totals by level", report.bp028, "bp028", "Level")):
        totals = report.totals(rows)
        lines += ["", f"## {title}", "", f"| {label} | " + " | ".join(TOTAL_KEYS) + " |",
                  "|---" * (len(TOTAL_KEYS) + 1) + "|"]
        for group in ordered_groups(totals):
            name = "All" if group == "all" else (
                f"{group} {report.chapter_titles.get(group, '')}".strip() if kind == "snc"
                else group)
            lines.append(f"| {_md(name)} | "
                         + " | ".join(str(totals[group][k]) for k in TOTAL_KEYS) + " |")
    for title, rows, note in (("SecNumCloud 3.2 requirements", report.snc, "Automatable"),
                              ("ANSSI-BP-028 recommendations", report.bp028, "Node roles")):
        lines += ["", f"## {title}", "",
                  f"| Id | Requirement | {note} | Status | Layers | Policies (gate) | "
                  "Role tasks | Checks (per host) | Waivers |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for row in rows:
            ev = row.evidence
            status, reason = ev.verdict
            checks = [_check_text(c, markup=False) for c in ev.checks]
            checks += ev.other_results()
            cells = [row.id, row.title, row.note, f"{status}: {reason}" if reason else status,
                     ", ".join(ev.layers) or "-",
                     "; ".join(f"`{n}`: {s}" for n, s in ev.policies) or "-",
                     "; ".join(ev.tasks) or "-", "; ".join(checks) or "-",
                     "; ".join(ev.waivers) or "-"]
            lines.append("| " + " | ".join(_md(c) for c in cells) + " |")
    lines += ["", "## Data migration (SecNumCloud 19.2, 10.1): verified transfers", ""]
    if report.migration:
        lines += ["| " + " | ".join(MIGRATION_HEADERS) + " |",
                  "|---" * len(MIGRATION_HEADERS) + "|"]
        lines += ["| " + " | ".join(_md(c) for c in _migration_cells(m)) + " |"
                  for m in report.migration]
    else:
        lines.append("No verified transfer (`citadelle migrate verify`) yet.")
    lines += ["", f"## {CUSTODY_TITLE}", ""]
    if report.custody:
        from citadelle.migrate.custody import HEADERS  # noqa: PLC0415

        lines += ["| " + " | ".join(HEADERS) + " |", "|---" * len(HEADERS) + "|"]
        lines += ["| " + " | ".join(_md(c) for c in row.cells) + " |" for row in report.custody]
    else:
        lines.append(NO_CUSTODY)
    return "\n".join(lines) + "\n"


def latest_run(env: str, base: Path = paths.RUNS_DIR) -> Path | None:
    """The newest deploy run folder of ``env`` (folder names sort by time)."""
    runs = sorted(p for p in base.glob(f"*-{env}") if (p / "run.json").is_file())
    return runs[-1] if runs else None


def write_report(env: str, run: Path | None, out_dir: Path) -> tuple[Path, Path]:
    return save_report(build_report(env, run), out_dir)


def save_report(report: Report, out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    html_path, md_path = out_dir / "report.html", out_dir / "report.md"
    html_path.write_text(render_html(report), encoding="utf-8")
    md_path.write_text(render_markdown(report), encoding="utf-8")
    return html_path, md_path


def _handle(args: argparse.Namespace) -> int:
    run = Path(args.run) if args.run else latest_run(args.env)
    if run is not None and not run.is_dir():
        raise CitadelleError(f"--run {run}: no such run folder")
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = Path(args.out) if args.out else (run or paths.RUNS_DIR / f"report-{args.env}-{stamp}")
    report = build_report(args.env, run, cloud_audits=args.cloud_audit)
    html_path, md_path = save_report(report, out)
    for kind, rows in (("SecNumCloud 3.2", report.snc), ("BP-028", report.bp028)):
        counts = report.totals(rows)["all"]
        print(f"{kind}: {counts['requirements']} requirements, {counts['automated']} with an "
              "automated control, " + ", ".join(f"{counts[s]} {s}" for s in STATUSES if counts[s]))
    print(f"report written to {html_path} and {md_path}")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = env_command(
        subparsers, "report",
        "compliance evidence for auditors (HTML and Markdown)",
        description="Map each automatable SecNumCloud 3.2 requirement and each BP-028 "
        "recommendation at the environment's level to its policies, role tasks and checks, "
        "with the latest gate and check results and the waivers.")
    parser.add_argument("--run", metavar="DIR",
                        help="deploy run folder with the results (default: the latest)")
    parser.add_argument("--out", metavar="DIR", help="output folder (default: the run folder)")
    parser.add_argument("--cloud-audit", metavar="FILE", type=Path, action="append", default=[],
                        help="results of `citadelle audit-cloud conformance|drift --json FILE` "
                        "(repeatable; the run folder's audit-cloud*.json are read too): the "
                        "live cloud's layer of evidence")
    parser.set_defaults(func=_handle)
