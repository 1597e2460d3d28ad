"""Deploy an environment's offline plan into the loopback cloud through openstacksdk.

This stands in for `pulumi up` (no Pulumi CLI here): networks, subnets, routers and their
interfaces, security groups and rules, ports, floating IPs, the encrypted volume type, volumes,
Barbican secrets with their ACLs and Swift containers, all from the recorded inputs.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from citadelle.plan.offline import RecordedResource, Recording


@dataclass
class Seeded:
    ids: dict[str, str] = field(default_factory=dict)  # plan (mock) id -> live id
    names: dict[str, str] = field(default_factory=dict)  # declared name -> live id


def _kind(resource: RecordedResource) -> str:
    return resource.type.rsplit(":", 1)[-1]


def _of(recording: Recording, kind: str) -> list[RecordedResource]:
    return [r for r in recording.resources if _kind(r) == kind]


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def set_secret_acl(conn: Any, secret_ref: str, users: list[str], project_access: bool) -> None:
    secret_id = secret_ref.rsplit("/", 1)[-1]
    body = {"read": {"project-access": project_access, "users": users}}
    conn.key_manager.put(f"/secrets/{secret_id}/acl", json=body).raise_for_status()


def seed(admin: Any, member: Any, recording: Recording, project_id: str) -> Seeded:
    """Create the plan's resources in ``member``'s project; ``admin`` does the provider's part."""
    seeded = Seeded()
    public = admin.network.find_network("public")
    _seed_networks(member.network, recording, seeded, public.id)
    _seed_security(member.network, recording, seeded)
    _seed_ports(member.network, recording, seeded, public.id)
    _seed_storage(admin, member, recording, seeded, project_id)
    _seed_secrets(admin, member, recording, seeded)
    seed_containers(member, recording, seeded)
    return seeded


def seed_containers(member: Any, recording: Recording, seeded: Seeded | None = None) -> None:
    """The plan's Swift containers with their ACLs, versioning and metadata (idempotent PUT)."""
    for r in _of(recording, "Container"):
        i = r.inputs
        headers = {
            "X-Container-Read": i.get("containerRead", ""),
            "X-Container-Write": i.get("containerWrite", ""),
            "X-Versions-Enabled": "true" if i.get("versioning") else "false",
            **{f"X-Container-Meta-{k}": str(v) for k, v in (i.get("metadata") or {}).items()},
        }
        member.object_store.put(f"/{quote(str(i['name']))}", headers=headers).raise_for_status()
        if seeded is not None:
            _record(seeded, r, str(i["name"]))


def _record(seeded: Seeded, resource: RecordedResource, live_id: str) -> None:
    if resource.id:
        seeded.ids[resource.id] = live_id
    name = resource.inputs.get("name")
    if name:
        seeded.names[str(name)] = live_id


def _seed_networks(net: Any, recording: Recording, seeded: Seeded, public_id: str) -> None:
    for r in _of(recording, "Network"):
        _record(seeded, r, net.create_network(
            name=r.inputs["name"], port_security_enabled=r.inputs.get("portSecurityEnabled", True)
        ).id)  # fmt: skip
    for r in _of(recording, "Subnet"):
        # A subnet declared without gateway (the data tier) is seeded without one, as declared.
        no_gateway = {"gateway_ip": None} if r.inputs.get("noGateway") else {}
        _record(seeded, r, net.create_subnet(
            name=r.inputs["name"], network_id=seeded.ids[r.inputs["networkId"]],
            cidr=r.inputs["cidr"], ip_version=4, is_dhcp_enabled=False,
            dns_nameservers=r.inputs.get("dnsNameservers", []), **no_gateway,
        ).id)  # fmt: skip
    for r in _of(recording, "Router"):
        gateway = {"network_id": public_id} if r.inputs.get("externalNetworkId") else None
        _record(
            seeded, r, net.create_router(name=r.inputs["name"], external_gateway_info=gateway).id
        )
    for r in _of(recording, "RouterInterface"):
        net.add_interface_to_router(
            seeded.ids[r.inputs["routerId"]], subnet_id=seeded.ids[r.inputs["subnetId"]]
        )


