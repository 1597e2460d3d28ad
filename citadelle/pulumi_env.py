"""The environment every Pulumi and Ansible subprocess runs with, and the state backend policy.

Two jobs, both for SecNumCloud 19.2/19.6 (technical data stays in the EU, no technical means for
a non-EU party to obtain it):

* ``quiet_env`` keeps the tool chain silent toward the outside: no update check, no plugin
  download, no Copilot, no Pulumi Cloud token handed down, no Galaxy. Every ``citadelle`` command
  that starts ``pulumi``, ``ansible-*`` or ``ansible-runner`` builds its environment with it.
* ``ensure_sovereign_backend`` decides where an environment's state and secrets live (a local
  file backend for dev and the lab, the EU bucket for mirror and prod, passphrase or an EU
  OpenBao transit key) and refuses Pulumi Cloud, a non-allow-listed host, or a stack file whose
  ``secretsprovider:`` line breaks the policy. docs/sovereignty.md explains each choice.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sysconfig
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from citadelle import paths
from citadelle.errors import CitadelleError
from citadelle.stackconfig import StackConfig, load_stack_config
from infra.config import ConfigError, endpoint_host, parse_settings, raw_from_values


@dataclass(frozen=True)
class QuietSetting:
    name: str
    value: str
    why: str


def _collections_path() -> str:
    # The collections shipped inside the pinned `ansible` package, and nothing else.
    return sysconfig.get_paths()["purelib"]


QUIET_SETTINGS: tuple[QuietSetting, ...] = (
    QuietSetting("PULUMI_SKIP_UPDATE_CHECK", "true",
                 "the CLI otherwise asks a US service for the latest version on every command"),
    QuietSetting("PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION", "true",
                 "a missing provider plugin fails instead of being downloaded from "
                 "get.pulumi.com or GitHub; plugins are installed once from the in-region mirror"),
    QuietSetting("PULUMI_COPILOT", "false",
                 "Copilot sends update diagnostics to Pulumi Cloud's AI service"),
    QuietSetting("PULUMI_SUPPRESS_COPILOT_LINK", "true",
                 "no link inviting operators to paste failures into a US service"),
    QuietSetting("PULUMI_DIY_BACKEND_NO_LEGACY_WARNING", "true",
                 "the DIY (self-managed) backend is the intended one; its warnings are noise"),
    QuietSetting("AWS_EC2_METADATA_DISABLED", "true",
                 "the S3 client of the state backend never probes an EC2 metadata service "
                 "for credentials"),
    QuietSetting("PIP_DISABLE_PIP_VERSION_CHECK", "1",
                 "the Python language host may run pip: no version lookup on PyPI"),
    QuietSetting("ANSIBLE_GALAXY_SERVER", "https://galaxy.invalid",
                 "a stray `ansible-galaxy install` fails (.invalid never resolves) instead of "
                 "reaching galaxy.ansible.com"),
    QuietSetting("ANSIBLE_COLLECTIONS_PATH", "<venv site-packages>",
                 "only the collections of the pinned ansible package; ~/.ansible/collections "
                 "(where Galaxy installs) is never searched"),
    QuietSetting("ANSIBLE_LINT_NODEPS", "1",
                 "ansible-lint neither installs requirements from Galaxy nor looks up its "
                 "latest release on GitHub"),
    QuietSetting("DO_NOT_TRACK", "1",
                 "the cross-tool opt-out of usage reporting (consoledonottrack.com), for any "
                 "helper that honours it"),
)

# Credentials that only Pulumi Cloud accepts: never handed to a subprocess.
NEVER_PASSED = ("PULUMI_ACCESS_TOKEN", "PULUMI_API")

PULUMI_CLOUD_HOSTS = frozenset({"api.pulumi.com", "app.pulumi.com", "pulumi.com", "www.pulumi.com"})
# The project-wide file backend (Pulumi.yaml) for the environments without a state bucket.
DEFAULT_FILE_BACKEND = "file://~/.pulumi-citadelle"
DEV_SECRETS_PROVIDER = "passphrase"


def quiet_env(base: Mapping[str, str]) -> dict[str, str]:
    """``base`` plus the settings that keep Pulumi and Ansible silent toward the outside."""
    env = {k: v for k, v in base.items() if k not in NEVER_PASSED}
    for setting in QUIET_SETTINGS:
        env[setting.name] = setting.value
    env["ANSIBLE_COLLECTIONS_PATH"] = _collections_path()
    return env


# --------------------------------------------------------------------------- settings


def settings_for(config: StackConfig) -> Any:
    """The validated ``infra.config.Settings`` of a stack, read without the Pulumi runtime.

    The program's own reading (``infra.config.raw_from_values``); ``secure:`` values are the
    offline placeholders of citadelle.stackconfig.
    """
    try:
        return parse_settings(config.stack, raw_from_values(config.values, config.secret_keys))
    except ConfigError as err:
        raise CitadelleError(str(err), exit_code=2) from None


# --------------------------------------------------------------------------- backend policy


@dataclass(frozen=True)
class BackendDecision:
    """Where one environment's state and secrets live, and whether that is allowed."""

    env: str
    url: str
    source: str  # PULUMI_BACKEND_URL, Pulumi.yaml, credentials.json, default, or policy
    policy_url: str
    secrets_provider: str | None
    policy_secrets: str
    vault_addr: str | None
    direct_url: str  # what a plain `pulumi` run in the project would select
    direct_source: str
    backend_problems: tuple[str, ...]
    direct_problems: tuple[str, ...]
    secrets_problems: tuple[str, ...]

    @property
    def problems(self) -> tuple[str, ...]:
        return self.backend_problems + self.direct_problems + self.secrets_problems

    @property
    def allowed(self) -> bool:
        return not self.problems

    def env_vars(self) -> dict[str, str]:
        values = {"PULUMI_BACKEND_URL": self.url}
        if self.vault_addr:
            values["VAULT_ADDR"] = self.vault_addr
        return values

    def to_dict(self) -> dict[str, Any]:
        return {
            "environment": self.env,
            "backend": self.url,
            "source": self.source,
            "policyBackend": self.policy_url,
            "secretsProvider": self.secrets_provider,
            "policySecretsProvider": self.policy_secrets,
            "vaultAddr": self.vault_addr,
            "directBackend": self.direct_url,
            "directSource": self.direct_source,
            "allowed": self.allowed,
            "problems": list(self.problems),
        }


