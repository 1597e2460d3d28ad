"""Configuration files of the loopback OpenStack services, rendered from the lab's paths.

Every service listens on 127.0.0.1 only, keeps its state in SQLite under the lab directory and
talks to no message bus (``fake://``): the lab covers the APIs, not the data plane.
"""

from __future__ import annotations

import configparser
import io
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
REGION = "fr-par-1"
SERVICE_PROJECT = "service"
MEMBER_PROJECT = "citadelle-lab"
MEMBER_USER = "citadelle-member"
CLOUD_NAME = "citadelle-lab"
ADMIN_CLOUD_NAME = "citadelle-lab-admin"
HSM_LABEL = "citadelle-lab"
MKEK_LABEL = "citadelle-lab-mkek"
HMAC_LABEL = "citadelle-lab-hmac"
SOFTHSM_LIBRARY = Path("/usr/lib/softhsm/libsofthsm2.so")


@dataclass(frozen=True)
class Ports:
    keystone: int = 15000
    barbican: int = 19311
    neutron: int = 19696
    cinder: int = 18776


PORTS = Ports()
SWIFT_PROXY_PORT = 18080  # TLS; the other Swift ports are in citadelle.lab.cloud.swift


@dataclass(frozen=True)
class Secrets:
    """Generated at bootstrap, stored 0600 under the lab directory, never committed."""

    admin_password: str
    member_password: str
    keystone_service_password: str
    barbican_password: str
    neutron_password: str
    cinder_password: str
    hsm_pin: str
    hsm_so_pin: str
    swift_password: str
    swift_hash_prefix: str
    swift_hash_suffix: str


def keystone_url() -> str:
    return f"http://{HOST}:{PORTS.keystone}"


def endpoint_urls() -> dict[str, str]:
    """Service type -> public URL as registered in the catalog."""
    return {
        "key-manager": f"http://{HOST}:{PORTS.barbican}",
        "network": f"http://{HOST}:{PORTS.neutron}",
        "volumev3": f"http://{HOST}:{PORTS.cinder}/v3/$(project_id)s",
        "block-storage": f"http://{HOST}:{PORTS.cinder}/v3/$(project_id)s",
        "object-store": f"https://{HOST}:{SWIFT_PROXY_PORT}/v1/AUTH_$(project_id)s",
    }


def render(sections: dict[str, dict[str, str]]) -> str:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    for name, options in sections.items():
        if name != "DEFAULT":
            parser.add_section(name)
        for key, value in options.items():
            parser.set(name, key, value)
    out = io.StringIO()
    parser.write(out)
    return out.getvalue()


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def authtoken(username: str, password: str) -> dict[str, str]:
    return {
        "www_authenticate_uri": keystone_url(),
        "auth_url": keystone_url(),
        "auth_type": "password",
        "project_domain_name": "Default",
        "user_domain_name": "Default",
        "project_name": SERVICE_PROJECT,
        "username": username,
        "password": password,
        "region_name": REGION,
        "service_token_roles_required": "true",
    }


def keystone_conf(state: Path) -> str:
    return render(
        {
            "DEFAULT": {"log_file": str(state / "log" / "keystone.log"), "use_stderr": "false"},
            "database": {"connection": sqlite_url(state / "db" / "keystone.sqlite")},
            "token": {"provider": "fernet"},
            "fernet_tokens": {"key_repository": str(state / "fernet-keys")},
            "fernet_receipts": {"key_repository": str(state / "fernet-keys")},
            "credential": {"key_repository": str(state / "credential-keys")},
            # Without a cache every token validation re-reads SQLite (~300 ms instead of ~10 ms).
            "cache": {"enabled": "true", "backend": "dogpile.cache.memory"},
            # Lab-only loopback accounts: bcrypt's minimum cost keeps each login ~10 ms on a
            # shared 2-core machine instead of ~300 ms.
            "identity": {"password_hash_rounds": "4"},
        }
    )


