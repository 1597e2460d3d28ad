"""`citadelle plan ENV`: the environment's resource graph, offline.

Runs the Pulumi program under the recording monitor with the stack's own config files, then
prints the declared resources by component and tier with a count per type. ``--json FILE``
writes the whole recorded graph (inputs as the engine sees them, secrets masked).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from citadelle import paths
from citadelle.environment import env_command
from citadelle.environment.stackconfig import StackConfig, load_stack_config
from citadelle.plan.offline import RecordedResource, Recording, record_program

# Input fields through which a resource belongs to the tier of the resource it references.
_REFERENCES = (
    "networkId",
    "subnetId",
    "securityGroupId",
    "vipSubnetId",
    "portId",
    "instanceId",
    "volumeId",
    "routerId",
    "fixedNetwork",
    "fixedSubnet",
)


def plan_stack(config: StackConfig) -> Recording:
    return record_program(
        config.program_dir, config.project, config.stack, config.values, config.secret_keys
    )


def plan_environment(env: str, project_file: Path = paths.PROJECT_FILE) -> Recording:
    """The offline recording of one of the project's own environments."""
    return plan_stack(load_stack_config(project_file, env))


def short_type(type_token: str) -> str:
    return type_token.rsplit(":", 1)[-1]


def _own_tier(resource: RecordedResource) -> str | None:
    inputs = resource.inputs
    for tag in inputs.get("tags") or []:
        if isinstance(tag, str) and tag.startswith("tier="):
            return tag.removeprefix("tier=")
    metadata = inputs.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("tier"), str):
        return str(metadata["tier"])
    return None


def tiers(recording: Recording) -> dict[str, str]:
    """URN -> tier, following references (subnet -> network, rule -> group, ...)."""
    by_id = recording.by_id()
    result: dict[str, str] = {}

    def resolve(resource: RecordedResource, depth: int = 0) -> str | None:
        if resource.urn in result:
            return result[resource.urn]
        tier = _own_tier(resource)
        if tier is None and depth < 4:
            refs: list[Any] = [resource.inputs.get(k) for k in _REFERENCES]
            refs += [p.get("port") for p in resource.inputs.get("networks") or []]
            refs += [f.get("subnetId") for f in resource.inputs.get("fixedIps") or []]
            for ref in refs:
                target = by_id.get(ref) if isinstance(ref, str) else None
                if target is not None:
                    tier = resolve(target, depth + 1)
                    if tier:
                        break
        if tier:
            result[resource.urn] = tier
        return tier

    for resource in recording.resources:
        resolve(resource)
    return result


def render_tree(recording: Recording) -> str:
    by_urn = recording.by_urn()
    tier_of = tiers(recording)
    groups: dict[str, dict[str, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
    components = [r for r in recording.resources if not r.custom]
    for resource in recording.resources:
        if not resource.custom:
            continue
        parent = by_urn.get(resource.parent or "")
        owner = f"{parent.type} {parent.name}" if parent is not None else "(stack)"
        groups[owner][tier_of.get(resource.urn, "-")][short_type(resource.type)] += 1
    custom = [r for r in recording.resources if r.custom]
    lines = [
        f"citadelle plan {recording.stack}: {len(custom)} resources in {len(components)} "
        "components (offline, recording monitor; nothing was sent to any cloud)"
    ]
    for owner in sorted(groups):
        lines.append(owner)
        for tier in sorted(groups[owner]):
            counts = ", ".join(f"{t} {n}" for t, n in sorted(groups[owner][tier].items()))
            lines.append(f"  {'tier ' + tier if tier != '-' else 'no tier':<15} {counts}")
    totals = Counter(short_type(r.type) for r in custom)
    lines.append("Totals by type:")
    lines += [f"  {t:<24} {n:>5}" for t, n in sorted(totals.items())]
    return "\n".join(lines)


def write_json(recording: Recording, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(recording.to_dict(), indent=2, sort_keys=True) + "\n",
                    encoding="utf-8")


def _handle(args: argparse.Namespace) -> int:
    recording = plan_environment(args.env)
    print(render_tree(recording))
    if args.json:
        write_json(recording, Path(args.json))
        print(f"recorded graph written to {args.json}")
    return 0


def register(subparsers: Any) -> None:
    parser = env_command(
        subparsers, "plan",
        "declare an environment offline and print its resources by component and tier")
    parser.add_argument("--json", metavar="FILE", help="write the recorded graph as JSON")
    parser.set_defaults(func=_handle)
