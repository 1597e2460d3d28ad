"""Run a Pulumi Python program offline under a recording mock monitor.

No Pulumi CLI, cloud or credentials: the program runs in-process with
``pulumi.runtime.set_mocks(..., monitor=RecordingMonitor)``. The monitor records every
registration as the engine would receive it (type token, name, parent, provider, custom flag,
dependencies and the serialised inputs, camelCase), and the mocks answer with realistic,
deterministic outputs (ids, addresses, references) so that references between resources
resolve. Secret values are masked before they are recorded: a recording never holds a secret.
"""

from __future__ import annotations

import contextlib
import contextvars
import gc
import ipaddress
import json
import runpy
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from google.protobuf import json_format
from pulumi.runtime import mocks
from pulumi.runtime import resource as runtime_resource
from pulumi.runtime.config import set_all_config
from pulumi.runtime.proto import source_pb2

from citadelle.errors import CitadelleError

# Pulumi's wire markers (sdk/go/common/resource/sig).
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"  # noqa: S105 - a wire marker, not a secret
SIG_KEY = "4dabf18193072939515e22adb298388d"
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
SECRET_MASK = "[secret]"  # noqa: S105 - what replaces secret values
# Documentation range (RFC 5737): offline floating IPs can never be mistaken for real ones.
OFFLINE_PUBLIC_RANGE = ipaddress.ip_network("203.0.113.0/24")
_NAMESPACE = uuid.UUID("6c1f4a7e-6d2b-4c59-9d8e-1f1c1d3c2a10")


@dataclass
class RecordedResource:
    urn: str
    type: str
    name: str
    custom: bool
    parent: str | None
    provider: str | None
    id: str | None
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    dependencies: list[str] = field(default_factory=list)


@dataclass
class Recording:
    project: str
    stack: str
    resources: list[RecordedResource]
    stack_outputs: dict[str, Any]
    invokes: list[dict[str, Any]] = field(default_factory=list)

    def by_urn(self) -> dict[str, RecordedResource]:
        return {r.urn: r for r in self.resources}

    def by_id(self) -> dict[str, RecordedResource]:
        return {r.id: r for r in self.resources if r.id}

    def of_type(self, type_token: str) -> list[RecordedResource]:
        return [r for r in self.resources if r.type == type_token]

    def to_dict(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "stack": self.stack,
            "resources": [asdict(r) for r in self.resources],
            "stackOutputs": self.stack_outputs,
            "invokes": self.invokes,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recording:
        return cls(
            project=data["project"],
            stack=data["stack"],
            resources=[RecordedResource(**r) for r in data["resources"]],
            stack_outputs=data.get("stackOutputs", {}),
            invokes=data.get("invokes", []),
        )


def mask_secrets(value: Any) -> Any:
    """Replace every secret-wrapped value (wire form) by a marker that keeps it a secret."""
    if isinstance(value, dict):
        if value.get(SIG_KEY) == SECRET_SIG:
            return {SIG_KEY: SECRET_SIG, "value": SECRET_MASK}
        return {k: mask_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_secrets(v) for v in value]
    return value


def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SIG_KEY) == SECRET_SIG


class RecordingMonitor(mocks.MockMonitor):
    """The mock monitor, plus a record of every registration as the engine receives it."""

    def __init__(self, mock: mocks.Mocks) -> None:
        super().__init__(mock)
        self.records: list[RecordedResource] = []

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        if request.type == "pulumi:pulumi:Stack":
            return response
        inputs = json_format.MessageToDict(request.object, preserving_proto_field_name=True)
        state = self.resources[response.urn].state
        computed = {k: v for k, v in state.items() if k not in inputs}
        self.records.append(
            RecordedResource(
                urn=response.urn,
                type=request.type,
                name=request.name,
                custom=bool(request.custom),
                parent=request.parent or None,
                provider=request.provider or None,
                id=response.id or None,
                inputs=mask_secrets(inputs),
                outputs=json.loads(json.dumps(computed, default=str)),
                dependencies=list(request.dependencies),
            )
        )
        return response


OutputHandler = Callable[["OfflineMocks", mocks.MockResourceArgs, dict[str, Any]], None]


