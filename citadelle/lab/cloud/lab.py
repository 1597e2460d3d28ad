"""A real OpenStack (Keystone, Barbican on SoftHSM2, Neutron API, Cinder API) on 127.0.0.1.

Each service runs under uwsgi, one process and one thread (SQLite), started and stopped by PID.
The first ``up`` bootstraps empty databases (~40 s) and snapshots them; later ``up`` restores the
snapshot (~13 s), so every session starts from the same clean provider state.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets as pysecrets
import shutil
import socket
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from citadelle.errors import CitadelleError
from citadelle.files import private_dir, write_file
from citadelle.lab.cloud import configs, swift
from citadelle.lab.cloud.configs import HOST, PORTS, Secrets
from citadelle.lab.collector import Collector
from citadelle.lab.supervisor import alive, launch, stop
from citadelle.paths import LAB_DIR, REPO_ROOT

LAB = LAB_DIR / "cloud"
STATE = LAB / "state"
SNAPSHOT = LAB / "snapshot"
PKGROOT = LAB / "pkgroot"
BARBICAN_VENV = LAB / "barbican-venv"
CLOUDS_YAML = LAB / "clouds.yaml"
PIDS_FILE = LAB / "pids.json"
SECRETS_FILE = STATE / "secrets.json"
BARBICAN_HOME = STATE / "barbican-home"
SWIFT = swift.SwiftFiles(STATE / "swift")
# Barbican id of Swift's encryption root secret (an id, not the secret), kept with the snapshot.
ROOT_SECRET_ID_FILE = STATE / "swift-root-secret-id"

CLOUD_NAME = configs.CLOUD_NAME
ADMIN_CLOUD_NAME = configs.ADMIN_CLOUD_NAME
MEMBER_USER = configs.MEMBER_USER
API_SERVICES = ("keystone", "barbican", "neutron", "cinder")
SERVICES = (*API_SERVICES, *swift.SERVERS)
DATABASES = ("keystone", "barbican", "neutron", "cinder")
# Availability zones the lab's provider offers (registered Cinder volume services).
AVAILABILITY_ZONES = ("fr-par-1a", "fr-par-1b", "fr-par-1c")
UWSGI = Path("/usr/bin/uwsgi-core")
SYSTEM_PYTHON = Path("/usr/bin/python3")
HEALTH_TIMEOUT = 120.0
INSTALL_HINT = "run scripts/install-cloud-lab"


@dataclass(frozen=True)
class UpResult:
    seconds: float
    cold: bool
    pids: dict[str, int]


def service_port(service: str) -> int:
    if service.startswith("swift-"):
        swift_port: int = getattr(swift.SWIFT_PORTS, service.removeprefix("swift-"))
        return swift_port
    port: int = getattr(PORTS, service)
    return port


def check_installed() -> None:
    required = [
        UWSGI,
        Path("/usr/lib/uwsgi/plugins/python3_plugin.so"),
        configs.SOFTHSM_LIBRARY,
        Path("/usr/bin/softhsm2-util"),
        Path("/usr/bin/keystone-manage"),
        Path("/usr/bin/keystone-wsgi-public"),
        PKGROOT / "usr/bin/neutron-api",
        PKGROOT / "usr/bin/neutron-db-manage",
        PKGROOT / "usr/share/neutron-common/api-paste.ini",
        PKGROOT / "usr/bin/cinder-wsgi",
        PKGROOT / "usr/bin/cinder-manage",
        PKGROOT / "usr/share/cinder-common/api-paste.ini",
        BARBICAN_VENV / "bin/barbican-manage",
        BARBICAN_VENV / "etc/barbican/barbican-api-paste.ini",
    ]
    missing = [str(p) for p in required if not p.exists()]
    if missing:
        raise CitadelleError(f"cloud lab not installed ({missing[0]} missing): {INSTALL_HINT}")
    swift.check_installed()


# -- processes -------------------------------------------------------------------------------


def _read_pids() -> dict[str, int]:
    if not PIDS_FILE.exists():
        return {}
    data: dict[str, int] = json.loads(PIDS_FILE.read_text())
    return data


def _write_pids(pids: Mapping[str, int]) -> None:
    PIDS_FILE.write_text(json.dumps(dict(pids), indent=2) + "\n")


def _is_lab_process(pid: int) -> bool:
    """True when ``pid`` is alive and still one of this lab's uwsgi masters (not a reused PID)."""
    return alive(pid, _marker())


