"""Bad stack config is refused with one actionable line, before any resource is declared."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from citadelle import paths
from citadelle.cli import main
from citadelle.environment import Environment
from citadelle.errors import CitadelleError
from citadelle.plan.plan import plan_environment

pytestmark = pytest.mark.unit

Mutation = Callable[[dict[str, Any], dict[str, Any]], None]


def _project_copy(tmp_path: Path, env: str, mutate: Mutation) -> Path:
    """A copy of the project with one mutation of its (project, stack) config."""
    project = yaml.safe_load(paths.PROJECT_FILE.read_text())
    stack = yaml.safe_load((paths.ENVIRONMENTS_DIR / f"Pulumi.{env}.yaml").read_text())
    mutate(project["config"], stack["config"])
    (tmp_path / "environments").mkdir()
    (tmp_path / "Pulumi.yaml").write_text(yaml.safe_dump(project))
    (tmp_path / "environments" / f"Pulumi.{env}.yaml").write_text(yaml.safe_dump(stack))
    (tmp_path / "infra").symlink_to(paths.PROGRAM_DIR)
    return tmp_path / "Pulumi.yaml"


def _error(tmp_path: Path, mutate: Mutation, env: str = "dev") -> str:
    project_file = _project_copy(tmp_path, env, mutate)
    with pytest.raises(CitadelleError) as caught:
        plan_environment(env, project_file=project_file)
    message = caught.value.message
    assert "\n" not in message and "Traceback" not in message
    assert caught.value.exit_code == 2
    return message


def _set(path: str, value: Any) -> Mutation:
    """Set ``key.sub.sub`` in the stack config (first segment is the citadelle: key)."""
    key, *rest = path.split(".")

    def mutate(project: dict[str, Any], stack: dict[str, Any]) -> None:
        if not rest:
            stack[f"citadelle:{key}"] = value
            return
        target = stack[f"citadelle:{key}"]
        for part in rest[:-1]:
            target = target[part]
        target[rest[-1]] = value

    return mutate


def _set_project(path: str, value: Any) -> Mutation:
    key, *rest = path.split(".")

    def mutate(project: dict[str, Any], stack: dict[str, Any]) -> None:
        target = project[f"citadelle:{key}"]["value"]
        for part in rest[:-1]:
            target = target[int(part)] if part.isdigit() else target[part]
        last = rest[-1]
        if last.isdigit():
            target[int(last)] = value
        else:
            target[last] = value

    return mutate


def _move(extra_workspace: bool = False, **overrides: Any) -> Mutation:
    """Give dev's workspace a migration block (docs/migration.md), with ``overrides``."""

    def mutate(project: dict[str, Any], stack: dict[str, Any]) -> None:
        stack["citadelle:migration"]["source"]["containers"] = ["snds", "ws-demo"]
        block = {"sourceContainers": ["ws-demo"], "targetContainer": "ws-synthetic-demo",
                 "window": {"start": "2030-01-01T20:00:00Z", "end": "2030-01-02T06:00:00Z"},
                 "rollbackRetentionDays": 30, **overrides}
        [workspace] = stack["citadelle:workspaces"]
        workspace["migration"] = block
        if extra_workspace:
            stack["citadelle:workspaces"].append(
                {**workspace, "id": "other", "migration": {**block,
                                                           "targetContainer": "ws-other"}})

    return mutate