def policy_backend(env: str, settings: Any, project_backend: str | None) -> str:
    """The backend the policy assigns: the env's state bucket if config declares one."""
    buckets = settings.sovereignty.for_environment(env, "state-backend")
    if not buckets:
        local = project_backend and urlsplit(project_backend).scheme == "file"
        return project_backend if local and project_backend else DEFAULT_FILE_BACKEND
    endpoint = buckets[0]
    return (
        f"s3://citadelle-state-{env}?endpoint={endpoint.url}"
        f"&s3ForcePathStyle=true&region={settings.openstack.region}"
    )


def policy_secrets_provider(env: str, settings: Any) -> tuple[str, str | None]:
    """(secrets provider, VAULT_ADDR) the policy assigns to ``env``."""
    vaults = settings.sovereignty.for_environment(env, "secrets")
    if not vaults:
        return DEV_SECRETS_PROVIDER, None
    return f"hashivault://citadelle-{env}", vaults[0].url


def backend_problem(env: str, url: str, settings: Any) -> str | None:
    """Why ``url`` may not hold ``env``'s state, or None when it may."""
    if not url:
        return ("no backend selected: the Pulumi CLI would fall back to Pulumi Cloud "
                "(api.pulumi.com, US jurisdiction)")
    parsed = urlsplit(url)
    scheme = parsed.scheme.lower()
    bucket_hosts = {e.host for e in settings.sovereignty.for_environment(env, "state-backend")}
    if scheme in ("http", "https"):
        return _service_problem(url, (parsed.hostname or "").lower(), bucket_hosts)
    if scheme == "file":
        if bucket_hosts:
            return (f"{url} is a local file backend; {env} state lives only in its bucket "
                    f"on {', '.join(sorted(bucket_hosts))}")
        return None
    if scheme == "s3":
        return _s3_problem(env, url, parse_qs(parsed.query), bucket_hosts)
    return f"{url}: backend scheme {scheme or '(none)'!r} is not allowed (file:// or s3:// only)"


