"""`citadelle parity A B`: are two environments structurally identical?

During the migration's parallel run the mirror must keep prod's structure. Both environments are
declared offline (``citadelle plan``) and reduced to structural facts, compared as multisets:

- ``resources``: resource types counted per component type and tier;
- ``rules``: security group rule shapes (tier, direction, protocol, ports, peer tier, or
  ``cidr`` / ``world`` for address peers);
- ``public``: floating IPs by the tier they expose;
- ``encryption``: volumes by tier and whether their type is the encrypted one, the encrypted
  type's spec, Barbican keys (purpose, algorithm, length, who may read) and which resources
  reference each key, object-storage ACLs;
- ``kubernetes``: the in-cluster baseline (kind, namespace, name and its security content:
  Pod Security labels, NetworkPolicy shape, role bindings, quotas' keys), with workspace
  namespaces folded into ``ws-*``.

Names, CIDRs, sizes, flavors, zones and image names are never compared. Counts may differ only
for the patterns the stacks allow in ``parity:allowCounts`` (a list of fnmatch patterns over
``component/tier/type``, e.g. ``citadelle:compute:ComputeFleet/app/*``), set in either stack
file; the types must still be present on both sides.

``--data`` compares the data instead: two object manifests (citadelle.migrate.dataparity).
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from citadelle import paths
from citadelle.environment.stackconfig import load_stack_config
from citadelle.errors import CitadelleError
from citadelle.plan.offline import RecordedResource, Recording, is_secret
from citadelle.plan.plan import plan_stack, short_type, tiers

CATEGORIES = ("resources", "rules", "public", "encryption", "kubernetes")
ALLOW_KEY = "parity:allowCounts"
_WS_RE = re.compile(r"\bws-[a-z0-9-]+")
_SECURITY_LABELS = ("pod-security.kubernetes.io/",)

Fact = tuple[str, ...]


@dataclass
class Drift:
    category: str
    fact: Fact
    a: int
    b: int

    def describe(self, a: str, b: str) -> str:
        what = " ".join(self.fact)
        if self.a and self.b:
            return f"[{self.category}] {what}: {a} has {self.a}, {b} has {self.b}"
        only, count = (a, self.a) if self.a else (b, self.b)
        return f"[{self.category}] only in {only}: {what}" + (f" (x{count})" if count > 1 else "")


@dataclass
class ParityReport:
    a: str
    b: str
    drift: list[Drift] = field(default_factory=list)
    compared: dict[str, int] = field(default_factory=dict)
    allowed: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if self.drift else 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "identical": not self.drift,
            "compared": self.compared,
            "allowedCountPatterns": self.allowed,
            "drift": [{"category": d.category, "fact": list(d.fact), self.a: d.a, self.b: d.b}
                      for d in self.drift],
        }

    def render(self) -> str:
        totals = ", ".join(f"{n} {c}" for c, n in self.compared.items())
        lines = [f"citadelle parity {self.a} {self.b}: compared {totals}"]
        if self.allowed:
            lines.append(f"counts allowed to differ: {', '.join(self.allowed)}")
        lines += [f"  {d.describe(self.a, self.b)}" for d in self.drift]
        lines.append(f"Result: DRIFT, {len(self.drift)} difference(s)" if self.drift
                     else "Result: IDENTICAL structure")
        return "\n".join(lines)


def _ports(inputs: dict[str, Any]) -> str:
    low, high = int(inputs.get("portRangeMin") or 0), int(inputs.get("portRangeMax") or 0)
    if not low and not high:
        return "all"
    return str(low) if low == high else f"{low or 1}-{high or 65535}"


def _peer(inputs: dict[str, Any], tier_by_id: dict[str, str]) -> str:
    group = inputs.get("remoteGroupId")
    if group:
        return f"tier:{tier_by_id.get(group, '?')}"
    prefix = str(inputs.get("remoteIpPrefix") or "")
    return "world" if prefix in ("", "0.0.0.0/0", "::/0") else "cidr"


def _fold(text: str) -> str:
    return _WS_RE.sub("ws-*", text)


def _k8s_security(resource: RecordedResource) -> str:
    inputs = resource.inputs
    kind = inputs.get("kind", "")
    meta = inputs.get("metadata") or {}
    if kind == "Namespace":
        labels = meta.get("labels") or {}
        return ",".join(f"{k}={v}" for k, v in sorted(labels.items())
                        if k.startswith(_SECURITY_LABELS) and not k.endswith("-version"))
    if kind == "NetworkPolicy":
        spec = inputs.get("spec") or {}
        return json.dumps({
            "podSelector": spec.get("podSelector"), "policyTypes": spec.get("policyTypes"),
            "ingress": len(spec.get("ingress") or []), "egress": len(spec.get("egress") or []),
        }, sort_keys=True)
    if kind in ("RoleBinding", "ClusterRoleBinding"):
        subjects = sorted(str(s.get("kind")) for s in inputs.get("subjects") or [])
        return f"role={(inputs.get('roleRef') or {}).get('name')} subjects={subjects}"
    if kind in ("ResourceQuota", "LimitRange"):
        spec = inputs.get("spec") or {}
        return f"keys={sorted((spec.get('hard') or {}).keys())}" if kind == "ResourceQuota" \
            else f"limits={len(spec.get('limits') or [])}"
    return ""


def _key_uses(resource: RecordedResource, key_refs: dict[str, str]) -> list[Fact]:
    """The Barbican keys (by purpose) a resource's inputs reference."""
    text = json.dumps(resource.inputs)
    kind = short_type(resource.type)
    name = _fold(str((resource.inputs.get("metadata") or {}).get("name", "-"))) \
        if resource.type.startswith("kubernetes:") else "-"
    return [("key-use", kind, name, purpose) for ref, purpose in key_refs.items() if ref in text]


