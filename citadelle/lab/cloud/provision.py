"""What a provider sets up before handing a project to a customer, done once through the APIs.

Service users and catalog, the customer's project with a member user, an external network for
floating IPs, and a LUKS-encrypted volume type with its encryption spec.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openstack
from openstack.config import loader

from citadelle.lab.cloud import configs
from citadelle.lab.cloud.configs import ADMIN_CLOUD_NAME, CLOUD_NAME, MEMBER_USER, Secrets

EXTERNAL_NETWORK = "public"
# TEST-NET-3 (RFC 5737): never routed, the lab has no data plane anyway.
EXTERNAL_CIDR = "203.0.113.0/24"
LUKS_TYPE = "luks"
LUKS_SPEC = {
    "provider": "luks",
    "cipher": "aes-xts-plain64",
    "key_size": 256,
    "control_location": "front-end",
}
SERVICE_CATALOG = (
    ("barbican", "key-manager", "Key Manager"),
    ("neutron", "network", "Networking"),
    ("cinderv3", "block-storage", "Block Storage"),
    ("swift", "object-store", "Object Storage"),
)


def connect(cloud: str, clouds_yaml: str) -> Any:
    """An openstacksdk connection to ``cloud`` from a given clouds.yaml only."""
    config = loader.OpenStackConfig(config_files=[clouds_yaml], load_envvars=False)
    return openstack.connection.Connection(config=config.get_one(cloud=cloud))


def provision(secrets: Secrets, clouds_yaml: Path) -> None:
    conn = connect(ADMIN_CLOUD_NAME, str(clouds_yaml))
    identity = conn.identity
    domain = identity.find_domain("default")
    service_project = identity.create_project(name=configs.SERVICE_PROJECT, domain_id=domain.id)
    member_project = identity.create_project(name=configs.MEMBER_PROJECT, domain_id=domain.id)
    roles = {role.name: role for role in identity.roles()}
    service_role = roles.get("service") or identity.create_role(name="service")

    for name, password in (
        ("barbican", secrets.barbican_password),
        ("neutron", secrets.neutron_password),
        ("cinder", secrets.cinder_password),
        ("swift", secrets.swift_password),
    ):
        user = identity.create_user(
            name=name, password=password, domain_id=domain.id, default_project_id=service_project.id
        )
        identity.assign_project_role_to_user(service_project, user, service_role)
        # Cinder and Neutron look up projects and validate tokens on the service's behalf.
        identity.assign_project_role_to_user(service_project, user, roles["admin"])

    member = identity.create_user(
        name=MEMBER_USER,
        password=secrets.member_password,
        domain_id=domain.id,
        default_project_id=member_project.id,
    )
    identity.assign_project_role_to_user(member_project, member, roles["member"])

    urls = configs.endpoint_urls()
    for name, service_type, description in SERVICE_CATALOG:
        service = identity.create_service(name=name, type=service_type, description=description)
        for interface in ("public", "internal"):
            identity.create_endpoint(
                service_id=service.id,
                interface=interface,
                url=urls[service_type],
                region_id=configs.REGION,
            )

    conn = connect(ADMIN_CLOUD_NAME, str(clouds_yaml))  # fresh catalog
    network = conn.network.create_network(
        name=EXTERNAL_NETWORK,
        is_router_external=True,
        provider_network_type="flat",
        provider_physical_network="public",
    )
    conn.network.create_subnet(
        name=f"{EXTERNAL_NETWORK}-subnet",
        network_id=network.id,
        ip_version=4,
        cidr=EXTERNAL_CIDR,
        is_dhcp_enabled=False,
    )
    volume_type = conn.block_storage.create_type(
        name=LUKS_TYPE, is_public=True, description="LUKS, front-end, aes-xts-plain64, 256 bit"
    )
    conn.block_storage.create_type_encryption(volume_type, **LUKS_SPEC)


def create_root_secret(secrets: Secrets, clouds_yaml: Path) -> str:
    """Swift's encryption root secret: 256 random bits generated and kept by Barbican, owned by
    the swift service user's project (the keymaster reads it with those credentials)."""
    config = loader.OpenStackConfig(config_files=[str(clouds_yaml)], load_envvars=False)
    region = config.get_one(cloud=ADMIN_CLOUD_NAME)
    auth = dict(region.config["auth"])
    auth.update(username="swift", password=secrets.swift_password,
                project_name=configs.SERVICE_PROJECT)
    conn = openstack.connect(auth=auth, region_name=configs.REGION, identity_api_version="3",
                             load_yaml_config=False, load_envvars=False)
    order = conn.key_manager.create_order(
        type="key", meta={"name": "citadelle-lab-swift-root-secret", "algorithm": "aes",
                          "bit_length": 256, "mode": "ctr"})
    order = conn.key_manager.get_order(str(order.order_ref).rsplit("/", 1)[-1])
    if not order.secret_ref:
        raise RuntimeError(f"Barbican order for the Swift root secret not fulfilled: {order}")
    return str(order.secret_ref).rsplit("/", 1)[-1]


def warm_up(clouds_yaml: Path) -> None:
    """One authenticated read per service, as the member."""
    conn = connect(CLOUD_NAME, str(clouds_yaml))
    list(conn.network.networks(limit=1))
    list(conn.block_storage.types())
    list(conn.key_manager.secrets(limit=1))
