"""`citadelle gate ENV`: the policy pack over an environment's program, before any cloud sees it.

The program runs offline under the recording monitor (``citadelle.plan.offline``); the pack
runs out of process exactly as the Pulumi CLI runs it (``citadelle.plan.analyzer``); every
registration goes through ``Remediate`` and ``Analyze`` with the shapes the engine sends
(inputs, secrets kept as secrets, the resource's provider, or the default provider the engine
would have used), then the final state of every resource through ``AnalyzeStack``. Exit 1 on
any mandatory violation, 0 otherwise; a broken program, pack or config is exit 2, never a pass.

The pack's allow-lists come from the environment's stack config, the one source of truth:
``citadelle.environment.projections.policy_config`` builds them, ``citadelle policy-config ENV
--out FILE`` writes them, and ``citadelle pulumi ENV -- preview|up`` hands them to the engine.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from citadelle import paths
from citadelle.deploy.pulumi import run_pulumi, write_policy_config
from citadelle.environment import Environment, env_command, projections
from citadelle.environment.stackconfig import StackConfig, load_stack_config, load_yaml
from citadelle.errors import CitadelleError
from citadelle.evidence.findings import Check, Finding, Rule
from citadelle.evidence.junit import to_junit, write_junit
from citadelle.evidence.sarif import to_sarif, write_sarif
from citadelle.plan.analyzer import AnalyzerResource, Diagnostic, PolicyAnalyzer, PolicyInfo
from citadelle.plan.offline import RecordedResource, Recording
from citadelle.plan.plan import plan_stack

TOOL = "citadelle-gate"
STACK_TYPE = "pulumi:pulumi:Stack"


# --------------------------------------------------------------------------- policy config


def program_tiers(config: StackConfig) -> dict[str, list[str]]:
    """A gated program's own tier CIDRs, when its stack config declares them as Citadelle's does
    (``citadelle:network.tiers.<tier>.cidr``): its tiers are what its own config says."""
    try:
        network = json.loads(config.values.get("citadelle:network") or "{}")
    except ValueError:
        return {}
    tiers = network.get("tiers") if isinstance(network, dict) else None
    return {str(t): [str(v["cidr"])] for t, v in (tiers or {}).items()
            if isinstance(v, dict) and v.get("cidr")} if isinstance(tiers, dict) else {}


def load_policy_config(path: Path) -> dict[str, Any]:
    """A policy-pack config file (JSON or YAML): policy names to their settings."""
    return load_yaml(path)


# --------------------------------------------------------------------------- engine shapes


def _split_ref(ref: str) -> tuple[str, str]:
    urn, _, resource_id = ref.rpartition("::")
    return urn, resource_id


def _stack_urn(recording: Recording) -> str:
    known = {r.urn for r in recording.resources}
    for resource in recording.resources:
        if resource.parent and resource.parent not in known:
            return resource.parent
    return f"urn:pulumi:{recording.stack}::{recording.project}::{STACK_TYPE}::" \
           f"{recording.project}-{recording.stack}"


def engine_resources(
    recording: Recording,
) -> tuple[list[AnalyzerResource], list[AnalyzerResource]]:
    """What the engine sends for each registration (Analyze: inputs) and at the end
    (AnalyzeStack: final state, i.e. inputs plus the provider's outputs and the id)."""
    by_urn = recording.by_urn()
    stack_urn = _stack_urn(recording)
    stack_name = stack_urn.rpartition("::")[2]

    def provider_of(resource: RecordedResource) -> AnalyzerResource | None:
        if not resource.custom or resource.type.startswith("pulumi:providers:"):
            return None
        if resource.provider:
            urn, _ = _split_ref(resource.provider)
            declared = by_urn.get(urn)
            if declared is not None:
                return AnalyzerResource(urn=urn, type=declared.type, name=declared.name,
                                        properties=declared.inputs)
        # No explicit provider: the engine would use (or refuse) the package's default one.
        package = resource.type.split(":", 1)[0]
        urn = (f"urn:pulumi:{recording.stack}::{recording.project}"
               f"::pulumi:providers:{package}::default")
        return AnalyzerResource(urn=urn, type=f"pulumi:providers:{package}", name="default",
                                properties={})

    root_inputs = AnalyzerResource(urn=stack_urn, type=STACK_TYPE, name=stack_name,
                                   properties={})
    root_state = AnalyzerResource(urn=stack_urn, type=STACK_TYPE, name=stack_name,
                                  properties=recording.stack_outputs)
    analyze = [root_inputs]
    final = [root_state]
    for resource in recording.resources:
        provider = provider_of(resource)
        parent = resource.parent or ""
        analyze.append(AnalyzerResource(
            urn=resource.urn, type=resource.type, name=resource.name,
            properties=resource.inputs, parent=parent, provider=provider,
        ))
        state = {**resource.inputs, **resource.outputs}
        if resource.custom and resource.id:
            state["id"] = resource.id
        final.append(AnalyzerResource(
            urn=resource.urn, type=resource.type, name=resource.name, properties=state,
            parent=parent, dependencies=tuple(resource.dependencies), provider=provider,
        ))
    return analyze, final


# --------------------------------------------------------------------------- the gate


@dataclass
class GateResult:
    environment: str
    program: Path
    pack: str
    rules: list[Rule]
    findings: list[Finding]
    checks: list[Check]
    resources: int
    duration_s: float
    messages: list[str] = field(default_factory=list)

    @property
    def violations(self) -> list[Finding]:
        return [f for f in self.findings if f.blocking]

    @property
    def advisories(self) -> list[Finding]:
        return [f for f in self.findings if not f.blocking]

    @property
    def exit_code(self) -> int:
        return 1 if self.violations else 0

    def policies_violated(self) -> list[str]:
        return sorted({f.rule_id for f in self.violations})


def rule_for(policy: PolicyInfo, enforcement: str) -> Rule:
    return Rule(
        id=policy.name,
        description=policy.description,
        severity=policy.severity or "medium",
        blocking=enforcement in ("mandatory", "remediate"),
        remediation=policy.remediation,
        snc=policy.snc,
        bp028=policy.bp028,
    )


def _message(diagnostic: Diagnostic, policy: PolicyInfo) -> str:
    text = diagnostic.message
    if text.startswith(policy.description):
        text = text[len(policy.description):].lstrip("\n") or policy.description
    if diagnostic.remediated:
        summary = policy.description.split(" (")[0]
        text = (f"violated ({summary.lower()}); the Pulumi engine would rewrite the inputs "
                "(remediation): fix the source")
    return text


def run_gate(
    recording: Recording,
    analyzer: PolicyAnalyzer,
    policy_config: Mapping[str, Any],
    stack_config: Mapping[str, str] | None = None,
    program: Path | None = None,
) -> GateResult:
    """Analyse one recorded program with a started pack."""
    start = time.perf_counter()
    effective = analyzer.effective_config(policy_config)
    analyzer.configure_stack(recording.project, recording.stack, stack_config or {})
    analyzer.configure(effective)
    levels = {name: str(entry["enforcementLevel"]) for name, entry in effective.items()}
    policies = {p.name: p for p in analyzer.info if levels[p.name] != "disabled"}
    rules = [rule_for(p, levels[p.name]) for p in policies.values()]
    blocking = {r.id: r.blocking for r in rules}
    # Remediate only reaches the types a remediation policy names (the others would answer
    # nothing, as they do when the engine asks).
    remediated_types = {t for name, p in policies.items() if levels[name] == "remediate"
                        for t in p.checks}

    analyze, final = engine_resources(recording)
    by_urn = {r.urn: r for r in analyze}
    checks: dict[tuple[str, str], Check] = {}
    diagnostics: list[Diagnostic] = []

    def check_for(policy: str, urn: str) -> Check:
        resource = by_urn.get(urn)
        key = (policy, urn)
        if key not in checks:
            checks[key] = Check(
                rule_id=policy,
                subject=resource.name if resource else recording.stack,
                subject_type=resource.type if resource else STACK_TYPE,
                uri=urn,
            )
        return checks[key]

    for resource in analyze:
        if resource.type in remediated_types:
            diagnostics += analyzer.remediate(resource)
    for resource, result in zip(analyze, analyzer.analyze_many(analyze), strict=True):
        diagnostics += result.diagnostics
        for policy in policies.values():
            # A remediation-only policy answers "not applicable" to Analyze: it checked the
            # resources of its types in the Remediate pass.
            remediation = levels[policy.name] == "remediate" and resource.type in policy.checks
            if policy.kind == "resource" and (
                policy.name not in result.not_applicable or remediation
            ):
                check_for(policy.name, resource.urn)
    stack_result = analyzer.analyze_stack(final)
    diagnostics += stack_result.diagnostics
    for policy in policies.values():
        if policy.kind != "stack" or policy.name in stack_result.not_applicable:
            continue
        subjects = [r for r in analyze if r.type in policy.checks] if policy.checks else []
        for resource in subjects:
            check_for(policy.name, resource.urn)
        if not subjects:
            check_for(policy.name, by_urn[final[0].urn].urn)

    findings = []
    for diagnostic in diagnostics:
        known = policies.get(diagnostic.policy)
        if known is None:
            continue
        policy = known
        urn = diagnostic.urn or final[0].urn
        check = check_for(policy.name, urn)
        finding = Finding(
            rule_id=policy.name,
            message=_message(diagnostic, policy),
            subject=check.subject,
            subject_type=check.subject_type,
            uri=urn,
            blocking=blocking[policy.name] and diagnostic.enforcement != "advisory",
        )
        check.findings.append(finding)
        findings.append(finding)
    return GateResult(
        environment=recording.stack,
        program=program or paths.PROGRAM_DIR,
        pack=f"{analyzer.pack_name} {pack_version(analyzer.pack_dir)}",
        rules=rules,
        findings=findings,
        checks=sorted(checks.values(), key=lambda c: (c.rule_id, c.subject)),
        resources=len(recording.resources),
        duration_s=time.perf_counter() - start,
        messages=list(analyzer.engine.messages),
    )


def pack_version(pack_dir: Path) -> str:
    """The version the CLI reports: PulumiPolicy.yaml's, not the SDK's placeholder."""
    data = yaml.safe_load((pack_dir / "PulumiPolicy.yaml").read_text(encoding="utf-8")) or {}
    return str(data.get("version", "0.0.1"))


def write_reports(result: GateResult, sarif: Path | None, junit: Path | None) -> None:
    name, _, version = result.pack.partition(" ")
    if sarif is not None:
        write_sarif(sarif, to_sarif(f"{TOOL} ({name})", version or "0.0.1", result.rules,
                                    result.findings))
    if junit is not None:
        tree = to_junit(f"{TOOL} {result.environment}", result.rules, result.checks,
                        result.duration_s)
        write_junit(junit, tree)


def gate_environment(
    env: str,
    *,
    sarif: Path | None = None,
    junit: Path | None = None,
    program: Path | None = None,
    stack_config: Path | None = None,
    policy_config: Path | Mapping[str, Any] | None = None,
    analyzer: PolicyAnalyzer | None = None,
    pack_dir: Path = paths.POLICY_DIR,
) -> GateResult:
    """Gate one environment (or another Pulumi Python program with ``program``).

    Used by ``citadelle deploy`` as its first step: ``result.exit_code`` is 0 (pass) or 1
    (mandatory violations); bad input or a broken program/pack raises CitadelleError (exit 2).
    """
    project_file = (program / "Pulumi.yaml") if program is not None else paths.PROJECT_FILE
    if not project_file.is_file():
        raise CitadelleError(f"{project_file.parent}: no Pulumi.yaml, not a Pulumi project")
    # Another team's program is gated against this project's environment: its own stack
    # config is read as the engine reads it, not validated against Citadelle's schema.
    config = load_stack_config(project_file, env, stack_config)
    if isinstance(policy_config, Path):
        pack_config: Mapping[str, Any] = load_policy_config(policy_config)
    elif policy_config is not None:
        pack_config = policy_config
    else:
        settings_config = projections.policy_config(Environment.load(env).settings)
        tiers = program_tiers(config) if program is not None else {}
        for name in projections.TIERED_POLICIES if tiers else ():
            settings_config[name] = {**settings_config.get(name, {}), "tierCidrs": tiers}
        pack_config = settings_config
    recording = plan_stack(config)
    if analyzer is not None:
        result = run_gate(recording, analyzer, pack_config, config.values, config.program_dir)
    else:
        with PolicyAnalyzer(pack_dir, project=config.project, stack=env) as started:
            result = run_gate(recording, started, pack_config, config.values, config.program_dir)
    write_reports(result, sarif, junit)
    return result


# --------------------------------------------------------------------------- output


def render(result: GateResult) -> str:
    rules = {r.id: r for r in result.rules}
    by_rule: dict[str, list[Finding]] = defaultdict(list)
    for finding in result.findings:
        by_rule[finding.rule_id].append(finding)
    lines = [
        f"citadelle gate {result.environment}: {result.resources} resources, "
        f"{len(result.rules)} policies ({result.pack}, out of process), "
        f"{len(result.checks)} checks in {result.duration_s:.2f} s"
    ]
    order = sorted(by_rule, key=lambda r: (not rules[r].blocking, r))
    for rule_id in order:
        rule = rules[rule_id]
        mark = "FAIL" if rule.blocking else "WARN"
        level = "mandatory" if rule.blocking else "advisory"
        lines.append(f"{mark} {rule.id} [{level}, {rule.severity}] "
                     f"{', '.join(rule.requirements)}")
        for finding in by_rule[rule_id]:
            lines.append(f"  - {finding.subject} ({finding.subject_type}): "
                         f"{finding.message}")
        lines.append(f"    remediation: {rule.remediation}")
    violated = result.policies_violated()
    if violated:
        lines.append(f"Result: FAIL, {len(result.violations)} mandatory violation(s) of "
                     f"{len(violated)} polic{'y' if len(violated) == 1 else 'ies'}, "
                     f"{len(result.advisories)} advisory")
    else:
        lines.append(f"Result: PASS, 0 mandatory violations, {len(result.advisories)} advisory")
    return "\n".join(lines)


def run_pulumi_preview(args: argparse.Namespace) -> int:
    """The same gate through the real CLI: `pulumi preview` with the pack attached, on the
    environment's sovereign backend with the quiet tool-chain environment."""
    if shutil.which("pulumi") is None:
        raise CitadelleError(
            "--engine pulumi needs the Pulumi CLI on PATH (install it from the in-region "
            "mirror, docs/sovereignty.md); without it, run the offline gate: "
            f"citadelle gate {args.env}")
    project_file = (Path(args.program) / "Pulumi.yaml") if args.program else paths.PROJECT_FILE
    env = Environment.load(args.env, project_file=project_file)
    config = load_policy_config(Path(args.policy_config)) if args.policy_config else None
    code = run_pulumi(env, ["preview", "--non-interactive"], pack_config=config)
    return 0 if code == 0 else 1


def _per_env(path: str | None, env: str, several: bool) -> Path | None:
    """The report file of one environment: FILE, or FILE with the env before its suffix when
    several environments are gated at once (gate.sarif -> gate.prod.sarif)."""
    if not path:
        return None
    target = Path(path)
    return target.with_name(f"{target.stem}.{env}{target.suffix}") if several else target


def _handle_gate(args: argparse.Namespace) -> int:
    envs: list[str] = list(dict.fromkeys(args.env))
    if args.engine == "pulumi":
        return max(run_pulumi_preview(argparse.Namespace(**{**vars(args), "env": env}))
                   for env in envs)
    several = len(envs) > 1
    program = Path(args.program) if args.program else None
    # One pack for every environment: started once, configured per environment.
    with PolicyAnalyzer(paths.POLICY_DIR) as analyzer:
        codes = []
        for env in envs:
            sarif, junit = _per_env(args.sarif, env, several), _per_env(args.junit, env, several)
            result = gate_environment(
                env, sarif=sarif, junit=junit, program=program,
                stack_config=Path(args.stack_config) if args.stack_config else None,
                policy_config=Path(args.policy_config) if args.policy_config else None,
                analyzer=analyzer,
            )
            print(render(result))
            for label, target in (("SARIF", sarif), ("JUnit", junit)):
                if target:
                    print(f"{label} written to {target}")
            codes.append(result.exit_code)
    return max(codes)


def _handle_policy_config(args: argparse.Namespace) -> int:
    config = projections.policy_config(Environment.load(args.env).settings)
    if args.out:
        write_policy_config(config, Path(args.out))
        print(f"policy-pack config for {args.env} written to {args.out}; use it with "
              f"`pulumi preview -s {args.env} --policy-pack policies/ "
              f"--policy-pack-config {args.out}`")
    else:
        print(json.dumps(config, indent=2, sort_keys=True))
    return 0


def register(subparsers: Any) -> None:
    gate = subparsers.add_parser(
        "gate",
        help="run the SecNumCloud policy pack over an environment offline (exit 1 on violation)",
    )
    gate.add_argument("env", nargs="+",
                      help="environment(s) (stack): dev, mirror, prod; several share one pack")
    gate.add_argument("--program", metavar="DIR",
                      help="another Pulumi Python project to gate (its Pulumi.yaml)")
    gate.add_argument("--stack-config", metavar="FILE",
                      help="stack config file for the program (default: its Pulumi.<env>.yaml)")
    gate.add_argument("--policy-config", metavar="FILE",
                      help="policy-pack config (JSON/YAML; default: built from the env's config)")
    gate.add_argument("--sarif", metavar="FILE", help="write SARIF 2.1.0 results")
    gate.add_argument("--junit", metavar="FILE", help="write JUnit XML (policy x resource)")
    gate.add_argument("--engine", choices=("offline", "pulumi"), default="offline",
                      help="offline (default) or the real CLI's `pulumi preview --policy-pack`")
    gate.set_defaults(func=_handle_gate)

    config = env_command(
        subparsers, "policy-config",
        "write the policy-pack config of an environment (for pulumi --policy-pack-config)")
    config.add_argument("--out", metavar="FILE", help="write to FILE instead of stdout")
    config.set_defaults(func=_handle_policy_config)
