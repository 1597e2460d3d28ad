"""Where each environment's state and secrets live, and `citadelle backend`.

For SecNumCloud 19.2/19.6 (technical data stays in the EU): ``ensure_sovereign_backend``
decides where an environment's state and secrets live (a local file backend for dev and the
lab, the EU bucket for mirror and prod, passphrase or an EU OpenBao transit key) and refuses
Pulumi Cloud, a non-allow-listed host, or a stack file whose ``secretsprovider:`` line breaks
the policy. docs/sovereignty.md explains each choice.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from citadelle import paths
from citadelle.environment import Environment, env_command
from citadelle.environment.settings import Settings, endpoint_host
from citadelle.environment.toolchain import (
    NEVER_PASSED,
    QUIET_SETTINGS,
    collections_path,
    quiet_env,
)
from citadelle.errors import CitadelleError

PULUMI_CLOUD_HOSTS = frozenset({"api.pulumi.com", "app.pulumi.com", "pulumi.com", "www.pulumi.com"})
# The project-wide file backend (Pulumi.yaml) for the environments without a state bucket.
DEFAULT_FILE_BACKEND = "file://~/.pulumi-citadelle"
DEV_SECRETS_PROVIDER = "passphrase"


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


def policy_backend(env: str, settings: Settings, project_backend: str | None) -> str:
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


def policy_secrets_provider(env: str, settings: Settings) -> tuple[str, str | None]:
    """(secrets provider, VAULT_ADDR) the policy assigns to ``env``."""
    vaults = settings.sovereignty.for_environment(env, "secrets")
    if not vaults:
        return DEV_SECRETS_PROVIDER, None
    return f"hashivault://citadelle-{env}", vaults[0].url


def backend_problem(env: str, url: str, settings: Settings) -> str | None:
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


def secrets_problem(env: str, provider: str | None, settings: Settings) -> str | None:
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
    environment = Environment.load(env, project_file=project_file, stack_file=stack_file)
    config, settings = environment.config, environment.settings
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


def _project_problem(url: str, settings: Settings) -> str | None:
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


def pulumi_environment(env: Environment, environ: Mapping[str, str] | None = None) \
        -> dict[str, str]:
    """The complete environment of a pulumi subprocess for ``env`` (quiet and sovereign)."""
    environ = os.environ if environ is None else environ
    return quiet_env(environ) | ensure_sovereign_backend(env.name, environ, env.project_file)



def export_lines(env: str, environ: Mapping[str, str] | None = None,
                 project_file: Path = paths.PROJECT_FILE) -> list[str]:
    """Shell lines that give a plain `pulumi -s ENV` the environment citadelle would use."""
    environ = os.environ if environ is None else environ
    variables = ensure_sovereign_backend(env, environ, project_file)
    variables |= {s.name: s.value for s in QUIET_SETTINGS} | {
        "ANSIBLE_COLLECTIONS_PATH": collections_path()}
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



def register(subparsers: Any) -> None:
    backend = env_command(
        subparsers, "backend",
        "show the state backend and secrets provider an environment uses, and whether "
        "they are allowed")
    backend.add_argument("--json", action="store_true", help="print the decision as JSON")
    backend.add_argument("--export", action="store_true",
                         help="print shell exports for a plain `pulumi -s ENV` (eval them); "
                         "refuses when the backend is not allowed")
    backend.add_argument("--project", default=str(paths.PROJECT_FILE), help=argparse.SUPPRESS)
    backend.set_defaults(func=_backend)