def _service_problem(url: str, host: str, bucket_hosts: set[str]) -> str | None:
    if host in PULUMI_CLOUD_HOSTS or host.endswith(".pulumi.com"):
        return f"{url} is Pulumi Cloud (US jurisdiction; SecNumCloud 19.2/19.6)"
    if host in bucket_hosts:
        return None
    return f"{url}: service backend host {host!r} is not an allow-listed state-backend"


def _s3_problem(env: str, url: str, query: dict[str, list[str]], bucket_hosts: set[str]) \
        -> str | None:
    endpoint = (query.get("endpoint") or [""])[0]
    if not endpoint:
        return (f"{url} has no endpoint= parameter: it would use AWS S3 "
                "(s3.amazonaws.com, US jurisdiction)")
    host = endpoint_host(endpoint)
    if host not in bucket_hosts:
        allowed = ", ".join(sorted(bucket_hosts)) or "none declared for " + env
        return (f"{url}: endpoint host {host!r} is not an allow-listed state-backend for "
                f"{env} (allowed: {allowed})")
    if (query.get("s3ForcePathStyle") or query.get("use_path_style") or [""])[0] != "true":
        return f"{url}: add s3ForcePathStyle=true (the provider's object storage is path-style)"
    return None


def secrets_problem(env: str, provider: str | None, settings: Any) -> str | None:
    """Why the stack file's ``secretsprovider:`` breaks the policy, or None."""
    expected, vault = policy_secrets_provider(env, settings)
    if provider is None:
        return f"environments/Pulumi.{env}.yaml has no secretsprovider: line (expected {expected})"
    if expected == DEV_SECRETS_PROVIDER:
        if provider in (DEV_SECRETS_PROVIDER, expected):
            return None
        return f"secretsprovider {provider!r} for {env}: expected {DEV_SECRETS_PROVIDER}"
    if not provider.startswith("hashivault://") or provider == "hashivault://":
        return (f"secretsprovider {provider!r} for {env}: expected a transit key on the EU "
                f"OpenBao ({expected}, VAULT_ADDR={vault})")
    return None


def credentials_file(environ: Mapping[str, str]) -> Path:
    folder = environ.get("PULUMI_CREDENTIALS_PATH") or environ.get("PULUMI_HOME")
    return Path(folder) / "credentials.json" if folder else Path.home() / ".pulumi" / \
        "credentials.json"


def _stored_current(environ: Mapping[str, str]) -> str:
    path = credentials_file(environ)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return ""
    except (OSError, json.JSONDecodeError) as err:
        raise CitadelleError(f"{path}: unreadable Pulumi credentials file ({err})") from None
    current = data.get("current") if isinstance(data, dict) else None
    return current if isinstance(current, str) else ""


