"""OpenStack Swift in the loopback cloud: the EU object store the migration lands in.

Debian 12's proxy, account, container and object servers (Swift 2.30) on 127.0.0.1, one device,
one replica. The proxy speaks TLS with a lab-PKI certificate, authenticates with Keystone
(authtoken + keystoneauth) and encrypts every object at rest (SecNumCloud 10.1): the encryption
middleware's root secret is an AES-256 secret held in Barbican (on SoftHSM2), fetched at start-up
by the KMS keymaster; no configuration file holds it, and without Keystone or Barbican the proxy
refuses to start rather than store plaintext.

Swift reads ``swift.conf`` from /etc/swift unless told otherwise; the servers are started through
a launcher that points Swift at the lab's own directory first, so the host's /etc stays untouched.
"""

from __future__ import annotations

import os
import pwd
import secrets as pysecrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

from citadelle.errors import CitadelleError
from citadelle.files import private_dir, write_file
from citadelle.lab.cloud import configs
from citadelle.lab.cloud.configs import HOST


@dataclass(frozen=True)
class SwiftPorts:
    proxy: int = configs.SWIFT_PROXY_PORT
    object: int = 16010
    container: int = 16011
    account: int = 16012


SWIFT_PORTS = SwiftPorts()
SERVER_PORTS = (SWIFT_PORTS.object, SWIFT_PORTS.container, SWIFT_PORTS.account)
SERVERS = ("swift-account", "swift-container", "swift-object", "swift-proxy")
SERVICE_USER = "swift"
RING_BUILDER = Path("/usr/bin/swift-ring-builder")
SYSTEM_PYTHON = Path("/usr/bin/python3")
# Swift's servers read swift.conf from /etc/swift at import time unless the directory is set
# first: the launcher does that, then runs the server as /usr/bin/swift-*-server would.
LAUNCHER = """\
import sys
from swift.common import utils
utils.set_swift_dir(sys.argv[1])
from swift.common.wsgi import run_wsgi
kwargs = {}
if sys.argv[3] == "object-server":
    from swift.obj import server
    kwargs["global_conf_callback"] = server.global_conf_callback
sys.exit(run_wsgi(sys.argv[2], sys.argv[3], verbose=True, **kwargs))
"""
REQUIRED = (
    RING_BUILDER,
    Path("/usr/bin/swift-proxy-server"),
    Path("/usr/lib/python3/dist-packages/swift/common/middleware/crypto/kms_keymaster.py"),
    Path("/usr/lib/python3/dist-packages/keystonemiddleware/auth_token/__init__.py"),
    Path("/usr/lib/python3/dist-packages/castellan/__init__.py"),
    Path("/usr/lib/python3/dist-packages/barbicanclient/__init__.py"),
)


def proxy_url() -> str:
    return f"https://{HOST}:{SWIFT_PORTS.proxy}"


def catalog_url() -> str:
    return f"{proxy_url()}/v1/AUTH_$(project_id)s"


@dataclass(frozen=True)
class SwiftFiles:
    """Where the object store keeps its configuration, rings and data under the lab state."""

    root: Path

    @property
    def etc(self) -> Path:
        return self.root / "etc"

    @property
    def devices(self) -> Path:
        return self.root / "devices"

    def conf(self, server: str) -> Path:
        return self.etc / f"{server.removeprefix('swift-')}-server.conf"

    @property
    def keymaster_conf(self) -> Path:
        return self.etc / "keymaster.conf"

    @property
    def info_key_file(self) -> Path:
        return self.etc / "info-key"


def new_hash_salts() -> tuple[str, str]:
    """swift.conf's hash path prefix and suffix: secret, fixed for the cluster's lifetime."""
    return pysecrets.token_hex(16), pysecrets.token_hex(16)


def _common(files: SwiftFiles, port: int, name: str) -> dict[str, str]:
    return {
        "bind_ip": HOST,
        "bind_port": str(port),
        "workers": "1",
        "swift_dir": str(files.etc),
        "devices": str(files.devices),
        "mount_check": "false",
        # The servers would switch to the Debian 'swift' user; the lab runs as its operator.
        "user": pwd.getpwuid(os.getuid()).pw_name,
        "log_name": name,
        # No /dev/log here: syslog datagrams go to a loopback port nobody reads, the console log
        # (verbose) is the record.
        "log_udp_host": HOST,
        "log_udp_port": "16019",
    }


