"""Expected values of the checks: the variables Ansible gives each host, resolved as Ansible does.

Precedence, lowest first (Ansible's own order for what the hardening play uses): role defaults,
inventory group variables (all < group, from ``citadelle inventory``), the playbooks'
``group_vars`` (all < group), inventory host variables, role ``vars/`` (main.yml, then the OS
file). Templated values
(``"{{ bp028_level | default('intermediary') }}"``) are rendered with Jinja2 against the same
variables, so a check compares the host with exactly what the roles were asked to apply.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
import yaml

from citadelle import paths
from citadelle.deploy.waivers import bp028_reference

OS_FAMILY = "Debian"
_MAX_DEPTH = 8


def _yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


@cache
def role_layers(roles_dir: Path = paths.ROLES_DIR) -> tuple[dict[str, Any], dict[str, Any],
                                                             dict[str, str]]:
    """(defaults of every role, vars of every role, variable -> role that declares it)."""
    defaults: dict[str, Any] = {}
    role_vars: dict[str, Any] = {}
    owner: dict[str, str] = {}
    for role in sorted(p for p in roles_dir.iterdir() if (p / "tasks").is_dir()):
        for layer, files in ((defaults, ("defaults/main.yml",)),
                             (role_vars, ("vars/main.yml", f"vars/{OS_FAMILY}.yml"))):
            for name in files:
                for key, value in _yaml(role / name).items():
                    layer[key] = value
                    owner[key] = role.name
    return defaults, role_vars, owner


@cache
def playbook_group_vars(playbooks_dir: Path = paths.PLAYBOOKS_DIR) -> dict[str, dict[str, Any]]:
    directory = playbooks_dir / "group_vars"
    if not directory.is_dir():
        return {}
    return {p.stem: _yaml(p) for p in sorted(directory.glob("*.yml"))}


class Expected(Mapping[str, Any]):
    """One host's variables, rendered on access."""

    def __init__(self, inventory_vars: Mapping[str, Any],
                 host_vars: Mapping[str, Any] | None = None,
                 roles_dir: Path = paths.ROLES_DIR,
                 playbooks_dir: Path = paths.PLAYBOOKS_DIR) -> None:
        defaults, role_vars, self._owner = role_layers(roles_dir)
        groups = list(inventory_vars.get("group_names", []))
        layered = playbook_group_vars(playbooks_dir)
        merged: dict[str, Any] = dict(defaults)
        merged.update(inventory_vars)
        merged.update(layered.get("all", {}))
        for group in groups:
            merged.update(layered.get(group, {}))
        merged.update(host_vars or {})
        merged.update(role_vars)
        self._raw = merged
        self._roles_dir = roles_dir
        # Config files, not HTML: escaping would corrupt them (as Ansible renders them).
        self._env = jinja2.Environment(
            undefined=jinja2.StrictUndefined, autoescape=False)  # noqa: S701
        self._rendered: dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        if key not in self._rendered:
            self._rendered[key] = self._render(self._raw[key], key, 0)
        return self._rendered[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)

    def _context(self, key: str) -> dict[str, Any]:
        context = dict(self._raw)
        role = self._owner.get(key)
        if role is not None:
            context["role_path"] = str(self._roles_dir / role)
        return context

    def _render(self, value: Any, key: str, depth: int) -> Any:
        if depth > _MAX_DEPTH:
            raise ValueError(f"variable {key!r}: templating does not converge")
        if isinstance(value, str) and "{{" in value:
            template = self._env.from_string(value)
            rendered = template.render(self._context(key))
            return self._render(yaml.safe_load(rendered) if rendered.strip() else rendered,
                                key, depth + 1) if rendered != value else rendered
        if isinstance(value, list):
            return [self._render(v, key, depth) for v in value]
        if isinstance(value, dict):
            return {k: self._render(v, key, depth) for k, v in value.items()}
        return value

    def render_template(self, role: str, template: str, **extra: Any) -> str:
        """A role's template rendered for this host (``extra``: facts the role sets itself)."""
        source = (self._roles_dir / role / "templates" / template).read_text(encoding="utf-8")
        context = {**self._raw, "ansible_managed": "", "role_path": str(self._roles_dir / role)}
        for key in self._raw:
            if key.startswith(role + "_"):
                try:
                    context[key] = self[key]
                except jinja2.UndefinedError:
                    continue  # needs gathered facts; the template does not use it here
        context.update(extra)
        return self._env.from_string(source).render(context)

    def level_ids(self, role_prefix: str) -> frozenset[str]:
        """BP-028 ids applicable at ``<role_prefix>_level`` (levels are cumulative)."""
        return applicable_ids(str(self[f"{role_prefix}_level"]))


LEVELS: tuple[str, ...] = ("minimal", "intermediary", "enhanced", "high")


def applicable_ids(level: str) -> frozenset[str]:
    if level not in LEVELS:
        raise ValueError(f"unknown BP-028 level {level!r}; allowed: {', '.join(LEVELS)}")
    allowed = LEVELS[: LEVELS.index(level) + 1]
    return frozenset(rid for rid, rec in bp028_reference().items() if rec["level"] in allowed)
