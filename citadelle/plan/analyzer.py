"""Drive a Python CrossGuard policy pack out of process, the way the Pulumi engine does.

The CLI starts a Python pack as ``python -u -m pulumi.policy <engine-address> .`` in the pack's
directory (``pulumi-analyzer-policy-python``), reads the port the pack prints, then speaks the
Analyzer gRPC service: ``Handshake``, ``GetAnalyzerInfo``, ``ConfigureStack``, ``Configure``
(every policy's enforcement level and config, schema defaults applied by the engine),
``Remediate`` then ``Analyze`` for each resource (inputs, secrets kept as secrets),
``AnalyzeStack`` with the final state of every resource. ``PolicyAnalyzer`` does the same;
``EngineServer`` is the minimal Engine service the pack's ``<engine-address>`` points to (it only
receives log messages).
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc
import jsonschema
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime.proto import (
    analyzer_pb2,
    analyzer_pb2_grpc,
    engine_pb2,
    engine_pb2_grpc,
)

from citadelle.errors import CitadelleError

START_TIMEOUT_S = 30.0
_LEVELS = {
    analyzer_pb2.ADVISORY: "advisory",
    analyzer_pb2.MANDATORY: "mandatory",
    analyzer_pb2.DISABLED: "disabled",
    analyzer_pb2.REMEDIATE: "remediate",
}
_LEVEL_CODES = {v: k for k, v in _LEVELS.items()}
_SEVERITIES = {
    analyzer_pb2.POLICY_SEVERITY_UNSPECIFIED: "",
    analyzer_pb2.POLICY_SEVERITY_LOW: "low",
    analyzer_pb2.POLICY_SEVERITY_MEDIUM: "medium",
    analyzer_pb2.POLICY_SEVERITY_HIGH: "high",
    analyzer_pb2.POLICY_SEVERITY_CRITICAL: "critical",
}


class EngineServer(engine_pb2_grpc.EngineServicer):
    """The engine side the pack logs to; keeps the messages for error reports."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        engine_pb2_grpc.add_EngineServicer_to_server(self, self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self._root = ""

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop(0)

    def Log(self, request: Any, context: Any) -> Any:
        severity = engine_pb2.LogSeverity.Name(request.severity).lower()
        self.messages.append(f"{severity}: {request.message}")
        return empty_pb2.Empty()

    def GetRootResource(self, request: Any, context: Any) -> Any:
        return engine_pb2.GetRootResourceResponse(urn=self._root)

    def SetRootResource(self, request: Any, context: Any) -> Any:
        self._root = request.urn
        return engine_pb2.SetRootResourceResponse()


@dataclass(frozen=True)
class PolicyInfo:
    """What the pack says about one policy (GetAnalyzerInfo)."""

    name: str
    description: str
    enforcement: str  # advisory | mandatory | remediate | disabled
    severity: str
    kind: str  # resource | stack
    framework: str
    framework_version: str
    snc: tuple[str, ...]
    bp028: tuple[str, ...]
    checks: tuple[str, ...]  # resource types the policy checks, when it says so
    remediation: str
    config_schema: dict[str, Any]
    tags: tuple[str, ...]


@dataclass(frozen=True)
class Diagnostic:
    policy: str
    message: str
    urn: str
    enforcement: str
    severity: str
    remediated: bool = False


@dataclass(frozen=True)
class AnalyzerResource:
    """One resource as the engine describes it to an analyzer."""

    urn: str
    type: str
    name: str
    properties: Mapping[str, Any]
    parent: str = ""
    dependencies: tuple[str, ...] = ()
    provider: AnalyzerResource | None = None


@dataclass
class AnalyzeResult:
    diagnostics: list[Diagnostic] = field(default_factory=list)
    not_applicable: set[str] = field(default_factory=set)