CASES: list[tuple[str, Mutation, list[str]]] = [
    ("non-EU region", _set("openstack.region", "us-east-1"),
     ["citadelle:openstack.region", "'us-east-1'", "allowed: fr-par-1, fr-par-2"]),
    ("auth URL not allow-listed",
     _set("openstack.authUrl", "https://identity.us-east-1.cloud.example.com/v3"),
     ["citadelle:openstack.authUrl", "identity.us-east-1.cloud.example.com", "allow-listed"]),
    ("auth URL without TLS", _set("openstack.authUrl", "http://identity.fr-par-1.snc.ovhcloud.com/v3"),
     ["citadelle:openstack.authUrl", "https://"]),
    ("non-EU provider jurisdiction", _set_project("sovereignty.providers.0.jurisdiction", "US"),
     ["citadelle:sovereignty.providers[0].jurisdiction", "'US'", "EU member state"]),
    ("endpoint outside its provider",
     _set_project("sovereignty.endpoints.4.url", "https://registry-1.docker.io"),
     ["endpoint 'registry'", "registry-1.docker.io", "outside provider"]),
    ("overlapping CIDRs", _set("network.tiers.app.cidr", "10.30.0.0/16"),
     ["citadelle:network.tiers", "overlap", "10.30.0.0/16"]),
    ("malformed CIDR", _set("network.tiers.data.cidr", "10.30.32.0/33"),
     ["citadelle:network.tiers.data.cidr", "'10.30.32.0/33'", "not a valid network CIDR"]),
    ("CIDR with host bits", _set("network.tiers.data.cidr", "10.30.32.7/22"),
     ["citadelle:network.tiers.data.cidr", "no host bits"]),
    ("world-open admin CIDR", _set("network.adminCidrs", ["0.0.0.0/0"]),
     ["citadelle:network.adminCidrs", "'0.0.0.0/0'", "world-open"]),
    ("data tier with egress", _set("network.tiers.data.egress", True),
     ["citadelle:network.tiers", "data tier never routes"]),
    ("pool size out of range", _set("compute.nodePools", [
        {"name": "workers", "tier": "app", "flavor": "b3-16", "count": 0}]),
     ["citadelle:compute.nodePools[0].count", "greater than or equal to 1", "(got 0)"]),
    ("volume size out of range", _set("compute.gateway.dataVolumeGb", 100000),
     ["citadelle:compute.gateway.dataVolumeGb", "less than or equal to 16384"]),
    ("unknown nested key", _set("compute.bastion.flavour", "b3-8"),
     ["citadelle:compute.bastion.flavour", "unknown key"]),
    ("unknown top-level key", lambda p, s: s.update({"citadelle:netwrok": {"tiers": {}}}),
     ["citadelle:netwrok", "unknown key", "allowed keys:", "network"]),
    ("missing SSH public keys", _set_project("admin.sshKeys", []),
     ["citadelle:admin.sshKeys", "at least 1 item"]),
    ("private key instead of public", _set_project("admin.sshKeys.0.publicKey",
                                                   "-----BEGIN OPENSSH " "PRIVATE KEY----- x"),
     ["citadelle:admin.sshKeys[0].publicKey", "only public keys"]),
    ("missing required key", lambda p, s: s.pop("citadelle:keys"),
     ["citadelle:keys", "required key is missing"]),
    ("supplied KEK without its secret", _set("keys.supplied", ["volume"]),
     ["citadelle:volumeKek", "missing secret", "pulumi config set --secret volumeKek"]),
    ("secret stored in clear", _set("volumeKek", "c2VjcmV0"),
     ["citadelle:volumeKek", "stored in clear", "--secret"]),
    ("even etcd quorum", _set("kubernetes.masterCount", 2),
     ["citadelle:kubernetes.masterCount", "even"]),
    ("migration from an undeclared container", _move(sourceContainers=["ghost"]),
     ["citadelle:workspaces[synthetic-demo].migration.sourceContainers: 'ghost' is not a "
      "declared migration.source container"]),
    ("migration into an unknown container", _move(targetContainer="nowhere"),
     ["citadelle:workspaces[synthetic-demo].migration.targetContainer: 'nowhere' is unknown"]),
    ("rollback retention under the policy minimum", _move(rollbackRetentionDays=7),
     ["citadelle:workspaces[0].migration.rollbackRetentionDays",
      "shorter than the policy minimum of 30 days", "19.1.h"]),
    ("two workspaces on one container", _move(extra_workspace=True),
     ["citadelle:workspaces[other].migration: shares the container 'ws-demo' with "
      "synthetic-demo"]),
    ("migration window ending before it starts",
     _move(window={"start": "2030-01-02T00:00:00Z", "end": "2030-01-01T00:00:00Z"}),
     ["window ends", "before it starts"]),
    ("data location of a workspace that does not migrate",
     _set("dataLocations", {"ghost": "destination"}),
     ["citadelle:dataLocations: 'ghost' has no migration block"]),
]


@pytest.mark.parametrize(("mutate", "expected"), [(m, e) for _, m, e in CASES],
                         ids=[c[0] for c in CASES])
