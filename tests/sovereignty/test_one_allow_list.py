"""One source of truth: the policy gate, the roles and the program read `citadelle:sovereignty`;
nothing keeps a copy of it."""

from __future__ import annotations

from typing import Any

import pytest

from citadelle import paths
from citadelle.environment import Environment
from citadelle.environment.projections import policy_config
from citadelle.sovereignty.secretscan import repo_files

pytestmark = [pytest.mark.unit, pytest.mark.snc("19.2.b", "19.6.c")]

ENVIRONMENTS = ("dev", "mirror", "prod")
# Where code, policies and Ansible content live; config, docs and tests may name endpoints.
CODE_DIRS = ("citadelle", "infra", "policies", "roles", "playbooks", "checks", "scripts")


def _settings(env: str) -> Any:
    return Environment.load(env).settings


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_policy_gate_config_is_derived_from_the_allow_list(env):
    settings = _settings(env)
    config = policy_config(Environment.load(env).settings)
    sovereignty = settings.sovereignty
    assert config["eu-endpoint-allow-list"]["allowedAuthHosts"] == sorted(
        settings.endpoint_hosts("openstack-auth"))
    assert config["eu-endpoint-allow-list"]["allowedDomains"] == sorted(
        {d for p in sovereignty.providers for d in p.domains})
    assert config["eu-region-allow-list"]["allowedRegions"] == sorted(
        sovereignty.allowed_regions())
    assert set(config["image-allowed-registry"]["allowedRegistries"]) <= set(
        settings.endpoint_hosts("container-registry"))


def test_no_copy_of_the_allow_list_in_code_roles_or_policies():
    settings = _settings("prod")
    names = {e.host for e in settings.sovereignty.endpoints} | {
        d for p in settings.sovereignty.providers for d in p.domains}
    names = {n for n in names if not n.replace(".", "").isdigit()}
    copies = []
    for path in repo_files():
        relative = path.relative_to(paths.REPO_ROOT)
        if relative.parts[0] not in CODE_DIRS or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        copies += [f"{relative}: {name}" for name in sorted(names) if name in text]
    assert copies == [], "read the endpoint from citadelle:sovereignty instead"
