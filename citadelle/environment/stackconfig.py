"""Stack configuration as the Pulumi CLI assembles it, read from the same files.

Project defaults come from ``Pulumi.yaml`` (``config:``; object values under ``value:``), the
environment's values from ``<stackConfigDir>/Pulumi.<stack>.yaml``; a stack value replaces the
project default of the same key. ``secure:`` values cannot be decrypted without the CLI and its
secrets provider, so offline they become clearly marked placeholders, still flagged as secrets.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from citadelle.errors import CitadelleError


@dataclass(frozen=True)
class StackConfig:
    project: str
    stack: str
    program_dir: Path
    values: dict[str, str]  # namespace:key -> value as the engine hands it to programs
    secret_keys: list[str]
    secrets_provider: str | None
    backend_url: str | None


def offline_placeholder(key: str) -> str:
    return f"[offline placeholder for secure value {key}]"


def load_yaml(path: Path) -> dict[str, Any]:
    """A YAML (or JSON) file holding a mapping; one line naming the file on any problem."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CitadelleError(f"{path}: file not found") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise CitadelleError(f"{path}:{where} malformed YAML: {getattr(err, 'problem', err)}") \
            from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise CitadelleError(f"{path}: expected a mapping at the top level")
    return data


def _qualify(key: str, project: str) -> str:
    return key if ":" in key else f"{project}:{key}"


def _wire(value: Any) -> str:
    # YAML dates and the like reach the program as strings, as the Go CLI passes them.
    return value if isinstance(value, str) else json.dumps(value, default=str)


def available_stacks(project_file: Path) -> list[str]:
    project = load_yaml(project_file)
    config_dir = project_file.parent / str(project.get("stackConfigDir", "."))
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in config_dir.glob("Pulumi.*.yaml"))


def load_stack_config(
    project_file: Path, stack: str, stack_file: Path | None = None
) -> StackConfig:
    """Merge project defaults and the stack file into the engine's flat config map."""
    project = load_yaml(project_file)
    name = project.get("name")
    if not isinstance(name, str):
        raise CitadelleError(f"{project_file}: missing project name")
    root = project_file.parent
    main = root / str(project.get("main", "."))
    if stack_file is None:
        config_dir = root / str(project.get("stackConfigDir", "."))
        stack_file = config_dir / f"Pulumi.{stack}.yaml"
        if not stack_file.is_file():
            known = ", ".join(available_stacks(project_file)) or "none"
            raise CitadelleError(
                f"unknown environment {stack!r}: no {stack_file.relative_to(root)} "
                f"(known environments: {known})"
            )
    values: dict[str, str] = {}
    secret_keys: list[str] = []
    for key, entry in (project.get("config") or {}).items():
        full = _qualify(str(key), name)
        if isinstance(entry, dict) and ("value" in entry or "default" in entry):
            values[full] = _wire(entry.get("value", entry.get("default")))
        elif isinstance(entry, dict) and "type" in entry:
            continue  # a schema without default: the stack must set it
        else:
            values[full] = _wire(entry)
    stack_data = load_yaml(stack_file)
    stack_config = stack_data.get("config") or {}
    if not isinstance(stack_config, dict):
        raise CitadelleError(f"{stack_file}: 'config' must be a mapping")
    for key, entry in stack_config.items():
        full = _qualify(str(key), name)
        if isinstance(entry, dict) and set(entry) == {"secure"}:
            values[full] = offline_placeholder(full)
            secret_keys.append(full)
        else:
            values[full] = _wire(entry)
    backend = project.get("backend")
    backend_url = backend.get("url") if isinstance(backend, dict) else None
    provider = stack_data.get("secretsprovider")
    return StackConfig(
        project=name,
        stack=stack,
        program_dir=main,
        values=values,
        secret_keys=secret_keys,
        secrets_provider=provider if isinstance(provider, str) else None,
        backend_url=backend_url if isinstance(backend_url, str) else None,
    )