def facts(recording: Recording) -> dict[str, Counter[Fact]]:
    """The structural facts of one recorded environment."""
    by_urn = recording.by_urn()
    tier_of = tiers(recording)
    tier_by_id = {r.id: tier_of.get(r.urn, "-") for r in recording.resources if r.id}
    result: dict[str, Counter[Fact]] = {c: Counter() for c in CATEGORIES}
    encrypted_types = {
        str(r.inputs.get("name")) for r in recording.of_type(
            "openstack:blockstorage/volumeTypeV3:VolumeTypeV3")
        if (r.inputs.get("extraSpecs") or {}).get("citadelle:encryption_provider")
    }
    # Key usage: which resources reference which Barbican key (by purpose).
    key_refs = {str(r.outputs.get("secretRef")): _fold(str((r.inputs.get("metadata") or {})
                                                           .get("purpose", "-")))
                for r in recording.of_type("openstack:keymanager/secretV1:SecretV1")
                if r.outputs.get("secretRef")}
    vip_ports = {str(r.outputs.get("vipPortId")): tier_of.get(r.urn, "-")
                 for r in recording.of_type("openstack:loadbalancer/loadBalancer:LoadBalancer")}
    for resource in recording.resources:
        if not resource.custom:
            continue
        parent = by_urn.get(resource.parent or "")
        component = parent.type if parent is not None else "(stack)"
        tier = tier_of.get(resource.urn, "-")
        kind = short_type(resource.type)
        result["resources"][(component, tier, kind)] += 1
        inputs = resource.inputs
        if kind == "SecGroupRule":
            group_tier = tier_by_id.get(str(inputs.get("securityGroupId")), "?")
            result["rules"][(group_tier, str(inputs.get("direction")),
                             str(inputs.get("protocol") or "any"), _ports(inputs),
                             _peer(inputs, tier_by_id))] += 1
        elif kind in ("FloatingIp", "FloatingIpAssociate"):
            port = str(inputs.get("portId") or "")
            target = vip_ports.get(port) or tier_by_id.get(port)
            if kind == "FloatingIp" and not port:
                continue  # counted through its association
            result["public"][(kind, target or "unattached")] += 1
        elif kind == "Volume":
            encrypted = str(inputs.get("volumeType")) in encrypted_types
            result["encryption"][("volume", tier,
                                  "encrypted" if encrypted else "NOT encrypted")] += 1
        elif kind == "VolumeTypeV3":
            specs = inputs.get("extraSpecs") or {}
            spec = tuple(f"{k}={v}" for k, v in sorted(specs.items()))
            result["encryption"][("volume-type", *spec)] += 1
        elif kind == "SecretV1":
            read = (inputs.get("acl") or {}).get("read") or {}
            purpose = _fold(str((inputs.get("metadata") or {}).get("purpose", "-")))
            result["encryption"][("key", purpose, str(inputs.get("algorithm")),
                                  str(int(inputs.get("bitLength") or 0)),
                                  "payload secret" if is_secret(inputs.get("payload"))
                                  else "payload NOT secret",
                                  f"projectAccess={read.get('projectAccess')}",
                                  f"readers={len(read.get('users') or [])}")] += 1
        elif kind == "Container" and resource.type.startswith("openstack:objectstorage"):
            public = any(str(inputs.get(k) or "").startswith((".r:", "*:*"))
                         for k in ("containerRead", "containerWrite"))
            result["encryption"][("container", "public" if public else "private",
                                  f"versioning={inputs.get('versioning')}")] += 1
        result["encryption"].update(_key_uses(resource, key_refs))
        if resource.type.startswith("kubernetes:") and "kind" in inputs:
            meta = inputs.get("metadata") or {}
            result["kubernetes"][(str(inputs.get("kind")),
                                  _fold(str(meta.get("namespace", "-"))),
                                  _fold(str(meta.get("name", "-"))),
                                  _k8s_security(resource))] += 1
    return result