def _seed_security(net: Any, recording: Recording, seeded: Seeded) -> None:
    for r in _of(recording, "SecGroup"):
        group = net.create_security_group(
            name=r.inputs["name"], description=r.inputs.get("description", "")
        )
        if r.inputs.get("deleteDefaultRules"):
            for rule in net.security_group_rules(security_group_id=group.id):
                net.delete_security_group_rule(rule)
        _record(seeded, r, group.id)
    for r in _of(recording, "SecGroupRule"):
        i = r.inputs
        remote_group = i.get("remoteGroupId")
        _record(seeded, r, net.create_security_group_rule(
            security_group_id=seeded.ids[i["securityGroupId"]], direction=i["direction"],
            ether_type=i.get("ethertype", "IPv4"), protocol=i.get("protocol"),
            port_range_min=_int(i.get("portRangeMin")), port_range_max=_int(i.get("portRangeMax")),
            remote_ip_prefix=None if remote_group else i.get("remoteIpPrefix"),
            remote_group_id=seeded.ids[remote_group] if remote_group else None,
            description=i.get("description", ""),
        ).id)  # fmt: skip


def _seed_ports(net: Any, recording: Recording, seeded: Seeded, public_id: str) -> None:
    for r in _of(recording, "Port"):
        i = r.inputs
        _record(seeded, r, net.create_port(
            name=i["name"], network_id=seeded.ids[i["networkId"]],
            fixed_ips=[{"subnet_id": seeded.ids[f["subnetId"]]} for f in i.get("fixedIps", [])],
            security_groups=[seeded.ids[g] for g in i.get("securityGroupIds", [])],
        ).id)  # fmt: skip
    associations = {
        a.inputs["floatingIp"]: a.inputs["portId"] for a in _of(recording, "FloatingIpAssociate")
    }
    for r in _of(recording, "FloatingIp"):
        address = r.outputs.get("address")
        port = r.inputs.get("portId") or associations.get(address)
        _record(seeded, r, net.create_ip(
            floating_network_id=public_id, description=r.inputs.get("description", ""),
            port_id=seeded.ids.get(port) if port else None,
        ).id)  # fmt: skip


def _seed_storage(
    admin: Any, member: Any, recording: Recording, seeded: Seeded, project_id: str
) -> None:
    for r in _of(recording, "VolumeTypeV3"):
        specs = r.inputs.get("extraSpecs", {})
        volume_type = admin.block_storage.create_type(
            name=r.inputs["name"], is_public=r.inputs.get("isPublic", False),
            description=r.inputs.get("description", ""), extra_specs=specs,
        )  # fmt: skip
        admin.block_storage.add_type_access(volume_type, project_id)
        # The one-time operator command (docs): the encryption spec pulumi-openstack lacks.
        admin.block_storage.create_type_encryption(
            volume_type,
            provider=specs["citadelle:encryption_provider"],
            cipher=specs["citadelle:encryption_cipher"],
            key_size=int(specs["citadelle:encryption_key_size"]),
            control_location=specs["citadelle:encryption_control_location"],
        )
        _record(seeded, r, volume_type.id)
    for r in _of(recording, "Volume"):
        i = r.inputs
        _record(seeded, r, member.block_storage.create_volume(
            name=i["name"], size=int(i["size"]), volume_type=i["volumeType"],
            availability_zone=i.get("availabilityZone"), metadata=i.get("metadata", {}),
        ).id)  # fmt: skip


def _seed_secrets(admin: Any, member: Any, recording: Recording, seeded: Seeded) -> None:
    users: dict[str, str] = {}
    for r in _of(recording, "SecretV1"):
        i = r.inputs
        readers = (i.get("acl") or {}).get("read") or {}
        for name in readers.get("users", []):
            if name not in users:
                users[name] = admin.identity.create_user(
                    name=name, password=base64.b64encode(os.urandom(24)).decode()
                ).id
        secret = member.key_manager.create_secret(
            name=i["name"], algorithm=i.get("algorithm"), bit_length=_int(i.get("bitLength")),
            mode=i.get("mode"), secret_type=i.get("secretType", "symmetric"),
            payload=base64.b64encode(os.urandom(32)).decode(),
            payload_content_type="application/octet-stream",
            payload_content_encoding="base64",
        )  # fmt: skip
        set_secret_acl(
            member,
            secret.secret_ref,
            [users[n] for n in readers.get("users", [])],
            bool(readers.get("projectAccess", False)),
        )
        _record(seeded, r, secret.secret_ref)