def _marker() -> str:
    return f"CITADELLE_CLOUD_LAB={LAB}"


def running() -> dict[str, int]:
    return {name: pid for name, pid in _read_pids().items() if _is_lab_process(pid)}


def down() -> list[str]:
    """Stop every lab service by its recorded PID; returns the names stopped."""
    stopped = []
    for name, pid in _read_pids().items():
        if _is_lab_process(pid):
            # SIGTERM to the master (--die-on-term) stops its worker cleanly; its session is
            # killed only if it does not exit in time.
            stop(pid, _marker(), grace=15.0, what=f"cloud lab {name}")
            stopped.append(name)
    PIDS_FILE.unlink(missing_ok=True)
    return stopped


def _uwsgi_command(
    service: str, wsgi_file: Path, pyargv: str = "", home: Path | None = None
) -> list[str]:
    cmd = [
        str(UWSGI),
        "--plugin", "python3",
        "--http-socket", f"{HOST}:{service_port(service)}",
        # Without it clients reusing keep-alive connections hang on uwsgi's http-socket.
        "--add-header", "Connection: close",
        "--master", "--processes", "1", "--threads", "1",
        "--die-on-term", "--need-app",
        "--buffer-size", "65535",
        "--wsgi-file", str(wsgi_file),
        "--chdir", str(STATE),
        "--logto", str(STATE / "log" / f"{service}-uwsgi.log"),
    ]  # fmt: skip
    if pyargv:
        cmd += ["--pyargv", pyargv]
    if home is not None:
        cmd += ["--home", str(home)]
    return cmd


def _service_commands() -> dict[str, tuple[list[str], dict[str, str]]]:
    etc = STATE / "etc"
    return {
        "keystone": (
            _uwsgi_command("keystone", Path("/usr/bin/keystone-wsgi-public")),
            {"OS_KEYSTONE_CONFIG_FILES": str(etc / "keystone.conf")},
        ),
        "barbican": (
            _uwsgi_command("barbican", etc / "barbican-wsgi.py", home=BARBICAN_VENV),
            _barbican_env(),
        ),
        "neutron": (
            _uwsgi_command(
                "neutron",
                PKGROOT / "usr/bin/neutron-api",
                pyargv=f"--config-file {etc / 'neutron.conf'} --config-file {etc / 'ml2_conf.ini'}",
            ),
            {},
        ),
        "cinder": (
            _uwsgi_command(
                "cinder",
                PKGROOT / "usr/bin/cinder-wsgi",
                pyargv=f"--config-file {etc / 'cinder.conf'}",
            ),
            {},
        ),
    }


def _hsm_env() -> dict[str, str]:
    return {"SOFTHSM2_CONF": str(STATE / "etc" / "softhsm2.conf")}


def _barbican_env() -> dict[str, str]:
    # Barbican parses its configuration at import time from the default search path only
    # (~/.barbican/barbican.conf first), ignoring the command line.
    return {**_hsm_env(), "HOME": str(BARBICAN_HOME)}


def _port_in_use(port: int) -> bool:
    if port == swift.SWIFT_PORTS.proxy or port in swift.SERVER_PORTS:
        # TLS or Swift's own protocol: a TCP connect is the test.
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.5)
            return sock.connect_ex((HOST, port)) == 0
    try:
        urllib.request.urlopen(f"http://{HOST}:{port}/", timeout=0.5)
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
    return True


def _start(names: Sequence[str]) -> dict[str, int]:
    commands = {**_service_commands(), **{
        name: (cmd, {}) for name, cmd in swift.commands(SWIFT).items()}}
    pids = _read_pids()
    for name in names:
        if _port_in_use(service_port(name)):
            raise CitadelleError(
                f"cloud lab: 127.0.0.1:{service_port(name)} ({name}) is already in use: "
                "run `citadelle lab cloud down` or free the port"
            )
        cmd, extra_env = commands[name]
        marker_key, marker_value = _marker().split("=", 1)
        env = {**os.environ, **extra_env, marker_key: marker_value}
        pids[name] = launch(cmd, STATE / "log" / f"{name}-console.log", env=env)
        _write_pids(pids)
    return {name: pids[name] for name in names}


