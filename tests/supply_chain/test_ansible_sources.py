"""Ansible content comes only from the pinned `ansible` package; packages only from the mirror."""

from __future__ import annotations

import configparser
import importlib.metadata
import json
import re
import sysconfig
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from citadelle import paths
from citadelle.environment.toolchain import quiet_env
from citadelle.sovereignty.secretscan import repo_files

pytestmark = [pytest.mark.unit, pytest.mark.snc("12.11.a", "19.6.c"), pytest.mark.bp028("R59")]

_FQCN = re.compile(r"^[a-z0-9_]+\.[a-z0-9_]+\.[a-z0-9_]+$")
COLLECTIONS_ROOT = Path(sysconfig.get_paths()["purelib"]) / "ansible_collections"


def _ansible_files() -> list[Path]:
    return sorted([*paths.ROLES_DIR.glob("*/tasks/*.yml"), *paths.ROLES_DIR.glob(
        "*/handlers/*.yml"), *paths.PLAYBOOKS_DIR.glob("*.yml")])


def _module_names(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(key, str) and _FQCN.match(key):
                yield key
            yield from _module_names(value)
    elif isinstance(node, list):
        for item in node:
            yield from _module_names(item)


def _collections_used() -> dict[str, list[str]]:
    used: dict[str, list[str]] = {}
    for path in _ansible_files():
        for name in _module_names(yaml.safe_load(path.read_text(encoding="utf-8"))):
            collection = name.rsplit(".", 1)[0]
            used.setdefault(collection, []).append(f"{path.relative_to(paths.REPO_ROOT)}: {name}")
    return used


def test_roles_and_playbooks_name_their_modules_fully():
    used = _collections_used()
    assert "ansible.builtin" in used, "no FQCN module found: is the role layout still read?"


_USED = sorted(_collections_used())


@pytest.mark.parametrize("collection", [c for c in _USED if c != "ansible.builtin"])
def test_collection_ships_with_the_pinned_ansible_package(collection):
    namespace, name = collection.split(".")
    manifest = COLLECTIONS_ROOT / namespace / name / "MANIFEST.json"
    assert manifest.is_file(), (
        f"{collection} is not in the pinned ansible package ({COLLECTIONS_ROOT}); "
        "Galaxy installs are not allowed")
    assert json.loads(manifest.read_text())["collection_info"]["name"] == name


def test_the_ansible_package_is_the_pinned_one():
    pins = tomllib.loads((paths.REPO_ROOT / "pyproject.toml").read_text())["project"][
        "dependencies"]
    pinned = next(p.split("==")[1] for p in pins if p.startswith("ansible=="))
    assert importlib.metadata.version("ansible") == pinned
    assert COLLECTIONS_ROOT.is_dir()


def test_no_galaxy_requirements_file():
    requirement_files = [p for p in repo_files()
                         if p.name in ("requirements.yml", "requirements.yaml")
                         or "collections" in p.relative_to(paths.REPO_ROOT).parts[:1]]
    assert requirement_files == []


def test_ansible_cfg_names_no_galaxy_server_nor_outside_collections():
    config = configparser.ConfigParser(interpolation=None)
    config.read(paths.REPO_ROOT / "ansible.cfg")
    assert not config.has_section("galaxy")
    defaults = dict(config.items("defaults")) if config.has_section("defaults") else {}
    assert "galaxy_server" not in defaults and "galaxy_server_list" not in defaults
    for key in ("collections_path", "collections_paths"):
        for entry in filter(None, defaults.get(key, "").split(":")):
            resolved = (paths.REPO_ROOT / Path(entry).expanduser()).resolve()
            assert resolved.is_relative_to(paths.REPO_ROOT / ".venv"), f"{key}: {entry}"


def test_ansible_lint_stays_offline():
    config = yaml.safe_load((paths.REPO_ROOT / ".ansible-lint").read_text())
    assert config.get("offline") is True


def test_quiet_env_limits_collections_to_the_pinned_package():
    env = quiet_env({})
    assert Path(env["ANSIBLE_COLLECTIONS_PATH"]) / "ansible_collections" == COLLECTIONS_ROOT
    assert env["ANSIBLE_GALAXY_SERVER"].endswith(".invalid")


# --------------------------------------------------------------------------- the package mirror

_SOURCES = sorted(paths.ROLES_DIR.glob("*/templates/**/*.sources.j2")) + sorted(
    paths.ROLES_DIR.glob("*/templates/**/*.list.j2"))
_MIRROR_VARIABLES = ("bp028_packages_mirror_url", "bp028_packages_security_mirror_url")


def test_the_roles_manage_apt_sources():
    assert _SOURCES, "no apt sources template under roles/*/templates"


@pytest.mark.parametrize("template", _SOURCES, ids=lambda p: p.name)
def test_apt_sources_come_only_from_the_mirror_variables(template):
    lines = template.read_text().splitlines()
    uris = [line.split(":", 1)[1].strip() for line in lines if line.startswith("URIs:")]
    assert [line for line in lines if line.startswith(("deb ", "deb-src "))] == []
    assert uris
    for uri in uris:
        assert re.fullmatch(r"\{\{ (bp028_packages_mirror_url|bp028_packages_security_mirror_url)"
                            r" \}\}", uri), f"{template.name}: URIs: {uri}"


@pytest.mark.parametrize("variable", sorted(_MIRROR_VARIABLES))
def test_mirror_variables_have_no_default_and_are_required(variable):
    role = paths.ROLES_DIR / "bp028_packages"
    defaults = yaml.safe_load((role / "defaults" / "main.yml").read_text()) or {}
    assert variable not in defaults, "a default would bypass the allow-list"
    specs = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())
    options = {k: v for spec in specs["argument_specs"].values()
               for k, v in (spec.get("options") or {}).items()}
    assert options[variable].get("required") is True