def compare(a: Recording, b: Recording, allow: Iterable[str] = ()) -> ParityReport:
    patterns = sorted(set(allow))
    report = ParityReport(a=a.stack, b=b.stack, allowed=patterns)
    facts_a, facts_b = facts(a), facts(b)
    for category in CATEGORIES:
        left, right = facts_a[category], facts_b[category]
        report.compared[category] = sum(left.values()) + sum(right.values())
        for fact in sorted(set(left) | set(right)):
            n_a, n_b = left.get(fact, 0), right.get(fact, 0)
            if n_a == n_b:
                continue
            label = "/".join(fact)
            if n_a and n_b and category == "resources" and any(fnmatch(label, p)
                                                              for p in patterns):
                continue
            report.drift.append(Drift(category, fact, n_a, n_b))
    return report


def _allowances(values: dict[str, str]) -> list[str]:
    raw = values.get(ALLOW_KEY)
    if raw is None:
        return []
    try:
        decoded = json.loads(raw) if isinstance(raw, str) and raw.strip()[:1] == "[" else raw
    except json.JSONDecodeError:
        decoded = None
    if not isinstance(decoded, list) or not all(isinstance(p, str) for p in decoded):
        raise CitadelleError(f"{ALLOW_KEY}: expected a list of patterns (got {raw!r})")
    return decoded


def _load(source: str) -> tuple[Recording, list[str]]:
    """An environment name (declared offline) or a recorded graph (`citadelle plan --json`)."""
    if source.endswith(".json"):
        path = Path(source)
        try:
            return Recording.from_dict(json.loads(path.read_text(encoding="utf-8"))), []
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise CitadelleError(f"{path}: not a recorded graph ({err})") from None
    config = load_stack_config(paths.PROJECT_FILE, source)
    return plan_stack(config), _allowances(config.values)


def parity(a: str, b: str) -> ParityReport:
    recording_a, allow_a = _load(a)
    recording_b, allow_b = _load(b)
    return compare(recording_a, recording_b, allow_a + allow_b)


def _handle(args: argparse.Namespace) -> int:
    if args.data:
        from citadelle.migrate import dataparity  # noqa: PLC0415

        code, data = dataparity.data_parity(args.a, args.b)
        print(json.dumps(data, indent=2) if args.json else dataparity.render(data))
        return code
    report = parity(args.a, args.b)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.render())
    return report.exit_code


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "parity",
        help="compare two environments' structure (exit 1 on drift), e.g. parity prod mirror",
    )
    parser.add_argument("a", help="reference environment (or a recorded graph .json)")
    parser.add_argument("b", help="environment that must match it (or a .json)")
    parser.add_argument("--json", action="store_true", help="machine-readable report")
    parser.add_argument("--data", action="store_true", help="compare the object manifests "
                        "(newest verified destination manifest of each environment, or two "
                        "manifest .json files): key, size, SHA-256")
    parser.set_defaults(func=_handle)
