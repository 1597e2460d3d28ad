"""Where a migration reads and writes, resolved once from the stack config (or the lab).

The source is the environment's declared ``citadelle:migration.source``; the destination is the
environment's object store, which must be an allow-listed ``object-storage`` endpoint
(SecNumCloud 19.2, 19.6). In the lab (``--lab``), the source is the lab's Azurite and the
destination the loopback cloud's Swift, loopback being allowed as for the cloud audit; every
other rule (declared containers, allow-list of any explicit destination, TLS) is the same.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from citadelle.audit.allowlist import AllowList
from citadelle.environment import Environment
from citadelle.errors import CitadelleError
from citadelle.paths import RUNS_DIR

SOURCE_KEY_ENV = "CITADELLE_MIGRATION_SOURCE_KEY"


@dataclass(frozen=True)
class StandInEndpoints:
    """The source and destination a stand-in (the lab) serves, and where its shards run
    unless told otherwise (``citadelle.migrate.standin``)."""

    source_url: str
    account: str
    key: str = field(repr=False)
    source_ca: Path
    cloud: str
    clouds_yaml: Path
    gateway: str


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
    environment: str
    lab: bool
    source: SourceAccess
    destination: DestinationAccess
    tuning: Tuning
    gateways: tuple[str, ...]
    run_dir: Path

    @property
    def manifest_path(self) -> Path:
        return self.run_dir / "source-manifest.json"


def _settings(env: str) -> Any:
    settings = Environment.load(env).settings
    if settings.migration is None:
        raise CitadelleError(
            f"environment {env}: no migration source declared (citadelle:migration in "
            f"environments/Pulumi.{env}.yaml; docs/migration.md)"
        )
    return settings


def _allow(settings: Any, lab: bool) -> AllowList:
    providers = settings.sovereignty.providers
    allow = AllowList(domains=tuple(d for p in providers for d in p.domains),
                      networks=tuple(n for p in providers for n in p.networks))
    return allow.with_loopback() if lab else allow


def check_destination(settings: Any, url: str, lab: bool) -> None:
    """Refuse a destination that is not the environment's allow-listed object store."""
    host = (urlsplit(url).hostname or "").lower()
    if urlsplit(url).scheme != "https":
        raise CitadelleError(f"destination {url}: not https (TLS is required at both ends)")
    declared = settings.endpoint_hosts("object-storage")
    loopback = lab and _allow(settings, lab).allows_host(host) and host.startswith("127.")
    if host not in declared and not loopback:
        raise CitadelleError(
            f"destination {url}: host {host!r} is not an allow-listed object-storage endpoint "
            f"of {settings.environment} (allowed: {', '.join(declared) or 'none'}"
            f"{', loopback (lab)' if lab else ''}); nothing was copied"
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


def resolve(env: str, *, stand_in: StandInEndpoints | None = None, cloud: str | None = None,
            clouds_yaml: Path | None = None, source_url: str | None = None,
            destination_url: str | None = None, run_dir: Path | None = None) \
        -> MigrationContext:
    """The migration's endpoints and tuning for ``env`` (or the stand-in's, in the lab);
    refuses anything undeclared."""
    settings = _settings(env)
    migration = settings.migration
    lab = stand_in is not None
    if stand_in is not None:
        declared_url, account, key = stand_in.source_url, stand_in.account, stand_in.key
        source_ca: Path | None = stand_in.source_ca
        cloud = cloud or stand_in.cloud
        clouds_yaml = clouds_yaml or stand_in.clouds_yaml
        gateways: tuple[str, ...] = (stand_in.gateway,)
    else:
        declared_url, account = migration.source.url, migration.source.account
        key = os.environ.get(SOURCE_KEY_ENV, "")
        if not key:
            raise CitadelleError(f"source {declared_url}: no credential ({SOURCE_KEY_ENV} is "
                                 "not set)")
        source_ca = None
        if not cloud:
            raise CitadelleError("no destination cloud selected: pass --os-cloud NAME")
        gateways = tuple(f"citadelle-{env}-gateway-{i}"
                         for i in range(settings.compute.gateway.count))
    if source_url is not None and source_url.rstrip("/") != declared_url:
        raise CitadelleError(f"source {source_url}: not the declared migration source of {env} "
                             f"({declared_url}); nothing was copied")
    entry, path = _clouds_entry(cloud, clouds_yaml)
    auth = entry.get("auth", {})
    storage_url = destination_url.rstrip("/") if destination_url else None
    if storage_url is not None:
        check_destination(settings, storage_url, lab)
    storage_url = storage_url or _storage_url(entry, path, cloud)
    check_destination(settings, storage_url, lab)
    cacert = entry.get("cacert")
    destination = DestinationAccess(
        auth_url=str(auth.get("auth_url", "")), username=str(auth.get("username", "")),
        password=str(auth.get("password", "")), project=str(auth.get("project_name", "")),
        user_domain=str(auth.get("user_domain_name", "Default")),
        project_domain=str(auth.get("project_domain_name", "Default")),
        region=str(entry.get("region_name", "")), storage_url=storage_url,
        container=f"citadelle-{env}-{migration.destination_container}",
        ca_file=Path(cacert) if cacert else None, cloud=cloud, clouds_yaml=path,
    )
    source = SourceAccess(url=declared_url, account=account, key=key,
                          containers=migration.source.containers, ca_file=source_ca)
    tuning = Tuning(link_gbps=migration.link_gbps, bandwidth_limit=migration.bandwidth_limit,
                    transfers=migration.transfers, checkers=migration.checkers)
    return MigrationContext(
        environment=env, lab=lab, source=source, destination=destination, tuning=tuning,
        gateways=gateways, run_dir=run_dir or RUNS_DIR / "migrate" / (f"{env}-lab" if lab else env),
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
