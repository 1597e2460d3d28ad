"""`citadelle render ENV [--out DIR]`: every Kubernetes object the program declares, as YAML.

Offline, the recorded registrations already are the manifests (pulumi-kubernetes sends
apiVersion, kind, metadata and the body as the resource's inputs), so they are written one file
per object with the layout and file names pulumi-kubernetes' ``renderYamlToDirectory`` uses:
``0-crd/`` for CustomResourceDefinitions, ``1-manifest/`` for everything else, each file named
``<apiVersion>-<kind>-<namespace|default>-<name>.yaml``. With the Pulumi CLI, setting
``citadelle:kubernetes.renderDir`` makes the provider write the same tree at ``pulumi up``
instead of applying to a cluster. Cluster-side tools (kubeconform, conftest, kube-linter) can
check either.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml

from citadelle import paths
from citadelle.environment import env_command
from citadelle.errors import CitadelleError
from citadelle.plan.offline import SECRET_MASK, Recording, is_secret
from citadelle.plan.plan import plan_environment

CRD_DIR = "0-crd"
MANIFEST_DIR = "1-manifest"
_HEAD = ("apiVersion", "kind", "metadata")


def is_kubernetes_object(type_token: str) -> bool:
    return type_token.startswith("kubernetes:")


def _plain(value: Any) -> Any:
    """Wire values back to manifest values: integral numbers as ints, secrets never in clear."""
    if is_secret(value):
        return SECRET_MASK
    if isinstance(value, dict):
        # Sorted keys: the wire's map order is not the declaration order; diffs stay stable.
        return {k: _plain(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def manifest_of(inputs: dict[str, Any]) -> dict[str, Any]:
    """apiVersion, kind, metadata first (as kubectl prints them), the rest sorted."""
    plain = _plain(inputs)
    ordered = {k: plain[k] for k in _HEAD if k in plain}
    ordered.update({k: plain[k] for k in sorted(plain) if k not in _HEAD})
    return ordered


def render_path(manifest: dict[str, Any]) -> str:
    """pulumi-kubernetes' renderPathForResource, relative to the render directory."""
    metadata = manifest.get("metadata") or {}
    namespace = metadata.get("namespace") or "default"
    api_version = str(manifest["apiVersion"]).replace("/", "_").replace(":", "_")
    name = f"{api_version}-{str(manifest['kind']).lower()}-{namespace}-{metadata['name']}.yaml"
    folder = CRD_DIR if manifest["kind"] == "CustomResourceDefinition" else MANIFEST_DIR
    return f"{folder}/{name}"


def manifests(recording: Recording) -> dict[str, dict[str, Any]]:
    """Relative path -> manifest, for every Kubernetes object of the recording."""
    result: dict[str, dict[str, Any]] = {}
    for resource in recording.resources:
        if not resource.custom or not is_kubernetes_object(resource.type):
            continue
        manifest = manifest_of(resource.inputs)
        path = render_path(manifest)
        if path in result:
            raise CitadelleError(f"two Kubernetes objects render to {path}: {resource.name}")
        result[path] = manifest
    return dict(sorted(result.items()))


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (embedded config files) as literal blocks, readable in review."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump(manifest: dict[str, Any]) -> str:
    return yaml.dump(manifest, Dumper=_Dumper, sort_keys=False, default_flow_style=False)


def write_manifests(objects: dict[str, dict[str, Any]], out: Path) -> None:
    """Write the tree; stale files of an earlier render are removed, nothing else is touched."""
    for folder in (CRD_DIR, MANIFEST_DIR):
        (out / folder).mkdir(parents=True, exist_ok=True)
        for stale in (out / folder).glob("*.yaml"):
            if f"{folder}/{stale.name}" not in objects:
                stale.unlink()
    for relative, manifest in objects.items():
        text = dump(manifest)
        target = out / relative
        if not target.is_file() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")


def _handle(args: argparse.Namespace) -> int:
    recording = plan_environment(args.env)
    objects = manifests(recording)
    out = Path(args.out) if args.out else paths.RUNS_DIR / "render" / args.env
    if out.exists() and not out.is_dir():
        raise CitadelleError(f"--out {out}: exists and is not a directory")
    write_manifests(objects, out)
    kinds: dict[str, int] = {}
    for manifest in objects.values():
        kinds[manifest["kind"]] = kinds.get(manifest["kind"], 0) + 1
    summary = ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))
    print(f"citadelle render {args.env}: {len(objects)} manifests in {out} ({summary})")
    return 0


def register(subparsers: Any) -> None:
    parser = env_command(
        subparsers, "render",
        "write every Kubernetes object an environment declares as YAML manifests")
    parser.add_argument(
        "--out", metavar="DIR", help="output directory (default: runs/render/ENV)"
    )
    parser.set_defaults(func=_handle)
