"""Static contract of the hardening roles: specs vs defaults, naming, dispatch, docs, task ids."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from citadelle.deploy import roledoc
from citadelle.paths import PLAYBOOKS_DIR, REFERENCE_DIR

pytestmark = pytest.mark.unit

ROLES = roledoc.role_dirs()
ROLE_IDS = [r.name for r in ROLES]
BP028 = roledoc.recommendations()
LEVELS = yaml.safe_load((REFERENCE_DIR / "anssi-bp028.yaml").read_text())["meta"]["levels"]
# Plumbing tasks (validation, dispatch, handlers' reloads) carry this prefix instead of an id.
PLUMBING = "Citadelle | "
DISPATCH_KEYS = ("ansible.builtin.import_tasks", "ansible.builtin.include_tasks")
TEMPLATE_ROOTS = ("etc", "usr", "var")


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def spec(role: Path) -> dict[str, Any]:
    data: dict[str, Any] = load(role / "meta" / "argument_specs.yml")["argument_specs"]
    return data


def all_tasks() -> list[tuple[str, str, str]]:
    rows = []
    for role in ROLES:
        for path in roledoc.task_files(role):
            rows += [(role.name, path.name, name) for name in roledoc.task_names(path)]
    return rows


def test_there_are_roles() -> None:
    assert len(ROLES) >= 9, ROLE_IDS


@pytest.mark.parametrize("role", ROLES, ids=ROLE_IDS)
def test_argument_specs_defaults_equal_defaults_file(role: Path) -> None:
    options = spec(role)["main"]["options"]
    defaults = load(role / "defaults" / "main.yml")
    spec_defaults = {k: v["default"] for k, v in options.items() if "default" in v}
    assert spec_defaults == defaults


@pytest.mark.parametrize("role", ROLES, ids=ROLE_IDS)
def test_every_option_has_a_default_or_is_required(role: Path) -> None:
    options = spec(role)["main"]["options"]
    neither = [k for k, v in options.items() if ("default" in v) == bool(v.get("required"))]
    assert neither == []
    assert all(v.get("description") for v in options.values())


@pytest.mark.parametrize("role", ROLES, ids=ROLE_IDS)
def test_validate_entry_point_is_the_main_contract(role: Path) -> None:
    specs = spec(role)
    assert specs["validate"] == specs["main"]


@pytest.mark.parametrize("role", ROLES, ids=ROLE_IDS)
def test_every_variable_is_prefixed_with_the_role_name(role: Path) -> None:
    names = set(spec(role)["main"]["options"])
    for path in sorted((role / "vars").glob("*.yml")):
        names |= set(load(path) or {})
    for path in roledoc.task_files(role):
        for task in load(path) or []:
            names |= set(task.get("ansible.builtin.set_fact", {}))
            if "register" in task:
                names.add(task["register"])
    assert sorted(n for n in names if not n.startswith(role.name + "_")) == []


@pytest.mark.parametrize("role", ROLES, ids=ROLE_IDS)
def test_readme_is_generated_from_the_spec(role: Path) -> None:
    assert (role / "README.md").read_text() == roledoc.render_readme(role), (
        "run: python -m citadelle.deploy.roledoc")


@pytest.mark.parametrize(("role", "file", "name"), all_tasks(),
                         ids=[f"{r}/{f}/{n[:40]}" for r, f, n in all_tasks()])
def test_task_name_cites_an_existing_bp028_id(role: str, file: str, name: str) -> None:
    match = roledoc.TASK_ID.match(name)
    if match is None:
        assert name.startswith(PLUMBING), f"{name!r} neither cites R<n> nor is plumbing"
        return
    ids = match.group(1).split(", ")
    assert [i for i in ids if i not in BP028] == []


@pytest.mark.parametrize("role", ROLES, ids=ROLE_IDS)
def test_main_only_dispatches_with_a_flag_and_tags_per_concern(role: Path) -> None:
    entries = load(role / "tasks" / "main.yml")
    defaults = load(role / "defaults" / "main.yml")
    assert entries[0][DISPATCH_KEYS[0]] == "validate.yml"
    assert "always" in entries[0]["tags"]
    for entry in entries:
        assert set(entry) - {"name", "when", "tags", *DISPATCH_KEYS} == set(), entry
    concerns = entries[1:]
    assert concerns, "a role has at least one concern"
    flags = [str(e["when"]).split()[0] for e in concerns]
    assert all(re.fullmatch(rf"{role.name}_[a-z0-9_]+_enabled", f) for f in flags), flags
    assert all(isinstance(defaults[f], bool) for f in flags)
    assert len(set(flags)) == len(flags)
    tags = [e["tags"] for e in concerns]
    assert all(t[0] == role.name and len(t) == 2 for t in tags), tags
    assert [t[1] for t in tags] == [f.removesuffix("_enabled") for f in flags]


@pytest.mark.parametrize("role", ROLES, ids=ROLE_IDS)
def test_templates_mirror_target_paths(role: Path) -> None:
    templates = [p.relative_to(role / "templates") for p in (role / "templates").rglob("*")
                 if p.is_file()] if (role / "templates").is_dir() else []
    assert [t for t in templates if t.parts[0] not in TEMPLATE_ROOTS or t.suffix != ".j2"] == []


@pytest.mark.parametrize("role", ROLES, ids=ROLE_IDS)
def test_os_specifics_live_in_vars(role: Path) -> None:
    assert (role / "vars" / "Debian.yml").is_file()
    validate = (role / "tasks" / "validate.yml").read_text()
    assert "ansible_facts['os_family'] }}.yml" in validate


@pytest.mark.parametrize("role", ROLES, ids=ROLE_IDS)
def test_level_option_offers_the_reference_levels(role: Path) -> None:
    level = spec(role)["main"]["options"][f"{role.name}_level"]
    assert " < ".join(level["choices"]) in LEVELS
    assert load(role / "vars" / "main.yml")[f"{role.name}_levels"] == level["choices"]


def test_bastion_forwards_tcp_for_proxyjump_only() -> None:
    assert load(PLAYBOOKS_DIR / "group_vars" / "bastion.yml") == {
        "bp028_ssh_allow_tcp_forwarding": "local"}


@pytest.mark.parametrize("playbook", ["bastion", "gateway", "node", "site"])
def test_node_role_playbooks_import_the_hardening_play(playbook: str) -> None:
    plays = load(PLAYBOOKS_DIR / f"{playbook}.yml")
    assert plays[0]["ansible.builtin.import_playbook"] == "harden.yml"
    hosts = plays[0]["vars"]["citadelle_hosts"].split(":")
    assert hosts == (["bastion", "gateway", "node"] if playbook == "site" else [playbook])


def test_hardening_play_runs_every_role() -> None:
    play = load(PLAYBOOKS_DIR / "harden.yml")[0]
    assert sorted(play["roles"]) == ROLE_IDS