def decide_backend(
    env: str,
    environ: Mapping[str, str] | None = None,
    project_file: Path = paths.PROJECT_FILE,
    stack_file: Path | None = None,
) -> BackendDecision:
    """What the Pulumi CLI would select for ``env`` when started by citadelle, and the verdict.

    Pulumi's own precedence: ``PULUMI_BACKEND_URL``, then Pulumi.yaml ``backend.url``, then the
    ``current`` entry of credentials.json, then Pulumi Cloud. citadelle sets
    ``PULUMI_BACKEND_URL`` to the policy's backend unless the operator already set one, so an
    operator's value is checked as is; Pulumi.yaml's backend is checked too because a plain
    ``pulumi`` run in this project uses it.
    """
    environ = os.environ if environ is None else environ
    config = load_stack_config(project_file, env, stack_file)
    settings = settings_for(config)
    project_backend = config.backend_url
    policy_url = policy_backend(env, settings, project_backend)
    expected_secrets, vault = policy_secrets_provider(env, settings)

    operator_url = environ.get("PULUMI_BACKEND_URL", "")
    if operator_url:
        url, source = operator_url, "PULUMI_BACKEND_URL"
    else:
        url, source = policy_url, "policy"
    problem = backend_problem(env, url, settings)

    # A plain `pulumi` run in the project: Pulumi.yaml, then credentials.json, then the cloud.
    direct, direct_source = project_backend or "", "Pulumi.yaml backend.url"
    if not direct:
        direct, direct_source = _stored_current(environ), "credentials.json current"
    if not direct:
        direct_source = "Pulumi default (no backend.url in Pulumi.yaml, not logged in)"
    direct_problem = _project_problem(direct, settings)

    secrets = secrets_problem(env, config.secrets_provider, settings)
    return BackendDecision(
        env=env,
        url=url,
        source=source,
        policy_url=policy_url,
        secrets_provider=config.secrets_provider,
        policy_secrets=expected_secrets,
        vault_addr=vault,
        direct_url=direct,
        direct_source=direct_source,
        backend_problems=(f"{source}: {problem}",) if problem else (),
        direct_problems=(f"{direct_source}: {direct_problem}",) if direct_problem else (),
        secrets_problems=(secrets,) if secrets else (),
    )


def _project_problem(url: str, settings: Any) -> str | None:
    """Pulumi.yaml's backend is project-wide: it must be the dev/lab file backend."""
    if not url:
        return backend_problem("", "", settings)
    if urlsplit(url).scheme.lower() == "file":
        return None
    return backend_problem(settings.environment, url, settings)


def _fix_for(decision: BackendDecision) -> str:
    if decision.backend_problems:
        return f"unset PULUMI_BACKEND_URL (citadelle sets {decision.policy_url})"
    if decision.direct_problems:
        return f"set `backend: {{url: {DEFAULT_FILE_BACKEND}}}` in Pulumi.yaml"
    if decision.policy_secrets == DEV_SECRETS_PROVIDER:
        return (f"pulumi stack change-secrets-provider -s {decision.env} passphrase")
    return (f"VAULT_ADDR={decision.vault_addr} pulumi stack change-secrets-provider "
            f"-s {decision.env} {decision.policy_secrets}")


def ensure_sovereign_backend(
    env: str,
    environ: Mapping[str, str] | None = None,
    project_file: Path = paths.PROJECT_FILE,
) -> dict[str, str]:
    """The variables to add to a pulumi subprocess for ``env``; refuses a non-sovereign setup.

    The deploy pipeline calls this before ``pulumi up`` and passes
    ``quiet_env(os.environ) | ensure_sovereign_backend(env)`` to the Automation API.
    """
    decision = decide_backend(env, environ, project_file)
    if not decision.allowed:
        raise CitadelleError(
            f"refusing to run pulumi for {env}: {decision.problems[0]}; fix: "
            f"{_fix_for(decision)}",
            exit_code=2,
        )
    return decision.env_vars()


def pulumi_environment(env: str, environ: Mapping[str, str] | None = None,
                       project_file: Path = paths.PROJECT_FILE) -> dict[str, str]:
    """The complete environment of a pulumi subprocess for ``env`` (quiet and sovereign)."""
    environ = os.environ if environ is None else environ
    return quiet_env(environ) | ensure_sovereign_backend(env, environ, project_file)