def _wait_healthy(pids: Mapping[str, int]) -> None:
    pending = dict(pids)
    deadline = time.monotonic() + HEALTH_TIMEOUT
    while pending:
        for name, pid in list(pending.items()):
            if not _is_lab_process(pid):
                down()
                raise CitadelleError(
                    f"cloud lab: {name} exited during start-up; see {_log_hint(name)}"
                )
            if _port_in_use(service_port(name)):
                del pending[name]
        if pending and time.monotonic() > deadline:
            down()
            raise CitadelleError(
                f"cloud lab: {', '.join(pending)} not answering after {HEALTH_TIMEOUT:.0f} s; "
                f"see {_log_hint(next(iter(pending)))}"
            )
        time.sleep(0.2)


def _log_hint(name: str) -> str:
    log = STATE / "log" / f"{name}-uwsgi.log"
    if not log.exists():  # uwsgi stopped before opening its log
        log = STATE / "log" / f"{name}-console.log"
    return str(log.relative_to(REPO_ROOT))


# -- bootstrap -------------------------------------------------------------------------------


Step = tuple[list[str], dict[str, str]]


def _run(cmd: Sequence[str], env: Mapping[str, str] | None = None) -> None:
    result = subprocess.run(
        list(cmd),
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
        cwd=STATE,
    )
    if result.returncode != 0:
        last = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise CitadelleError(f"cloud lab bootstrap: `{Path(cmd[0]).name}` failed: {last[0]}")


def _run_chains(chains: Sequence[Sequence[Step]]) -> None:
    """Run each chain's steps in order, the chains side by side (they share nothing)."""

    def run_chain(chain: Sequence[Step]) -> None:
        for cmd, env in chain:
            _run(cmd, env)

    with ThreadPoolExecutor(max_workers=len(chains)) as pool:
        for future in [pool.submit(run_chain, chain) for chain in chains]:
            future.result()


def _new_secrets() -> Secrets:
    def token() -> str:
        return pysecrets.token_urlsafe(24)

    prefix, suffix = swift.new_hash_salts()

    return Secrets(
        admin_password=token(),
        member_password=token(),
        keystone_service_password=token(),
        barbican_password=token(),
        neutron_password=token(),
        cinder_password=token(),
        hsm_pin=pysecrets.token_hex(12),
        hsm_so_pin=pysecrets.token_hex(12),
        swift_password=token(),
        swift_hash_prefix=prefix,
        swift_hash_suffix=suffix,
    )


def load_secrets() -> Secrets:
    if not SECRETS_FILE.exists():
        raise CitadelleError("cloud lab has never been bootstrapped: run `citadelle lab cloud up`")
    return Secrets(**json.loads(SECRETS_FILE.read_text()))


def _write_configs(secrets: Secrets) -> None:
    etc = private_dir(STATE / "etc")
    neutron_paste = PKGROOT / "usr/share/neutron-common/api-paste.ini"
    cinder_paste = PKGROOT / "usr/share/cinder-common/api-paste.ini"
    files = {
        "keystone.conf": configs.keystone_conf(STATE),
        "neutron.conf": configs.neutron_conf(STATE, secrets, neutron_paste),
        "ml2_conf.ini": configs.ml2_conf(),
        "cinder.conf": configs.cinder_conf(
            STATE, secrets, cinder_paste, etc / "cinder-policy.yaml"
        ),
        "cinder-policy.yaml": configs.CINDER_POLICY,
        "softhsm2.conf": configs.softhsm_conf(STATE),
        "barbican-wsgi.py": configs.BARBICAN_WSGI.format(
            paste=BARBICAN_VENV / "etc/barbican/barbican-api-paste.ini"
        ),
    }
    for name, text in files.items():
        write_file(etc / name, text, 0o600)
    (BARBICAN_HOME / ".barbican").mkdir(parents=True, exist_ok=True)
    write_file(
        BARBICAN_HOME / ".barbican" / "barbican.conf", configs.barbican_conf(STATE, secrets), 0o600
    )


def _create_wal_databases() -> None:
    # WAL lets the API read while another request writes; the mode is stored in the file.
    for name in DATABASES:
        with sqlite3.connect(STATE / "db" / f"{name}.sqlite") as conn:
            conn.execute("PRAGMA journal_mode=WAL")


NEUTRON_SCHEMA = """
import sys
from oslo_config import cfg
from sqlalchemy import create_engine
from neutron.db.migration.models import head
engine = create_engine(sys.argv[1])
head.get_metadata().create_all(engine)
"""

