"""Offline recordings of the Kubernetes side, per environment and cluster mode, with overrides."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import pytest

from citadelle import paths
from citadelle.environment.stackconfig import StackConfig, load_stack_config, offline_placeholder
from citadelle.errors import CitadelleError
from citadelle.plan.offline import RecordedResource, Recording
from citadelle.plan.plan import plan_stack

ENVIRONMENTS = ("dev", "mirror", "prod")
MODES = ("magnum", "existing")

Values = dict[str, Any]
Mutation = Callable[[Values], None]

_CACHE: dict[tuple[str, str], Recording] = {}


def stack_values(env: str) -> Values:
    """The environment's citadelle:* config, decoded (what the program reads)."""
    config = load_stack_config(paths.PROJECT_FILE, env)
    return {k.removeprefix("citadelle:"): _decode(v) for k, v in config.values.items()
            if k.startswith("citadelle:")}


def _decode(value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


SECURE = object()  # a value set with `pulumi config set --secret`
EXISTING_API_CIDR = "10.250.30.0/28"


def existing_mode(values: Values) -> None:
    values["kubernetes"]["mode"] = "existing"
    # The provider's API endpoint, inside its own network (SecNumCloud provider range).
    values["kubernetes"]["apiServerCidrs"] = [EXISTING_API_CIDR]
    values["kubeconfig"] = SECURE


def configure(env: str, *mutations: Mutation) -> StackConfig:
    """The environment's stack config after ``mutations`` of its decoded values."""
    config = load_stack_config(paths.PROJECT_FILE, env)
    values = stack_values(env)
    for mutate in mutations:
        mutate(values)
    wire = {k: v for k, v in config.values.items() if not k.startswith("citadelle:")}
    secret_keys = list(config.secret_keys)
    for key, value in values.items():
        full = f"citadelle:{key}"
        if value is SECURE:
            # What a `secure:` value of the stack file becomes offline.
            wire[full] = offline_placeholder(full)
            secret_keys.append(full)
        else:
            wire[full] = value if isinstance(value, str) else json.dumps(value)
    return dataclasses.replace(config, values=wire, secret_keys=secret_keys)


def plan(env: str, *mutations: Mutation) -> Recording:
    return plan_stack(configure(env, *mutations))


def recording_for(env: str, mode: str) -> Recording:
    if (env, mode) not in _CACHE:
        _CACHE[(env, mode)] = plan(env, existing_mode) if mode == "existing" else plan(env)
    return _CACHE[(env, mode)]


def refusal(env: str, *mutations: Mutation) -> str:
    """The one-line message a bad config is refused with."""
    with pytest.raises(CitadelleError) as caught:
        plan(env, *mutations)
    message = caught.value.message
    assert "\n" not in message and "Traceback" not in message
    assert caught.value.exit_code == 2
    return message


def kube_objects(recording: Recording) -> list[RecordedResource]:
    return [r for r in recording.resources if r.custom and r.type.startswith("kubernetes:")]


def of_kind(recording: Recording, kind: str) -> list[RecordedResource]:
    return [r for r in kube_objects(recording) if r.inputs["kind"] == kind]


def namespaced(recording: Recording, kind: str, namespace: str) -> list[RecordedResource]:
    return [r for r in of_kind(recording, kind)
            if r.inputs["metadata"].get("namespace") == namespace]


def component(recording: Recording, resource: RecordedResource) -> RecordedResource | None:
    return recording.by_urn().get(resource.parent or "")


def workspace_resources(recording: Recording, workspace_id: str) -> list[RecordedResource]:
    """Everything the workspace's component declares (its children)."""
    by_urn = recording.by_urn()
    owner = next(r for r in recording.resources
                 if r.type == "citadelle:workspaces:Workspace" and r.name.endswith(
                     f"-ws-{workspace_id}"))
    return [r for r in recording.resources
            if r.parent == owner.urn and by_urn.get(r.parent) is owner]
