"""State backend and secrets provider policy, refusal before any pulumi command, quiet env."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from citadelle import paths
from citadelle.environment import Environment
from citadelle.environment.projections import policy_config
from citadelle.environment.stackconfig import load_stack_config
from citadelle.environment.toolchain import NEVER_PASSED, QUIET_SETTINGS, quiet_env
from citadelle.errors import CitadelleError
from citadelle.sovereignty.backend import decide_backend, ensure_sovereign_backend

pytestmark = [pytest.mark.unit, pytest.mark.snc("19.2.d", "19.6.c", "10.5.a")]

ENVIRONMENTS = ("dev", "mirror", "prod")


def _settings(env: str) -> Any:
    return Environment.load(env).settings


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_policy_backend_and_secrets_follow_the_allow_list(env, environ):
    settings = _settings(env)
    decision = decide_backend(env, environ())
    buckets = settings.sovereignty.for_environment(env, "state-backend")
    vaults = settings.sovereignty.for_environment(env, "secrets")
    if buckets:
        assert decision.url == (
            f"s3://citadelle-state-{env}?endpoint={buckets[0].url}&s3ForcePathStyle=true"
            f"&region={settings.openstack.region}")
    else:
        project_backend = load_stack_config(paths.PROJECT_FILE, env).backend_url
        assert decision.url == project_backend
        assert project_backend is not None and project_backend.startswith("file://")
    if vaults:
        assert decision.secrets_provider == f"hashivault://citadelle-{env}"
        assert decision.vault_addr == vaults[0].url
    else:
        assert decision.secrets_provider == "passphrase"
        assert decision.vault_addr is None
    assert decision.problems == ()
    assert decision.source == "policy"


def test_prod_and_mirror_keep_state_in_the_bucket_and_dev_locally():
    """The split the docs promise, read from config: a change there must change this test."""
    assert [e for e in ENVIRONMENTS
            if _settings(e).sovereignty.for_environment(e, "state-backend")] == ["mirror", "prod"]
    assert [e for e in ENVIRONMENTS
            if _settings(e).sovereignty.for_environment(e, "secrets")] == ["mirror", "prod"]


@pytest.mark.parametrize(
    ("env", "backend_url", "expected"),
    [
        ("prod", "https://api.pulumi.com", "is Pulumi Cloud"),
        ("dev", "https://app.pulumi.com/citadelle", "is Pulumi Cloud"),
        ("prod", "s3://citadelle-state-prod?endpoint=s3.amazonaws.com&region=us-east-1",
         "endpoint host 's3.amazonaws.com' is not an allow-listed state-backend"),
        ("prod", "s3://citadelle-state-prod?region=eu-west-3", "it would use AWS S3"),
        ("prod", "file://~/.pulumi-citadelle", "prod state lives only in its bucket"),
        ("mirror", "gs://citadelle-state", "scheme 'gs' is not allowed"),
        ("prod", "s3://citadelle-state-prod?endpoint=https://s3.fr-par-1.snc.ovhcloud.com",
         "add s3ForcePathStyle=true"),
        ("prod", "https://pulumi.example.org", "'pulumi.example.org' is not an allow-listed"),
    ],
)
def test_operator_backend_outside_the_policy_is_refused(env, backend_url, expected, environ):
    with pytest.raises(CitadelleError) as caught:
        ensure_sovereign_backend(env, environ(PULUMI_BACKEND_URL=backend_url))
    message = caught.value.message
    assert expected in message
    assert message.startswith(f"refusing to run pulumi for {env}: PULUMI_BACKEND_URL: ")
    assert "fix: unset PULUMI_BACKEND_URL" in message
    assert "\n" not in message


def test_operator_backend_inside_the_policy_is_kept(environ):
    settings = _settings("prod")
    bucket = settings.sovereignty.for_environment("prod", "state-backend")[0]
    url = f"s3://citadelle-state-prod?endpoint={bucket.url}&s3ForcePathStyle=true&region=x"
    assert ensure_sovereign_backend("prod", environ(PULUMI_BACKEND_URL=url))[
        "PULUMI_BACKEND_URL"] == url


def _without_backend(project: dict[str, Any], stack: dict[str, Any]) -> None:
    project.pop("backend")


def test_no_backend_and_no_login_means_pulumi_cloud(copy_project, environ):
    project_file = copy_project("dev", _without_backend)
    decision = decide_backend("dev", environ(), project_file)
    assert not decision.allowed
    assert any(p.startswith("Pulumi default") and "Pulumi Cloud" in p
               for p in decision.problems), decision.problems


def test_credentials_logged_in_to_pulumi_cloud_are_refused(copy_project, environ, tmp_path):
    project_file = copy_project("dev", _without_backend)
    pulumi_home = tmp_path / "pulumi-home"
    pulumi_home.mkdir()
    (pulumi_home / "credentials.json").write_text(
        json.dumps({"current": "https://api.pulumi.com", "accessTokens": {}}))
    with pytest.raises(CitadelleError) as caught:
        ensure_sovereign_backend("dev", environ(PULUMI_HOME=str(pulumi_home)), project_file)
    assert "credentials.json current: https://api.pulumi.com is Pulumi Cloud" in \
        caught.value.message
    assert "set `backend: {url: file://~/.pulumi-citadelle}` in Pulumi.yaml" in \
        caught.value.message


def test_project_backend_on_pulumi_cloud_is_refused(copy_project, environ):
    def to_cloud(project: dict[str, Any], stack: dict[str, Any]) -> None:
        project["backend"] = {"url": "https://api.pulumi.com"}

    decision = decide_backend("dev", environ(), copy_project("dev", to_cloud))
    assert [p for p in decision.problems if p.startswith("Pulumi.yaml backend.url")] == [
        "Pulumi.yaml backend.url: https://api.pulumi.com is Pulumi Cloud (US jurisdiction; "
        "SecNumCloud 19.2/19.6)"]


@pytest.mark.parametrize(
    ("env", "provider", "expected"),
    [
        ("prod", "passphrase", "expected a transit key on the EU OpenBao"),
        ("prod", "awskms://alias/citadelle?region=eu-west-3", "expected a transit key"),
        ("mirror", "default", "expected a transit key"),
        ("dev", "hashivault://citadelle-dev", "expected passphrase"),
        ("prod", None, "has no secretsprovider: line"),
    ],
)
def test_secrets_provider_line_must_match_the_policy(env, provider, expected, copy_project,
                                                     environ):
    def set_provider(project: dict[str, Any], stack: dict[str, Any]) -> None:
        if provider is None:
            stack.pop("secretsprovider")
        else:
            stack["secretsprovider"] = provider

    with pytest.raises(CitadelleError) as caught:
        ensure_sovereign_backend(env, environ(), copy_project(env, set_provider))
    assert expected in caught.value.message
    assert "change-secrets-provider" in caught.value.message


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_backend_command_prints_the_decision(env, cli, environ):
    result = cli(["backend", env, "--json"], environ())
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    expected = decide_backend(env, environ()).to_dict()
    assert shown == expected
    assert shown["allowed"] is True


def test_backend_command_exit_1_and_fix_when_refused(cli, environ):
    result = cli(["backend", "prod"], environ(PULUMI_BACKEND_URL="https://api.pulumi.com"))
    assert result.returncode == 1
    assert "verdict           REFUSED" in result.stdout
    assert result.stdout.rstrip().splitlines()[-1].startswith("fix: unset PULUMI_BACKEND_URL")


# --------------------------------------------------------------------------- citadelle pulumi


@pytest.mark.parametrize(
    "backend_url",
    ["https://api.pulumi.com", "s3://citadelle-state-prod?endpoint=s3.amazonaws.com"],
)
def test_refused_backend_never_starts_pulumi(backend_url, cli, environ, fake_pulumi):
    bin_dir, record = fake_pulumi
    env = environ(PULUMI_BACKEND_URL=backend_url, PATH=f"{bin_dir}:{environ()['PATH']}")
    result = cli(["pulumi", "prod", "--", "preview"], env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "citadelle: error: refusing to run pulumi for prod: PULUMI_BACKEND_URL")
    assert not record.exists(), "pulumi was started on a refused backend"


@pytest.mark.parametrize("env_name", ENVIRONMENTS)
def test_allowed_backend_starts_pulumi_quiet_and_sovereign(env_name, cli, environ, fake_pulumi):
    bin_dir, record = fake_pulumi
    env = environ(PATH=f"{bin_dir}:{environ()['PATH']}", PULUMI_ACCESS_TOKEN="pul-" + "0" * 40)
    result = cli(["pulumi", env_name, "--", "preview", "--diff"], env)
    assert result.returncode == 0, result.stderr
    started = json.loads(record.read_text())
    decision = decide_backend(env_name, environ())
    argv = started["argv"]
    # The engine runs the project's pack with the environment's config (SecNumCloud 19.2).
    assert argv[:4] == ["preview", "--diff", "--policy-pack", str(paths.POLICY_DIR)]
    assert argv[4] == "--policy-pack-config" and argv[6:] == ["--stack", env_name]
    assert started["pack_config"] == policy_config(Environment.load(env_name).settings)
    assert Path(started["cwd"]) == paths.REPO_ROOT
    child = started["env"]
    assert child["PULUMI_BACKEND_URL"] == decision.url
    assert child.get("VAULT_ADDR") == decision.vault_addr
    assert {s.name: child[s.name] for s in QUIET_SETTINGS if s.name != "ANSIBLE_COLLECTIONS_PATH"} \
        == {s.name: s.value for s in QUIET_SETTINGS if s.name != "ANSIBLE_COLLECTIONS_PATH"}
    assert "PULUMI_ACCESS_TOKEN" not in child


@pytest.mark.parametrize("command", ["stack", "refresh"])
def test_commands_that_do_not_deploy_run_without_the_pack(command, cli, environ, fake_pulumi):
    bin_dir, record = fake_pulumi
    result = cli(["pulumi", "dev", "--", command], environ(PATH=f"{bin_dir}:{environ()['PATH']}"))
    assert result.returncode == 0, result.stderr
    started = json.loads(record.read_text())
    assert started["argv"] == [command, "--stack", "dev"]
    assert started["pack_config"] is None


def test_pulumi_absent_is_a_clear_error(cli, environ, tmp_path):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    result = cli(["pulumi", "dev", "--", "preview"], environ(PATH=str(empty)))
    assert result.returncode == 2
    assert result.stderr.startswith("citadelle: error: the Pulumi CLI is not on PATH")


# --------------------------------------------------------------------------- quiet_env


@pytest.mark.parametrize("setting", QUIET_SETTINGS, ids=lambda s: s.name)
def test_quiet_env_forces_each_setting(setting):
    env = quiet_env({setting.name: "something-else", "KEEP": "1"})
    assert env["KEEP"] == "1"
    if setting.name == "ANSIBLE_COLLECTIONS_PATH":
        assert Path(env[setting.name]).is_relative_to(sys.prefix)
        assert (Path(env[setting.name]) / "ansible_collections").is_dir()
    else:
        assert env[setting.name] == setting.value


@pytest.mark.parametrize("name", NEVER_PASSED)
def test_quiet_env_drops_pulumi_cloud_credentials(name):
    assert name not in quiet_env({name: "x"})


@pytest.mark.parametrize("setting", QUIET_SETTINGS, ids=lambda s: s.name)
def test_each_quiet_setting_is_documented(setting):
    docs = (paths.REPO_ROOT / "docs" / "sovereignty.md").read_text(encoding="utf-8")
    assert f"`{setting.name}`" in docs


@pytest.mark.parametrize("env_name", ENVIRONMENTS)
def test_export_gives_a_plain_pulumi_the_same_environment(env_name, environ):
    env = environ(PULUMI_ACCESS_TOKEN="pul-" + "0" * 40)
    script = f'eval "$("{sys.executable}" -m citadelle backend {env_name} --export)" && env -0'
    result = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True,
                            cwd=paths.REPO_ROOT, timeout=120, check=True)
    child = dict(item.split("=", 1) for item in result.stdout.split("\0") if "=" in item)
    decision = decide_backend(env_name, environ())
    assert child["PULUMI_BACKEND_URL"] == decision.url
    assert child.get("VAULT_ADDR") == decision.vault_addr
    assert child["PULUMI_SKIP_UPDATE_CHECK"] == "true"
    assert "PULUMI_ACCESS_TOKEN" not in child


def test_export_refuses_a_foreign_backend(cli, environ):
    result = cli(["backend", "prod", "--export"],
                 environ(PULUMI_BACKEND_URL="https://api.pulumi.com"))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("citadelle: error: refusing to run pulumi for prod")


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_stack_file_carries_exactly_one_secretsprovider_line(env):
    # YAML keeps the last of duplicated keys silently: count the lines themselves.
    text = (paths.ENVIRONMENTS_DIR / f"Pulumi.{env}.yaml").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if line.startswith("secretsprovider:")]
    assert lines == [f"secretsprovider: {decide_backend(env, {}).policy_secrets}"]
