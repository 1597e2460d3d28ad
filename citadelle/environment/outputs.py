"""The stack outputs of a deployed environment: one model for the program, targets and readers.

The Pulumi program exports exactly these keys (:func:`export_keys`), ``pulumi stack output
--json`` returns them, the lab target produces them for its clones, and the post-deploy steps
read them through :meth:`StackOutputs.parse` (one actionable line per problem).

How a host is reached is data, never a special case: a server with ``sshHost`` is reached
there directly; otherwise it is reached on its private address through the bastion, whose host
key is pinned. A server whose ``hostKeyEd25519`` is known is pinned too.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError
from pydantic.alias_generators import to_camel

from citadelle.errors import CitadelleError

ROLES: tuple[str, ...] = ("bastion", "gateway", "node")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_HOST_KEY = re.compile(r"^ssh-ed25519 [A-Za-z0-9+/=]{60,}( .*)?$")


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True,
                              extra="ignore")


class Bastion(_Model):
    public_ip: StrictStr
    ssh_port: StrictInt
    host_key_ed25519: StrictStr
    public_ips: tuple[StrictStr, ...] = ()


class ServerOutput(_Model):
    role: StrictStr
    private_ip: StrictStr
    # Set where the host is reached directly (a forwarded port), not through the bastion.
    ssh_host: StrictStr | None = None
    ssh_port: StrictInt | None = None
    host_key_ed25519: StrictStr | None = None
    # The server group (compute pool) and network tier the program placed it in.
    pool: StrictStr | None = None
    tier: StrictStr | None = None


class StackOutputs(_Model):
    """What the post-deploy steps (inventory, hardening, checks, audit, migration) need."""

    environment: StrictStr
    admin_user: StrictStr
    admin_group: StrictStr
    servers: dict[str, ServerOutput]
    bastion: Bastion | None = None
    region: StrictStr | None = None
    containers: dict[str, StrictStr] = Field(default_factory=dict)

    @classmethod
    def parse(cls, data: Any) -> StackOutputs:
        """Validate ``pulumi stack output --json`` (or a target's equivalent)."""
        if not isinstance(data, dict):
            raise CitadelleError("stack outputs: expected a JSON object at the top level")
        try:
            outputs = cls.model_validate(data)
        except ValidationError as err:
            raise CitadelleError(f"stack outputs: {_describe(err)}") from None
        outputs._check()
        return outputs

    @classmethod
    def from_plan(cls, data: Any) -> StackOutputs:
        """The outputs an offline plan already knows: servers, users, containers.

        The SSH path (the bastion's address and host key) exists only once deployed, so it is
        left out rather than invented.
        """
        known = {k: v for k, v in data.items() if k != "bastion"}
        try:
            return cls.model_validate(known)
        except ValidationError as err:
            raise CitadelleError(f"plan outputs: {_describe(err)}") from None

    def _check(self) -> None:
        direct = all(s.ssh_host is not None for s in self.servers.values())
        if self.bastion is None and not direct:
            raise CitadelleError("stack outputs: missing key 'bastion'")
        if self.bastion is not None:
            _check_host_key("bastion.hostKeyEd25519", self.bastion.host_key_ed25519)
            try:
                ipaddress.ip_address(self.bastion.public_ip)
            except ValueError:
                raise CitadelleError(
                    "stack outputs: key 'bastion.publicIp' is not an IP address "
                    f"(got {self.bastion.public_ip!r})") from None
        for name, server in self.servers.items():
            if not _SAFE_NAME.match(name):
                raise CitadelleError(
                    f"stack outputs: server name {name!r} is not a valid host name")
            if server.role not in ROLES:
                raise CitadelleError(
                    f"stack outputs: key 'servers.{name}.role' is {server.role!r}; allowed: "
                    f"{', '.join(ROLES)}")
            if server.ssh_host is not None and server.ssh_port is None:
                raise CitadelleError(f"stack outputs: missing key 'servers.{name}.sshPort'")
            if server.host_key_ed25519 is not None:
                _check_host_key(f"servers.{name}.hostKeyEd25519", server.host_key_ed25519)
        if not self.servers:
            raise CitadelleError("stack outputs: key 'servers' is empty; nothing to reach")

    def for_environment(self, env: str) -> StackOutputs:
        """These outputs, refused unless they are ``env``'s."""
        if self.environment != env:
            raise CitadelleError(
                f"stack outputs: key 'environment' is {self.environment!r} but the inventory is "
                f"for {env!r}; pass the outputs of stack {env}")
        return self

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True)


def export_keys() -> tuple[str, ...]:
    """The keys the program must export (its ``pulumi.export`` calls are checked against it)."""
    return tuple(f.alias or n for n, f in StackOutputs.model_fields.items())


def _check_host_key(key: str, value: str) -> None:
    if not _HOST_KEY.match(value.strip()):
        raise CitadelleError(
            f"stack outputs: key '{key}' is not an OpenSSH ed25519 public key "
            "('ssh-ed25519 <base64>')")


def _describe(err: ValidationError) -> str:
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"])
    if first["type"] == "missing":
        return f"missing key '{key}'"
    value = first.get("input")
    if first["type"] in ("dict_type", "model_type"):
        return f"key '{key}' must be an object"
    kind = {"int_type": "int", "string_type": "str"}.get(first["type"], first["msg"])
    return f"key '{key}' must be a {kind} (got {value!r})"