def _struct(values: Mapping[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    json_format.ParseDict(json.loads(json.dumps(values, default=str)), message)
    return message


def _policy_info(info: Any) -> PolicyInfo:
    tags = tuple(info.tags)
    schema = json_format.MessageToDict(info.configSchema) if info.HasField("configSchema") else {}
    return PolicyInfo(
        name=info.name,
        description=info.description,
        enforcement=_LEVELS.get(info.enforcementLevel, "advisory"),
        severity=_SEVERITIES.get(info.severity, ""),
        kind="stack" if info.policy_type == analyzer_pb2.POLICY_TYPE_STACK else "resource",
        framework=info.framework.name,
        framework_version=info.framework.version,
        snc=tuple(x.strip() for x in info.framework.reference.split(",") if x.strip()),
        bp028=tuple(t.removeprefix("bp028:") for t in tags if t.startswith("bp028:")),
        checks=tuple(t.removeprefix("checks:") for t in tags if t.startswith("checks:")),
        remediation=info.remediation_steps,
        config_schema=schema,
        tags=tags,
    )


def _read_port(process: subprocess.Popen[bytes], timeout: float) -> int:
    assert process.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    line = b""
    while not line.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not selector.select(remaining):
            raise TimeoutError
        chunk = os.read(process.stdout.fileno(), 64)
        if not chunk:
            break
        line += chunk
    selector.close()
    text = line.decode(errors="replace").strip()
    if not text.isdigit():
        raise ValueError(text)
    return int(text)


class PolicyAnalyzer:
    """A running policy pack and a gRPC client to it (a context manager)."""

    def __init__(
        self,
        pack_dir: Path,
        *,
        project: str | None = None,
        stack: str | None = None,
        python: str = sys.executable,
    ) -> None:
        self.pack_dir = pack_dir.resolve()
        self.project = project
        self.stack = stack
        self.python = python
        self.engine = EngineServer()
        self.process: subprocess.Popen[bytes] | None = None
        self.channel: grpc.Channel | None = None
        self._stub: Any = None
        self.info: list[PolicyInfo] = []
        self.pack_name = ""
        self.pack_version = ""

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> PolicyAnalyzer:
        if not (self.pack_dir / "PulumiPolicy.yaml").is_file():
            raise CitadelleError(f"{self.pack_dir}: no PulumiPolicy.yaml, not a policy pack")
        self.engine.start()
        env = dict(os.environ, PYTHONUNBUFFERED="1", PULUMI_DRY_RUN="true")
        if self.project and self.stack:
            env.update(PULUMI_PROJECT=self.project, PULUMI_STACK=self.stack,
                       PULUMI_ORGANIZATION="organization")
        self.process = subprocess.Popen(
            [self.python, "-u", "-m", "pulumi.policy", self.engine.address, "."],
            cwd=self.pack_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            port = _read_port(self.process, START_TIMEOUT_S)
        except (TimeoutError, ValueError):
            self.close()
            raise CitadelleError(
                f"the policy pack {self.pack_dir} did not start: {self._failure()}"
            ) from None
        self.channel = grpc.insecure_channel(
            f"127.0.0.1:{port}",
            options=[("grpc.max_receive_message_length", 400 * 1024 * 1024),
                     ("grpc.max_send_message_length", 400 * 1024 * 1024)],
        )
        self._stub = analyzer_pb2_grpc.AnalyzerStub(self.channel)
        self._handshake()
        info = self._call("GetAnalyzerInfo", empty_pb2.Empty())
        self.pack_name, self.pack_version = info.name, info.version
        self.info = [_policy_info(p) for p in info.policies]
        self.plugin_version = self._call("GetPluginInfo", empty_pb2.Empty()).version
        return self

    def _handshake(self) -> None:
        """The engine's first call; Python packs do not implement it (UNIMPLEMENTED is fine)."""
        request = analyzer_pb2.AnalyzerHandshakeRequest(
            engine_address=self.engine.address, root_directory=str(self.pack_dir),
            program_directory=str(self.pack_dir),
        )
        try:
            self._stub.Handshake(request, timeout=30)
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.UNIMPLEMENTED:
                raise CitadelleError(f"the policy pack refused Handshake: {err}") from None

    def close(self) -> None:
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        if self.process is not None:
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
            for stream in (self.process.stdout, self.process.stderr):
                if stream is not None:
                    stream.close()
            self.process = None
        self.engine.stop()

    def __enter__(self) -> PolicyAnalyzer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _failure(self) -> str:
        detail = ""
        if self.process is not None and self.process.stderr is not None:
            if self.process.poll() is None:
                self.process.terminate()
                self.process.wait(timeout=5)
            detail = self.process.stderr.read().decode(errors="replace").strip()
        lines = [line for line in (detail.splitlines() + self.engine.messages) if line.strip()]
        return lines[-1] if lines else "no output"

    def _call(self, method: str, request: Any) -> Any:
        try:
            return getattr(self._stub, method)(request, timeout=120)
        except grpc.RpcError as err:
            raise CitadelleError(
                f"the policy pack failed in {method}: {err.details() or err.code()}"
            ) from None

    # ------------------------------------------------------------------ protocol

    def policy(self, name: str) -> PolicyInfo:
        return next(p for p in self.info if p.name == name)

    def configure_stack(self, project: str, stack: str, config: Mapping[str, str]) -> None:
        request = analyzer_pb2.AnalyzerStackConfigureRequest(
            stack=stack, project=project, organization="organization", dry_run=True,
            config=dict(config),
        )
        try:
            self._stub.ConfigureStack(request, timeout=30)
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.UNIMPLEMENTED:
                raise CitadelleError(f"the policy pack refused ConfigureStack: {err}") from None

    def effective_config(self, given: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        """Every policy's enforcement level and properties, schema defaults applied, validated
        against the policy's schema: what the engine sends in Configure."""
        known = {p.name for p in self.info}
        unknown = sorted(set(given) - known - {"all"})
        if unknown:
            raise CitadelleError(
                f"policy config names unknown polic{'y' if len(unknown) == 1 else 'ies'} "
                f"{', '.join(unknown)} (pack {self.pack_name} has: {', '.join(sorted(known))})"
            )
        default_level = given.get("all")
        result: dict[str, dict[str, Any]] = {}
        for policy in self.info:
            entry = given.get(policy.name)
            level = default_level if isinstance(default_level, str) else policy.enforcement
            values: dict[str, Any] = {}
            if isinstance(entry, str):
                level = entry
            elif isinstance(entry, Mapping):
                values = {k: v for k, v in entry.items() if k != "enforcementLevel"}
                level = str(entry.get("enforcementLevel", level))
            if level not in _LEVEL_CODES:
                raise CitadelleError(
                    f"policy config {policy.name}.enforcementLevel: {level!r} is not one of "
                    f"{', '.join(_LEVEL_CODES)}"
                )
            properties = policy.config_schema.get("properties", {})
            merged = {k: v["default"] for k, v in properties.items() if "default" in v}
            merged.update(values)
            schema = {"type": "object", "properties": properties,
                      "required": policy.config_schema.get("required", [])}
            try:
                jsonschema.validate(merged, schema)
            except jsonschema.ValidationError as err:
                where = ".".join(str(p) for p in err.absolute_path) or "(root)"
                raise CitadelleError(
                    f"policy config {policy.name}.{where}: {err.message}"
                ) from None
            result[policy.name] = {"enforcementLevel": level, **merged}
        return result

    def configure(self, config: Mapping[str, Mapping[str, Any]]) -> None:
        request = analyzer_pb2.ConfigureAnalyzerRequest()
        for name, entry in config.items():
            properties = {k: v for k, v in entry.items() if k != "enforcementLevel"}
            request.policyConfig[name].CopyFrom(analyzer_pb2.PolicyConfig(
                enforcementLevel=_LEVEL_CODES[str(entry["enforcementLevel"])],
                properties=_struct(properties),
            ))
        self._call("Configure", request)

    @staticmethod
    def _provider(resource: AnalyzerResource | None) -> Any:
        if resource is None:
            return None
        return analyzer_pb2.AnalyzerProviderResource(
            type=resource.type, properties=_struct(resource.properties), urn=resource.urn,
            name=resource.name,
        )

    def _request(self, resource: AnalyzerResource) -> Any:
        request = analyzer_pb2.AnalyzeRequest(
            type=resource.type,
            properties=_struct(resource.properties),
            urn=resource.urn,
            name=resource.name,
            options=analyzer_pb2.AnalyzerResourceOptions(parent=resource.parent),
        )
        provider = self._provider(resource.provider)
        if provider is not None:
            request.provider.CopyFrom(provider)
        return request

    def _diagnostics(self, response: Any, urn: str) -> AnalyzeResult:
        result = AnalyzeResult(not_applicable={n.policy_name for n in response.not_applicable})
        for d in response.diagnostics:
            result.diagnostics.append(Diagnostic(
                policy=d.policyName,
                message=d.message,
                urn=d.urn or urn,
                enforcement=_LEVELS.get(d.enforcementLevel, "advisory"),
                severity=_SEVERITIES.get(d.severity, ""),
            ))
        return result

    def remediate(self, resource: AnalyzerResource) -> list[Diagnostic]:
        response = self._call("Remediate", self._request(resource))
        found = []
        for item in response.remediations:
            message = item.diagnostic or "the engine would rewrite the resource's inputs"
            found.append(Diagnostic(
                policy=item.policyName, message=message, urn=resource.urn,
                enforcement="remediate", severity=self.policy(item.policyName).severity,
                remediated=not item.diagnostic,
            ))
        return found

    def analyze(self, resource: AnalyzerResource) -> AnalyzeResult:
        return self._diagnostics(self._call("Analyze", self._request(resource)), resource.urn)

    def analyze_many(self, resources: Iterable[AnalyzerResource],
                     window: int = 8) -> list[AnalyzeResult]:
        """Analyze each resource, keeping a few calls in flight (the engine analyses resources
        as their registrations arrive, concurrently); results in the resources' order."""
        pending: list[tuple[AnalyzerResource, Any]] = []
        results: list[AnalyzeResult] = []

        def drain(keep: int) -> None:
            while len(pending) > keep:
                resource, call = pending.pop(0)
                try:
                    response = call.result()
                except grpc.RpcError as err:
                    raise CitadelleError(
                        f"the policy pack failed in Analyze: {err.details() or err.code()}"
                    ) from None
                results.append(self._diagnostics(response, resource.urn))

        for resource in resources:
            pending.append((resource, self._stub.Analyze.future(self._request(resource),
                                                                timeout=120)))
            drain(window)
        drain(0)
        return results

    def analyze_stack(self, resources: Iterable[AnalyzerResource]) -> AnalyzeResult:
        request = analyzer_pb2.AnalyzeStackRequest()
        for resource in resources:
            entry = request.resources.add(
                type=resource.type,
                properties=_struct(resource.properties),
                urn=resource.urn,
                name=resource.name,
                options=analyzer_pb2.AnalyzerResourceOptions(parent=resource.parent),
                parent=resource.parent,
                dependencies=list(resource.dependencies),
            )
            provider = self._provider(resource.provider)
            if provider is not None:
                entry.provider.CopyFrom(provider)
        return self._diagnostics(self._call("AnalyzeStack", request), "")