class OfflineMocks(mocks.Mocks):
    """Deterministic, realistic outputs for the resource types the programs declare."""

    def __init__(self, stack: str) -> None:
        self.stack = stack
        self.subnet_cidrs: dict[str, str] = {}
        self.next_host: dict[str, int] = {}
        self.next_public = 10
        self.invokes: list[dict[str, Any]] = []
        self.outputs: dict[str, dict[str, Any]] = {}

    def make_id(self, *parts: str) -> str:
        return str(uuid.uuid5(_NAMESPACE, "/".join((self.stack, *parts))))

    def allocate(self, subnet_id: str) -> str:
        cidr = self.subnet_cidrs.get(subnet_id)
        if cidr is None:
            return "10.255.255.254"
        network = ipaddress.ip_network(cidr)
        index = self.next_host.get(subnet_id, 10)
        self.next_host[subnet_id] = index + 1
        return str(network.network_address + index)

    def allocate_public(self) -> str:
        address = OFFLINE_PUBLIC_RANGE.network_address + self.next_public
        self.next_public += 1
        return str(address)

    def call(self, args: mocks.MockCallArgs) -> dict[str, Any]:  # type: ignore[override]
        # A bare dict is the mock runtime's "no check failures" answer.
        self.invokes.append({"token": args.token, "args": dict(args.args)})
        name = str(args.args.get("name", ""))
        return {"id": self.make_id("invoke", args.token, name), "name": name}

    def new_resource(self, args: mocks.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        resource_id = self.make_id(args.typ, args.name)
        state: dict[str, Any] = dict(args.inputs)
        handler = OUTPUT_HANDLERS.get(args.typ)
        if handler is not None:
            handler(self, args, state)
        if args.typ == "openstack:networking/subnet:Subnet":
            self.subnet_cidrs[resource_id] = str(args.inputs.get("cidr"))
        return resource_id, state


def _port(m: OfflineMocks, args: mocks.MockResourceArgs, state: dict[str, Any]) -> None:
    fixed = args.inputs.get("fixedIps") or [{}]
    subnet_id = str(fixed[0].get("subnetId", ""))
    address = m.allocate(subnet_id)
    state["allFixedIps"] = [address]
    state["fixedIps"] = [{"subnetId": subnet_id, "ipAddress": address}]


def _floating_ip(m: OfflineMocks, args: mocks.MockResourceArgs, state: dict[str, Any]) -> None:
    state["address"] = m.allocate_public()


def _load_balancer(m: OfflineMocks, args: mocks.MockResourceArgs, state: dict[str, Any]) -> None:
    state["vipAddress"] = m.allocate(str(args.inputs.get("vipSubnetId", "")))
    state["vipPortId"] = m.make_id("vip-port", args.name)


def _secret(m: OfflineMocks, args: mocks.MockResourceArgs, state: dict[str, Any]) -> None:
    state["secretRef"] = f"offline:barbican/secrets/{m.make_id('secret', args.name)}"


def _container(m: OfflineMocks, args: mocks.MockResourceArgs, state: dict[str, Any]) -> None:
    state["containerRef"] = f"offline:barbican/containers/{m.make_id('container', args.name)}"


def _private_key(m: OfflineMocks, args: mocks.MockResourceArgs, state: dict[str, Any]) -> None:
    # The real key is generated by the tls provider at deploy time; offline there is none.
    state["publicKeyOpenssh"] = f"ssh-ed25519 [offline: generated at deploy time for {args.name}]"
    state["privateKeyOpenssh"] = "[offline: generated at deploy time]"


def _random_bytes(m: OfflineMocks, args: mocks.MockResourceArgs, state: dict[str, Any]) -> None:
    state["base64"] = "[offline: generated at deploy time]"
    state["hex"] = "[offline: generated at deploy time]"


def _magnum_cluster(m: OfflineMocks, args: mocks.MockResourceArgs, state: dict[str, Any]) -> None:
    # The API sits behind the private load balancer in the cluster's own (app tier) subnet.
    subnet_id = str(args.inputs.get("fixedSubnet", ""))
    api = m.allocate(subnet_id)
    masters = [m.allocate(subnet_id) for _ in range(int(args.inputs.get("masterCount", 1)))]
    name = str(args.inputs.get("name", args.name))
    pending = "[offline: issued by Magnum at deploy time]"
    raw = "\n".join((
        "apiVersion: v1",
        "kind: Config",
        "clusters:",
        f"- name: {name}",
        "  cluster:",
        f"    server: https://{api}:6443",
        f"    certificate-authority-data: {pending}",
        "users:",
        "- name: admin",
        "  user:",
        f"    client-certificate-data: {pending}",
        f"    client-key-data: {pending}",
        "contexts:",
        f"- name: {name}",
        "  context:",
        f"    cluster: {name}",
        "    user: admin",
        f"current-context: {name}",
        "",
    ))
    state["apiAddress"] = f"https://{api}:6443"
    state["masterAddresses"] = masters
    state["nodeAddresses"] = []
    state["stackId"] = m.make_id("magnum-stack", args.name)
    state["kubeconfig"] = {
        "raw_config": raw,
        "host": f"https://{api}:6443",
        "cluster_ca_certificate": pending,
        "client_certificate": pending,
        "client_key": pending,
    }


def _kubernetes_object(
    m: OfflineMocks, args: mocks.MockResourceArgs, state: dict[str, Any]
) -> None:
    # What the API server adds to every object it stores.
    metadata = dict(state.get("metadata") or {})
    metadata["uid"] = m.make_id("k8s", args.typ, args.name)
    metadata["resourceVersion"] = "1"
    state["metadata"] = metadata
    if args.typ == "kubernetes:core/v1:Namespace":
        state["status"] = {"phase": "Active"}


_KUBERNETES_TYPES = (
    "kubernetes:core/v1:Namespace",
    "kubernetes:core/v1:ConfigMap",
    "kubernetes:core/v1:ResourceQuota",
    "kubernetes:core/v1:LimitRange",
    "kubernetes:core/v1:ServiceAccountPatch",
    "kubernetes:networking.k8s.io/v1:NetworkPolicy",
    "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole",
    "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding",
    "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding",
    "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicy",
    "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicyBinding",
)


OUTPUT_HANDLERS: dict[str, OutputHandler] = {
    "openstack:networking/port:Port": _port,
    "openstack:networking/floatingIp:FloatingIp": _floating_ip,
    "openstack:loadbalancer/loadBalancer:LoadBalancer": _load_balancer,
    "openstack:keymanager/secretV1:SecretV1": _secret,
    "openstack:keymanager/containerV1:ContainerV1": _container,
    "tls:index/privateKey:PrivateKey": _private_key,
    "random:index/randomBytes:RandomBytes": _random_bytes,
    "openstack:containerinfra/cluster:Cluster": _magnum_cluster,
    **{token: _kubernetes_object for token in _KUBERNETES_TYPES},
}


def _program_entry(program_dir: Path) -> Path:
    entry = program_dir / "__main__.py"
    if not entry.is_file():
        raise CitadelleError(f"{program_dir}: no __main__.py; a Pulumi Python program is needed")
    return entry


def record_program(
    program_dir: Path,
    project: str,
    stack: str,
    config: dict[str, str],
    secret_keys: list[str],
) -> Recording:
    """Run the program once and return every registration and the stack outputs."""
    entry = _program_entry(program_dir)
    return contextvars.Context().run(_record, entry, project, stack, config, secret_keys)


@contextlib.contextmanager
def _lean_runtime() -> Iterator[None]:
    """Drop two SDK costs that only the engine's diagnostics need, for the offline run only.

    Every registration walks the Python stack and reads source lines for the engine's error
    messages (about 20% of the time), and the cyclic GC rescans every live Output on each pass,
    which makes a run quadratic in the number of resources (measured: 1000 research workspaces).
    The run is bounded: its cycles wait for the collector's next pass after the run.
    """
    original = runtime_resource._get_stack_trace
    collecting = gc.isenabled()
    runtime_resource._get_stack_trace = source_pb2.StackTrace
    gc.disable()
    try:
        yield
    finally:
        runtime_resource._get_stack_trace = original
        if collecting:
            gc.enable()


def _record(
    entry: Path, project: str, stack: str, config: dict[str, str], secret_keys: list[str]
) -> Recording:
    offline = OfflineMocks(stack)
    monitor = RecordingMonitor(offline)
    pulumi.runtime.set_mocks(offline, project=project, stack=stack, preview=False,
                             monitor=monitor)
    set_all_config(config, secret_keys)
    outputs: dict[str, Any] = {}

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def run() -> pulumi.Output[Any]:
        runpy.run_path(str(entry), run_name="__main__")
        root = pulumi.runtime.get_root_resource()
        exported = dict(getattr(root, "outputs", {}))
        return pulumi.Output.from_input(exported).apply(outputs.update)

    added_path = str(entry.parent)
    sys.path.insert(0, added_path)
    try:
        with _lean_runtime():
            run()
    except pulumi.RunError as err:
        raise CitadelleError(str(err), exit_code=2) from None
    except CitadelleError:
        raise
    except Exception as err:  # the program itself is broken: report it, never as a pass
        raise CitadelleError(
            f"the Pulumi program {entry.parent} failed: {type(err).__name__}: {err}", exit_code=2
        ) from None
    finally:
        sys.path.remove(added_path)
    return Recording(
        project=project,
        stack=stack,
        resources=monitor.records,
        stack_outputs=json.loads(json.dumps(outputs, default=str)),
        invokes=offline.invokes,
    )