CINDER_AZS = """
import sys
from cinder import context, objects
from cinder.common import config  # noqa: F401 registers options
from cinder.objects import base
from cinder.volume import rpcapi
from oslo_config import cfg
objects.register_all()
cfg.CONF(["--config-file", sys.argv[1]], project="cinder")
ctxt = context.get_admin_context()
for az in sys.argv[2:]:
    objects.Service(ctxt, host="lab-" + az, binary="cinder-volume", topic="cinder-volume",
                    availability_zone=az, report_count=0, disabled=False,
                    rpc_current_version=rpcapi.VolumeAPI.RPC_API_VERSION,
                    object_current_version=base.OBJ_VERSIONS.get_current()).create()
"""


def _bootstrap_databases(secrets: Secrets) -> None:
    etc = STATE / "etc"
    user = pwd.getpwuid(os.getuid()).pw_name
    keystone = ["/usr/bin/keystone-manage", "--config-file", str(etc / "keystone.conf")]
    barbican_manage = [str(BARBICAN_VENV / "bin/barbican-manage")]
    url = configs.keystone_url() + "/v3"
    keystone_chain: list[Step] = [
        ([*keystone, "db_sync"], {}),
        ([*keystone, "fernet_setup", "--keystone-user", user, "--keystone-group", user], {}),
        ([*keystone, "credential_setup", "--keystone-user", user, "--keystone-group", user], {}),
        ([*keystone, "bootstrap",
          "--bootstrap-password", secrets.admin_password,
          "--bootstrap-region-id", configs.REGION,
          "--bootstrap-admin-url", url,
          "--bootstrap-public-url", url,
          "--bootstrap-internal-url", url], {}),
    ]  # fmt: skip
    barbican_chain: list[Step] = [
        (["/usr/bin/softhsm2-util", "--init-token", "--free", "--label", configs.HSM_LABEL,
          "--so-pin", secrets.hsm_so_pin, "--pin", secrets.hsm_pin], _hsm_env()),
        ([*barbican_manage, "db", "upgrade"], _barbican_env()),
        # The master KEK and the HMAC key are generated inside the token.
        ([*barbican_manage, "hsm", "gen_mkek"], _barbican_env()),
        ([*barbican_manage, "hsm", "gen_hmac"], _barbican_env()),
    ]  # fmt: skip
    # Neutron's alembic migrations do not run on SQLite: the tables come from the models,
    # then the revision is stamped so the server accepts the schema.
    neutron_chain: list[Step] = [
        ([str(SYSTEM_PYTHON), "-c", NEUTRON_SCHEMA,
          configs.sqlite_url(STATE / "db" / "neutron.sqlite")], {}),
        ([str(SYSTEM_PYTHON), str(PKGROOT / "usr/bin/neutron-db-manage"),
          "--config-file", str(etc / "neutron.conf"),
          "--config-file", str(etc / "ml2_conf.ini"), "stamp", "heads"], {}),
    ]  # fmt: skip
    cinder_chain: list[Step] = [
        ([str(SYSTEM_PYTHON), str(PKGROOT / "usr/bin/cinder-manage"),
          "--config-file", str(etc / "cinder.conf"), "db", "sync"], {}),
        ([str(SYSTEM_PYTHON), "-c", CINDER_AZS, str(etc / "cinder.conf"),
          *AVAILABILITY_ZONES], {}),
    ]  # fmt: skip
    _run_chains([keystone_chain, barbican_chain, neutron_chain, cinder_chain])


def _snapshot() -> None:
    tmp = LAB / "snapshot.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "db").mkdir(parents=True)
    for name in DATABASES:
        # The backup API copies a consistent image of a live WAL database.
        with (
            sqlite3.connect(STATE / "db" / f"{name}.sqlite") as src,
            sqlite3.connect(tmp / "db" / f"{name}.sqlite") as dst,
        ):
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=WAL")
    for sub in ("fernet-keys", "credential-keys", "tokens"):
        shutil.copytree(STATE / sub, tmp / sub)
    shutil.copy2(SECRETS_FILE, tmp / "secrets.json")
    shutil.copy2(ROOT_SECRET_ID_FILE, tmp / ROOT_SECRET_ID_FILE.name)
    shutil.rmtree(SNAPSHOT, ignore_errors=True)
    tmp.rename(SNAPSHOT)