def barbican_conf(state: Path, secrets: Secrets) -> str:
    return render(
        {
            "DEFAULT": {
                "host_href": f"http://{HOST}:{PORTS.barbican}",
                "log_file": str(state / "log" / "barbican.log"),
                "use_stderr": "false",
                "transport_url": "fake://",
            },
            "database": {
                "connection": sqlite_url(state / "db" / "barbican.sqlite"),
                "db_auto_create": "false",
            },
            # Orders are processed in the API process: no worker, no message bus.
            "queue": {"enable": "false"},
            "secretstore": {
                "namespace": "barbican.secretstore.plugin",
                "enabled_secretstore_plugins": "store_crypto",
            },
            "crypto": {
                "namespace": "barbican.crypto.plugin",
                "enabled_crypto_plugins": "p11_crypto",
            },
            "p11_crypto_plugin": {
                "library_path": str(SOFTHSM_LIBRARY),
                "token_labels": HSM_LABEL,
                "login": secrets.hsm_pin,
                "mkek_label": MKEK_LABEL,
                "mkek_length": "32",
                "hmac_label": HMAC_LABEL,
                "hmac_key_type": "CKK_GENERIC_SECRET",
                "hmac_keygen_mechanism": "CKM_GENERIC_SECRET_KEY_GEN",
                "hmac_mechanism": "CKM_SHA256_HMAC",
                "encryption_mechanism": "CKM_AES_GCM",
                # SoftHSM 2.6.1 has no CKM_AES_CBC_PAD; RFC 5649 key wrap needs no IV.
                "key_wrap_mechanism": "CKM_AES_KEY_WRAP_PAD",
                "key_wrap_generate_iv": "false",
                "always_set_cka_sensitive": "true",
                "os_locking_ok": "false",
            },
            "keystone_authtoken": authtoken("barbican", secrets.barbican_password),
            "oslo_concurrency": {"lock_path": str(state / "lock")},
        }
    )


def neutron_conf(state: Path, secrets: Secrets, paste: Path) -> str:
    return render(
        {
            "DEFAULT": {
                "core_plugin": "ml2",
                "service_plugins": "router",
                "auth_strategy": "keystone",
                "transport_url": "fake://",
                "api_paste_config": str(paste),
                "state_path": str(state / "neutron"),
                "log_file": str(state / "log" / "neutron.log"),
                "use_stderr": "false",
                "notify_nova_on_port_status_changes": "false",
                "notify_nova_on_port_data_changes": "false",
                "allow_overlapping_ips": "true",
            },
            "database": {"connection": sqlite_url(state / "db" / "neutron.sqlite")},
            "keystone_authtoken": authtoken("neutron", secrets.neutron_password),
            "oslo_concurrency": {"lock_path": str(state / "lock")},
            "agent": {"root_helper": ""},
        }
    )


def ml2_conf() -> str:
    # No mechanism driver: networks, subnets, routers and ports are real API objects whose
    # ports are never bound to any host.
    return render(
        {
            "ml2": {
                "type_drivers": "flat,vxlan",
                "tenant_network_types": "vxlan",
                "mechanism_drivers": "",
                "extension_drivers": "port_security",
            },
            "ml2_type_flat": {"flat_networks": "public"},
            "ml2_type_vxlan": {"vni_ranges": "1:4000"},
        }
    )


def cinder_conf(state: Path, secrets: Secrets, paste: Path, policy: Path) -> str:
    return render(
        {
            "DEFAULT": {
                "auth_strategy": "keystone",
                "transport_url": "fake://",
                "api_paste_config": str(paste),
                "state_path": str(state / "cinder"),
                "log_file": str(state / "log" / "cinder.log"),
                "use_stderr": "false",
                "my_ip": HOST,
                "osapi_volume_listen": HOST,
                "enabled_backends": "",
            },
            "database": {"connection": sqlite_url(state / "db" / "cinder.sqlite")},
            "keystone_authtoken": authtoken("cinder", secrets.cinder_password),
            "oslo_concurrency": {"lock_path": str(state / "lock")},
            "oslo_policy": {"policy_file": str(policy)},
            "coordination": {"backend_url": f"file://{state / 'cinder'}"},
        }
    )


# The lab's provider lets project readers read volume-type encryption specs (Cinder's default is
# admin only), so a member can verify that the offered LUKS type really encrypts.
CINDER_POLICY = (
    '"volume_extension:volume_type_encryption:get": '
    '"role:admin or (role:reader and project_id:%(project_id)s)"\n'
)


def softhsm_conf(state: Path) -> str:
    return (
        f"directories.tokendir = {state / 'tokens'}\n"
        "objectstore.backend = file\n"
        "log.level = ERROR\n"
        "slots.removable = false\n"
    )


BARBICAN_WSGI = """\
# Barbican's own WSGI entry point hard-codes /etc/barbican/barbican-api-paste.ini.
from paste import deploy

application = deploy.loadapp("config:{paste}")
"""
