"""Where a migration reads and writes, resolved once from the environment and its target.

The target supplies the endpoints (``Target.transfer_endpoints``): on the cloud, the declared
``citadelle:migration.source`` and the operators' cloud entry; in the lab (``--target lab``),
the lab's Azurite and the loopback cloud's Swift, loopback being allowed as for the cloud
audit. The rules are the same for every target: the destination is an allow-listed
``object-storage`` endpoint of the environment over TLS (SecNumCloud 19.2, 19.6), the
containers are the declared ones.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from citadelle import paths
from citadelle.environment import Environment
from citadelle.errors import CitadelleError


@dataclass(frozen=True)
class SourceAccess:
    url: str
    account: str
    key: str = field(repr=False)
    containers: tuple[str, ...]
    ca_file: Path | None


@dataclass(frozen=True)
class DestinationAccess:
    """Swift through Keystone v3: what rclone's swift remote and openstacksdk need."""

    auth_url: str
    username: str
    password: str = field(repr=False)
    project: str
    user_domain: str
    project_domain: str
    region: str
    storage_url: str
    container: str
    ca_file: Path | None
    cloud: str
    clouds_yaml: Path | None


@dataclass(frozen=True)
class Tuning:
    link_gbps: float
    bandwidth_limit: str
    transfers: int
    checkers: int


@dataclass(frozen=True)
class MigrationContext:
    env: Environment
    target: str  # the target's name, as the run records and the hints give it
    source: SourceAccess
    destination: DestinationAccess
    tuning: Tuning
    gateways: tuple[str, ...]
    run_dir: Path

    @property
    def environment(self) -> str:
        return self.env.name

    @property
    def manifest_path(self) -> Path:
        return self.run_dir / "source-manifest.json"


def _settings(env: Environment) -> Any:
    if env.settings.migration is None:
        raise CitadelleError(
            f"environment {env.name}: no migration source declared (citadelle:migration in "
            f"environments/Pulumi.{env.name}.yaml; docs/migration.md)"
        )
    return env.settings


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name, never taken for loopback
        return False


def check_destination(settings: Any, url: str, loopback: bool) -> None:
    """Refuse a destination that is not the environment's allow-listed object store
    (``loopback``: the target's endpoints are on this machine's loopback, as the lab's)."""
    host = (urlsplit(url).hostname or "").lower()
    if urlsplit(url).scheme != "https":
        raise CitadelleError(f"destination {url}: not https (TLS is required at both ends)")
    declared = settings.endpoint_hosts("object-storage")
    if host not in declared and not (loopback and _is_loopback(host)):
        raise CitadelleError(
            f"destination {url}: host {host!r} is not an allow-listed object-storage endpoint "
            f"of {settings.environment} (allowed: {', '.join(declared) or 'none'}"
            f"{', loopback (lab)' if loopback else ''}); nothing was copied"
        )


def _clouds_entry(cloud: str, clouds_yaml: Path | None) -> tuple[dict[str, Any], Path | None]:
    import yaml  # noqa: PLC0415

    path = clouds_yaml or (Path(os.environ["OS_CLIENT_CONFIG_FILE"])
                           if os.environ.get("OS_CLIENT_CONFIG_FILE") else None)
    if path is None or not path.is_file():
        raise CitadelleError(f"destination cloud {cloud!r}: no clouds.yaml (set "
                             "OS_CLIENT_CONFIG_FILE or pass --clouds-yaml)")
    clouds = (yaml.safe_load(path.read_text()) or {}).get("clouds", {})
    if cloud not in clouds:
        raise CitadelleError(f"destination cloud {cloud!r} not in {path} "
                             f"(clouds: {', '.join(sorted(clouds)) or 'none'})")
    entry: dict[str, Any] = clouds[cloud]
    return entry, path


def _storage_url(entry: dict[str, Any], path: Path | None, cloud: str) -> str:
    """The object store's URL for the project, from the Keystone catalog."""
    from citadelle.audit.command import connect  # noqa: PLC0415

    os.environ["OS_CLIENT_CONFIG_FILE"] = str(path)
    conn = connect(cloud)
    try:
        url: str = conn.object_store.get_endpoint()
    except Exception as err:  # openstacksdk raises several types for a missing service
        raise CitadelleError(f"cloud {cloud!r}: no object-store endpoint in the catalog "
                             f"({' '.join(str(err).split())})") from None
    return url.rstrip("/")


def resolve(env: Environment, *, cloud: str | None = None, clouds_yaml: Path | None = None,
            source_url: str | None = None, destination_url: str | None = None,
            run_dir: Path | None = None) -> MigrationContext:
    """The migration's endpoints and tuning for ``env`` as its target serves them; refuses
    anything undeclared."""
    settings = _settings(env)
    migration = settings.migration
    if env.target is None:
        raise CitadelleError(f"{env.name}: no deployment target chosen (--target)")
    served = env.target.transfer_endpoints(env, cloud)
    if source_url is not None and source_url.rstrip("/") != served.source_url:
        raise CitadelleError(f"source {source_url}: not the declared migration source of "
                             f"{env.name} ({served.source_url}); nothing was copied")
    entry, path = _clouds_entry(served.cloud, clouds_yaml or served.clouds_yaml)
    auth = entry.get("auth", {})
    storage_url = destination_url.rstrip("/") if destination_url else None
    if storage_url is not None:
        check_destination(settings, storage_url, served.loopback)
    storage_url = storage_url or _storage_url(entry, path, served.cloud)
    check_destination(settings, storage_url, served.loopback)
    cacert = entry.get("cacert")
    destination = DestinationAccess(
        auth_url=str(auth.get("auth_url", "")), username=str(auth.get("username", "")),
        password=str(auth.get("password", "")), project=str(auth.get("project_name", "")),
        user_domain=str(auth.get("user_domain_name", "Default")),
        project_domain=str(auth.get("project_domain_name", "Default")),
        region=str(entry.get("region_name", "")), storage_url=storage_url,
        container=f"{env.prefix}-{migration.destination_container}",
        ca_file=Path(cacert) if cacert else None, cloud=served.cloud, clouds_yaml=path,
    )
    source = SourceAccess(url=served.source_url, account=served.account, key=served.key,
                          containers=migration.source.containers, ca_file=served.source_ca)
    tuning = Tuning(link_gbps=migration.link_gbps, bandwidth_limit=migration.bandwidth_limit,
                    transfers=migration.transfers, checkers=migration.checkers)
    return MigrationContext(
        env=env, target=env.target.name, source=source, destination=destination, tuning=tuning,
        gateways=served.gateways,
        run_dir=run_dir or paths.migration_run_dir(env.name, env.target.name),
    )


def read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise CitadelleError(f"{what} {path}: not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CitadelleError(f"{what} {path}: not JSON ({err})") from None
    if not isinstance(data, dict):
        raise CitadelleError(f"{what} {path}: not a JSON object")
    return data


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)