def test_bad_config_is_refused_with_one_clear_line(
    tmp_path: Path, mutate: Mutation, expected: list[str]
) -> None:
    message = _error(tmp_path, mutate)
    for fragment in expected:
        assert fragment in message, message


def test_malformed_yaml_names_the_file_and_line(tmp_path: Path) -> None:
    project_file = _project_copy(tmp_path, "dev", lambda p, s: None)
    stack_file = tmp_path / "environments" / "Pulumi.dev.yaml"
    stack_file.write_text("config:\n  citadelle:network: [unclosed\n")
    with pytest.raises(CitadelleError) as caught:
        plan_environment("dev", project_file=project_file)
    assert "Pulumi.dev.yaml" in caught.value.message
    assert "malformed YAML" in caught.value.message


def test_secure_values_become_marked_placeholders(tmp_path: Path) -> None:
    def supply(project: dict[str, Any], stack: dict[str, Any]) -> None:
        stack["citadelle:keys"]["supplied"] = ["backup"]
        stack["citadelle:backupKek"] = {"secure": "v1:AAAA:BBBB"}

    recording = plan_environment("dev", project_file=_project_copy(tmp_path, "dev", supply))
    backup = next(r for r in recording.resources if r.name == "keys-backup-kek")
    assert backup.inputs["payload"]["value"] == "[secret]"
    # The supplied key replaces the generated one: no RandomBytes for it.
    assert not [r for r in recording.resources if r.name == "keys-backup-kek"
                and r.type.startswith("random:")]


def test_unknown_environment_is_one_line_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "staging"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "citadelle: error: unknown environment 'staging': no environments/Pulumi.staging.yaml "
        "(known environments: dev, mirror, prod)"
    )


def test_expired_workspace_is_refused(tmp_path: Path) -> None:
    def expire(project: dict[str, Any], stack: dict[str, Any]) -> None:
        stack["citadelle:workspaces"][0]["expires"] = "2020-01-31"

    message = _error(tmp_path, expire)
    assert "workspaces[synthetic-demo].expires" in message
    assert "expired on 2020-01-31" in message


def test_project_copy_helper_leaves_the_repository_untouched(tmp_path: Path) -> None:
    before = (paths.ENVIRONMENTS_DIR / "Pulumi.dev.yaml").read_text()
    _project_copy(tmp_path, "dev", _set("openstack.region", "us-east-1"))
    assert (paths.ENVIRONMENTS_DIR / "Pulumi.dev.yaml").read_text() == before
    shutil.rmtree(tmp_path / "environments")


def test_offline_tools_refuse_a_secret_in_clear_as_the_program_does(tmp_path: Path) -> None:
    project_file = _project_copy(tmp_path, "dev", _set("volumeKek", "c2VjcmV0"))
    with pytest.raises(CitadelleError) as caught:
        Environment.load("dev", project_file=project_file)
    assert caught.value.exit_code == 2
    (tmp_path / "program").mkdir()
    assert caught.value.message == _error(tmp_path / "program", _set("volumeKek", "c2VjcmV0"))


def test_offline_tools_accept_a_secure_secret(tmp_path: Path) -> None:
    def supply(project: dict[str, Any], stack: dict[str, Any]) -> None:
        stack["citadelle:keys"]["supplied"] = ["backup"]
        stack["citadelle:backupKek"] = {"secure": "v1:AAAA:BBBB"}

    settings = Environment.load("dev", project_file=_project_copy(tmp_path, "dev", supply)).settings
    assert tuple(settings.keys.supplied) == ("backup",)


def test_configuration_reference_is_generated_from_the_schema() -> None:
    """docs/configuration.md lists every key of the schema and is what the generator writes."""
    from citadelle.environment.reference import OUT, render, rows
    from citadelle.environment.settings import Settings

    text = OUT.read_text(encoding="utf-8")
    assert text == render(), "run python -m citadelle.environment.reference"
    keys = {key for key, *_ in rows(Settings, "")}
    assert {"openstack.authUrl", "network.tiers.*.cidr", "workspaces[].expires",
            "sovereignty.providers[].jurisdiction", "hardening.bastionLevel"} <= keys
    assert all(f"`citadelle:{key}`" in text for key in keys)
