"""Container images the program declares are pinned by digest, from the allow-listed registry,
and the cluster refuses any other image (the admission policy the program declares)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from citadelle.environment import Environment
from citadelle.plan.plan import plan_environment
from citadelle.sovereignty.scan import image_registry, is_digest_pinned

pytestmark = [pytest.mark.unit, pytest.mark.snc("19.6.c", "14.4.a")]

ENVIRONMENTS = ("dev", "mirror", "prod")
_CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")
_DIGEST = "@sha256:" + "ab" * 32


def images(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(path, image) of every container of every pod spec, at any depth (CronJob included)."""
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{path}.{key}" if path else key
            if key in _CONTAINER_LISTS and isinstance(value, list):
                for i, container in enumerate(value):
                    if isinstance(container, dict) and "image" in container:
                        yield f"{here}[{i}].image", str(container["image"])
            yield from images(value, here)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from images(item, f"{path}[{i}]")


def image_problems(manifests: list[dict[str, Any]], registry: str) -> list[str]:
    problems = []
    for manifest in manifests:
        name = f"{manifest.get('kind')}/{manifest.get('metadata', {}).get('name')}"
        for where, image in images(manifest):
            if not is_digest_pinned(image):
                problems.append(f"{name} {where}: {image} is not pinned by digest")
            if image_registry(image) != registry:
                problems.append(f"{name} {where}: {image} is not from {registry}")
    return problems


_MANIFESTS: dict[str, list[dict[str, Any]]] = {}


def manifests(env: str) -> list[dict[str, Any]]:
    if env not in _MANIFESTS:
        _MANIFESTS[env] = [r.inputs for r in plan_environment(env).resources
                           if r.type.startswith("kubernetes:")]
    return _MANIFESTS[env]


def _registry(env: str) -> str:
    settings = Environment.load(env).settings
    return str(settings.kubernetes.registry)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_declared_images_are_pinned_by_digest_from_the_registry(env):
    assert manifests(env), f"{env} declares no Kubernetes object: is the cluster wired?"
    assert image_problems(manifests(env), _registry(env)) == []


@pytest.mark.parametrize("env", ENVIRONMENTS)
@pytest.mark.parametrize("containers", _CONTAINER_LISTS)
def test_cluster_admits_only_pinned_images_from_the_registry(env, containers):
    registry = _registry(env)
    expressions = [
        v["expression"] for m in manifests(env) if m.get("kind") == "ValidatingAdmissionPolicy"
        for v in m["spec"].get("validations", [])
    ]
    assert any(f"object.spec.{containers}" in e and f"startsWith('{registry}/')" in e
               and "@sha256:" in e for e in expressions), expressions


def _workload(kind: str, image: str) -> dict[str, Any]:
    pod = {"containers": [{"name": "app", "image": image}],
           "initContainers": [{"name": "init", "image": f"registry.citadelle.internal/i{_DIGEST}"}]}
    if kind == "CronJob":
        spec: dict[str, Any] = {"jobTemplate": {"spec": {"template": {"spec": pod}}}}
    elif kind == "Pod":
        spec = pod
    else:
        spec = {"template": {"spec": pod}}
    return {"kind": kind, "metadata": {"name": "w"}, "spec": spec}


@pytest.mark.parametrize("kind", ["Deployment", "StatefulSet", "DaemonSet", "CronJob", "Pod"])
@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("registry.citadelle.internal/platform/app:1.2.3", ["is not pinned by digest"]),
        ("docker.io/library/nginx" + _DIGEST, ["is not from registry.citadelle.internal"]),
        ("nginx:latest", ["is not pinned by digest", "is not from registry.citadelle.internal"]),
        ("registry.citadelle.internal/platform/app" + _DIGEST, []),
    ],
)
def test_image_check_catches_tags_and_foreign_registries(kind, image, expected):
    problems = image_problems([_workload(kind, image)], "registry.citadelle.internal")
    assert [p.split(": ", 1)[1].removeprefix(f"{image} ") for p in problems] == expected