def _restore() -> None:
    shutil.rmtree(STATE, ignore_errors=True)
    private_dir(STATE)
    for sub in ("db", "fernet-keys", "credential-keys", "tokens"):
        shutil.copytree(SNAPSHOT / sub, STATE / sub)
    shutil.copy2(SNAPSHOT / "secrets.json", SECRETS_FILE)
    shutil.copy2(SNAPSHOT / ROOT_SECRET_ID_FILE.name, ROOT_SECRET_ID_FILE)
    for sub in ("log", "lock", "neutron", "cinder"):
        (STATE / sub).mkdir()


def write_clouds_yaml(secrets: Secrets) -> None:
    def cloud(user: str, password: str, project: str) -> dict[str, object]:
        return {
            "auth": {
                "auth_url": configs.keystone_url() + "/v3",
                "username": user,
                "password": password,
                "project_name": project,
                "user_domain_name": "Default",
                "project_domain_name": "Default",
            },
            "region_name": configs.REGION,
            "interface": "public",
            "identity_api_version": 3,
            # The object store speaks TLS with a lab-CA certificate.
            "cacert": str(ca_file()),
        }

    doc = {
        "clouds": {
            CLOUD_NAME: cloud(MEMBER_USER, secrets.member_password, configs.MEMBER_PROJECT),
            ADMIN_CLOUD_NAME: cloud("admin", secrets.admin_password, "admin"),
        }
    }
    # JSON is valid YAML; clouds.yaml readers accept it.
    write_file(CLOUDS_YAML, json.dumps(doc, indent=2) + "\n", 0o600)


def up(fresh: bool = False) -> UpResult:
    """Start the lab; bootstrap (and snapshot) on first use or when ``fresh``."""
    check_installed()
    started = time.monotonic()
    if running():
        raise CitadelleError("cloud lab is already running: run `citadelle lab cloud down` first")
    cold = fresh or not _snapshot_current()
    private_dir(LAB)
    if cold:
        shutil.rmtree(STATE, ignore_errors=True)
        private_dir(STATE)
        for sub in ("db", "log", "lock", "tokens", "neutron", "cinder"):
            (STATE / sub).mkdir()
        secrets = _new_secrets()
        write_file(SECRETS_FILE, json.dumps(asdict(secrets), indent=2) + "\n", 0o600)
        _write_configs(secrets)
        _create_wal_databases()
        _bootstrap_databases(secrets)
    else:
        _restore()
        secrets = load_secrets()
        _write_configs(secrets)
    write_clouds_yaml(secrets)
    pids = _start(API_SERVICES)
    _wait_healthy(pids)
    # Imported here: openstacksdk costs ~1 s and every other CLI command would pay it.
    from citadelle.lab.cloud import provision  # noqa: PLC0415

    try:
        if cold:
            provision.provision(secrets, CLOUDS_YAML)
            ROOT_SECRET_ID_FILE.write_text(
                provision.create_root_secret(secrets, CLOUDS_YAML) + "\n")
            _snapshot()
        # Each service fetches its own Keystone token on its first request (~2 s): pay it now.
        provision.warm_up(CLOUDS_YAML)
    except Exception as err:
        down()
        raise CitadelleError(f"cloud lab provisioning failed: {err}") from err
    pids.update(_start_swift(secrets))
    return UpResult(seconds=time.monotonic() - started, cold=cold, pids=pids)


def _snapshot_current() -> bool:
    """A snapshot of this lab's shape: its secrets know every service (Swift included)."""
    if not (SNAPSHOT / "secrets.json").is_file():
        return False
    if not (SNAPSHOT / ROOT_SECRET_ID_FILE.name).is_file():
        return False
    known = set(json.loads((SNAPSHOT / "secrets.json").read_text()))
    return known == {f.name for f in fields(Secrets)}


def _start_swift(secrets: Secrets) -> dict[str, int]:
    """Swift on a fresh device (rings rebuilt, no object kept across sessions)."""
    cert, key = Collector(LAB_DIR).server_certificate("swift")
    shutil.rmtree(SWIFT.root, ignore_errors=True)
    swift.render_configs(
        SWIFT, prefix=secrets.swift_hash_prefix, suffix=secrets.swift_hash_suffix,
        swift_password=secrets.swift_password,
        root_secret_id=ROOT_SECRET_ID_FILE.read_text().strip(), cert=cert, key=key,
        info_key=pysecrets.token_urlsafe(24),
    )
    swift.build_rings(SWIFT)
    pids = _start(swift.SERVERS)
    _wait_healthy(pids)
    return pids


def ca_file() -> Path:
    """The lab CA that signs the object store's (and the migration source's) certificates."""
    return Collector(LAB_DIR).ca_cert