def run_pulumi(env: str, args: Sequence[str], project_file: Path = paths.PROJECT_FILE) -> int:
    """Run ``pulumi ARGS -s ENV`` in the project directory, only on a sovereign backend."""
    environment = pulumi_environment(env, project_file=project_file)
    executable = shutil.which("pulumi", path=environment.get("PATH"))
    if executable is None:
        raise CitadelleError(
            "the Pulumi CLI is not on PATH; install it from the in-region mirror "
            "(docs/sovereignty.md) or use the offline commands (citadelle plan)"
        )
    command = [executable, *args, "--stack", env]
    return subprocess.run(command, env=environment, cwd=project_file.parent, check=False) \
        .returncode


# --------------------------------------------------------------------------- CLI


def export_lines(env: str, environ: Mapping[str, str] | None = None,
                 project_file: Path = paths.PROJECT_FILE) -> list[str]:
    """Shell lines that give a plain `pulumi -s ENV` the environment citadelle would use."""
    environ = os.environ if environ is None else environ
    variables = ensure_sovereign_backend(env, environ, project_file)
    variables |= {s.name: s.value for s in QUIET_SETTINGS} | {
        "ANSIBLE_COLLECTIONS_PATH": _collections_path()}
    lines = [f"unset {' '.join(NEVER_PASSED)}"]
    lines += [f"export {name}={shlex.quote(value)}" for name, value in sorted(variables.items())]
    return lines


def _backend(args: argparse.Namespace) -> int:
    if args.export:
        print("\n".join(export_lines(args.env, project_file=Path(args.project))))
        return 0
    decision = decide_backend(args.env, project_file=Path(args.project))
    if args.json:
        print(json.dumps(decision.to_dict(), indent=2))
    else:
        verdict = "allowed" if decision.allowed else "REFUSED"
        print(f"environment       {decision.env}")
        print(f"backend           {decision.url}  (from {decision.source})")
        print(f"secrets provider  {decision.secrets_provider or '-'}  "
              f"(policy: {decision.policy_secrets})")
        if decision.vault_addr:
            print(f"VAULT_ADDR        {decision.vault_addr}")
        print(f"verdict           {verdict}")
        for problem in decision.problems:
            print(f"  - {problem}")
        if not decision.allowed:
            print(f"fix: {_fix_for(decision)}")
    return 0 if decision.allowed else 1


def _pulumi(args: argparse.Namespace) -> int:
    pulumi_args = [a for a in args.pulumi_args if a != "--"]
    if not pulumi_args:
        raise CitadelleError("nothing to run: give the pulumi command, e.g. "
                             f"`citadelle pulumi {args.env} -- preview`")
    return run_pulumi(args.env, pulumi_args, Path(args.project))


def register(subparsers: Any) -> None:
    backend = subparsers.add_parser(
        "backend",
        help="show the state backend and secrets provider an environment uses, and whether "
        "they are allowed",
    )
    backend.add_argument("env", help="environment (stack): dev, mirror or prod")
    backend.add_argument("--json", action="store_true", help="print the decision as JSON")
    backend.add_argument("--export", action="store_true",
                         help="print shell exports for a plain `pulumi -s ENV` (eval them); "
                         "refuses when the backend is not allowed")
    backend.add_argument("--project", default=str(paths.PROJECT_FILE), help=argparse.SUPPRESS)
    backend.set_defaults(func=_backend)

    pulumi = subparsers.add_parser(
        "pulumi",
        help="run a pulumi command for an environment on its sovereign backend, quietly",
    )
    pulumi.add_argument("--project", default=str(paths.PROJECT_FILE), help=argparse.SUPPRESS)
    pulumi.add_argument("env", help="environment (stack): dev, mirror or prod")
    pulumi.add_argument("pulumi_args", nargs=argparse.REMAINDER,
                        help="the pulumi command and its options, after --")
    pulumi.set_defaults(func=_pulumi)