def render_configs(
    files: SwiftFiles, *, prefix: str, suffix: str, swift_password: str, root_secret_id: str,
    cert: Path, key: Path, info_key: str,
) -> None:
    private_dir(files.etc)
    (files.devices / "d1").mkdir(parents=True, exist_ok=True)
    write_file(files.etc / "swift.conf", configs.render({
        "swift-hash": {"swift_hash_path_prefix": prefix, "swift_hash_path_suffix": suffix},
        "storage-policy:0": {"name": "gold", "default": "yes"},
    }), 0o600)
    for server, port, app in (
        ("swift-account", SWIFT_PORTS.account, "account"),
        ("swift-container", SWIFT_PORTS.container, "container"),
        ("swift-object", SWIFT_PORTS.object, "object"),
    ):
        kind = server.removeprefix("swift-")
        write_file(files.conf(server), configs.render({
            "DEFAULT": _common(files, port, f"{kind}-server"),
            "pipeline:main": {"pipeline": f"{kind}-server"},
            f"app:{kind}-server": {"use": f"egg:swift#{app}"},
            f"{kind}-replicator": {}, f"{kind}-auditor": {},
        }), 0o600)
    proxy_common = {k: v for k, v in _common(files, SWIFT_PORTS.proxy, "proxy-server").items()
                    if k not in ("devices", "mount_check")}
    write_file(files.info_key_file, info_key + "\n", 0o600)
    write_file(files.conf("swift-proxy"), configs.render({
        "DEFAULT": {**proxy_common, "cert_file": str(cert), "key_file": str(key)},
        "pipeline:main": {"pipeline": " ".join((
            "catch_errors", "gatekeeper", "healthcheck", "proxy-logging", "listing_formats",
            "authtoken", "keystoneauth", "copy", "slo", "dlo", "versioned_writes", "symlink",
            # Encryption sits last before the proxy: everything stored is encrypted.
            "kms_keymaster", "encryption", "proxy-logging", "proxy-server"))},
        # The admin section of /info (encryption among it) answers requests signed with
        # info_key: the provider hands that key to the cloud audit.
        "app:proxy-server": {"use": "egg:swift#proxy", "account_autocreate": "true",
                             "expose_info": "true", "admin_key": info_key},
        "filter:catch_errors": {"use": "egg:swift#catch_errors"},
        "filter:gatekeeper": {"use": "egg:swift#gatekeeper"},
        "filter:healthcheck": {"use": "egg:swift#healthcheck"},
        "filter:proxy-logging": {"use": "egg:swift#proxy_logging"},
        "filter:listing_formats": {"use": "egg:swift#listing_formats"},
        "filter:authtoken": {
            "paste.filter_factory": "keystonemiddleware.auth_token:filter_factory",
            **configs.authtoken(SERVICE_USER, swift_password),
            "delay_auth_decision": "true",
        },
        "filter:keystoneauth": {
            "use": "egg:swift#keystoneauth", "operator_roles": "admin, member",
            "reseller_prefix": "AUTH_",
        },
        "filter:copy": {"use": "egg:swift#copy"},
        "filter:slo": {"use": "egg:swift#slo"},
        "filter:dlo": {"use": "egg:swift#dlo"},
        "filter:versioned_writes": {
            "use": "egg:swift#versioned_writes", "allow_object_versioning": "true",
        },
        "filter:symlink": {"use": "egg:swift#symlink"},
        "filter:kms_keymaster": {
            "use": "egg:swift#kms_keymaster",
            "keymaster_config_path": str(files.keymaster_conf),
        },
        "filter:encryption": {"use": "egg:swift#encryption"},
    }), 0o600)
    # The keymaster's Keystone credentials and the Barbican id of the root secret; the secret
    # itself never leaves Barbican except into the proxy's memory.
    write_file(files.keymaster_conf, configs.render({"kms_keymaster": {
        "key_id": root_secret_id,
        "username": SERVICE_USER,
        "password": swift_password,
        "project_name": configs.SERVICE_PROJECT,
        "user_domain_name": "Default",
        "project_domain_name": "Default",
        "auth_endpoint": configs.keystone_url() + "/v3",
    }}), 0o600)


def build_rings(files: SwiftFiles) -> None:
    """One-device rings (2^10 partitions, one replica), rebuilt with every fresh state."""
    for ring, port in (("account", SWIFT_PORTS.account), ("container", SWIFT_PORTS.container),
                       ("object", SWIFT_PORTS.object)):
        builder = str(files.etc / f"{ring}.builder")
        for args in (["create", "10", "1", "1"], ["add", f"r1z1-{HOST}:{port}/d1", "100"],
                     ["rebalance"]):
            proc = subprocess.run([str(SYSTEM_PYTHON), str(RING_BUILDER), builder, *args],
                                  capture_output=True, text=True, check=False)
            # rebalance exits 1 with a warning on a one-device ring; the ring file is what counts.
            if proc.returncode not in (0, 1):
                raise CitadelleError(f"cloud lab: swift-ring-builder {ring} {args[0]} failed: "
                                     f"{(proc.stderr or proc.stdout).strip()[-200:]}")
        if not (files.etc / f"{ring}.ring.gz").is_file():
            raise CitadelleError(f"cloud lab: the {ring} ring was not written")


def commands(files: SwiftFiles) -> dict[str, list[str]]:
    return {
        server: [str(SYSTEM_PYTHON), "-c", LAUNCHER, str(files.etc), str(files.conf(server)),
                 f"{server.removeprefix('swift-')}-server"]
        for server in SERVERS
    }


def check_installed() -> None:
    missing = [str(p) for p in REQUIRED if not p.exists()]
    if missing:
        raise CitadelleError(
            f"cloud lab: Swift not installed ({missing[0]} missing): run scripts/install-cloud-lab"
        )
