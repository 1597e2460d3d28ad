"""Property-based: compliant programs of any shape pass the gate; any single mutation across the
three families (data-tier isolation, RBAC, provider TLS) fails it, naming the mutated resource.

Programs are generated as recorded registrations (what ``citadelle.plan.offline`` records) and
fed to the pack out of process, exactly as ``citadelle gate`` feeds it; the same shapes are gated
as real Pulumi programs in ``tests/policy/programs/`` (test_gate.py). Names are random and tags
present or absent: tiers are recognised by the stack config's CIDRs and the network graph alone.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from citadelle.plan.gate import run_gate
from citadelle.plan.offline import SECRET_MASK, SECRET_SIG, SIG_KEY, RecordedResource, Recording

pytestmark = pytest.mark.policy

STACK = "prop"
PROJECT = "proptest"
RBAC = "kubernetes:rbac.authorization.k8s.io/v1:"
API = "rbac.authorization.k8s.io"
SAFE_RESOURCES = ("pods", "services", "configmaps", "deployments", "jobs", "events",
                  "persistentvolumeclaims")
SAFE_VERBS = ("get", "list", "watch", "create", "update", "patch", "delete")

def budget(examples: int) -> settings:
    """Each example is one gate run through the out-of-process pack (about 0.1 s): the whole
    module stays well under two minutes. No example database: CI starts from a clean clone."""
    return settings(max_examples=examples, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@dataclass
class Program:
    """A recorded program under construction, with handles on the resources mutations touch."""

    config: dict[str, Any]
    resources: list[RecordedResource] = field(default_factory=list)
    handles: dict[str, list[RecordedResource]] = field(default_factory=dict)
    serial: int = 0

    def name(self, stem: str) -> str:
        self.serial += 1
        return f"{stem}{self.serial}"

    def add(self, type_token: str, stem: str, inputs: dict[str, Any], *,
            provider: str | None = "openstack", handle: str | None = None) -> RecordedResource:
        name = self.name(stem)
        ref = None
        if provider is not None:
            owner = self.handles[provider][0]
            ref = f"{owner.urn}::{owner.id}"
        resource = RecordedResource(
            urn=f"urn:pulumi:{STACK}::{PROJECT}::{type_token}::{name}", type=type_token,
            name=name, custom=True,
            parent=f"urn:pulumi:{STACK}::{PROJECT}::pulumi:pulumi:Stack::{PROJECT}-{STACK}",
            provider=ref, id=f"id-{name}", inputs=inputs, outputs={})
        self.resources.append(resource)
        if handle:
            self.handles.setdefault(handle, []).append(resource)
        return resource

    def one(self, handle: str) -> RecordedResource:
        return self.handles[handle][0]

    def recording(self) -> Recording:
        return Recording(project=PROJECT, stack=STACK, resources=self.resources,
                         stack_outputs={})


def tier_cidr(config: dict[str, Any], tier: str) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(config["data-tier-peers-only"]["tierCidrs"][tier][0])


def kubeconfig(cluster: dict[str, Any]) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Config",
                       "clusters": [{"name": "c", "cluster": cluster}]})


@st.composite
def programs(draw: st.DrawFn, config: dict[str, Any]) -> Program:
    p = Program(config)
    host = config["eu-endpoint-allow-list"]["allowedAuthHosts"][0]
    provider: dict[str, Any] = {"authUrl": f"https://{host}/v3",
                                "region": config["eu-region-allow-list"]["allowedRegions"][0]}
    if draw(st.booleans()):
        provider.update(insecure="false", cacertFile="/etc/ssl/certs/ca-certificates.crt")
    p.add("pulumi:providers:openstack", "os", provider, provider=None, handle="openstack")
    cluster: dict[str, Any] = {"server": "https://api.citadelle.internal:6443"}
    if draw(st.booleans()):
        cluster.update({"certificate-authority": "/etc/ssl/certs/k8s-ca.pem",
                        "insecure-skip-tls-verify": False})
    p.add("pulumi:providers:kubernetes", "k", {"kubeconfig": draw(st.sampled_from(
        [kubeconfig(cluster), {SIG_KEY: SECRET_SIG, "value": SECRET_MASK}]))},
        provider=None, handle="kubernetes")
    tagged = draw(st.booleans())

    def tier(name: str, count: int) -> None:
        cidrs = list(tier_cidr(config, name).subnets(new_prefix=min(
            tier_cidr(config, name).prefixlen + 2, 30)))
        tags = {"tags": [f"tier={name}"]} if tagged else {}
        net = p.add("openstack:networking/network:Network", "n", {"name": p.name("net"), **tags},
                    handle=f"{name}-network")
        group = p.add("openstack:networking/secGroup:SecGroup", "g",
                      {"deleteDefaultRules": True, **tags}, handle=f"{name}-group")
        for index in range(count):  # several subnets and ports built in a loop
            subnet = p.add("openstack:networking/subnet:Subnet", "s", {
                "networkId": net.id, "cidr": str(cidrs[index % len(cidrs)]),
                "noGateway": name == "data", **tags}, handle=f"{name}-subnet")
            p.add("openstack:networking/port:Port", "p", {
                "networkId": net.id, "fixedIps": [{"subnetId": subnet.id}],
                "securityGroupIds": [group.id]}, handle=f"{name}-port")

    tier("data", draw(st.integers(1, 3)))
    tier("app", 1)
    tier("admin", 1)
    router = p.add("openstack:networking/router:Router", "r", {"externalNetworkId": "ext"})
    for name in ("app", "admin"):
        p.add("openstack:networking/routerInterface:RouterInterface", "ri",
              {"routerId": router.id, "subnetId": p.one(f"{name}-subnet").id})
    port = draw(st.sampled_from([5432, 8443, 6379]))
    app_cidr = tier_cidr(config, "app")
    sources = draw(st.lists(st.sampled_from(["app-group", "app-cidr", "app-host"]), min_size=1,
                            max_size=3, unique=True))
    for source in sources:
        remote = ({"remoteGroupId": p.one("app-group").id} if source == "app-group" else
                  {"remoteIpPrefix": str(app_cidr) if source == "app-cidr"
                   else f"{app_cidr.network_address + 5}/32"})
        p.add("openstack:networking/secGroupRule:SecGroupRule", "rule", {
            "direction": "ingress", "ethertype": "IPv4", "protocol": "tcp",
            "portRangeMin": float(port), "portRangeMax": float(port),
            "securityGroupId": p.one("data-group").id, **remote})
    for group, remote in (("data", {"remoteGroupId": p.one("admin-group").id}),
                          ("admin", {"remoteIpPrefix": config["ssh-from-bastion-only"][
                              "adminCidrs"][0]})):
        p.add("openstack:networking/secGroupRule:SecGroupRule", "ssh", {
            "direction": "ingress", "ethertype": "IPv4", "protocol": "tcp",
            "portRangeMin": 22.0, "portRangeMax": 22.0,
            "securityGroupId": p.one(f"{group}-group").id, **remote})
    p.add("openstack:networking/floatingIp:FloatingIp", "fip",
          {"portId": p.one("admin-port").id})

    for _ in range(draw(st.integers(1, 3))):
        rules = [{"apiGroups": ["", "apps", "batch"],
                  "resources": draw(st.lists(st.sampled_from(SAFE_RESOURCES), min_size=1,
                                             max_size=3, unique=True)),
                  "verbs": draw(st.lists(st.sampled_from(SAFE_VERBS), min_size=1, max_size=4,
                                         unique=True))}]
        role = p.add(f"{RBAC}ClusterRole", "cr", {"metadata": {"name": p.name("role")},
                                                  "rules": rules},
                     provider="kubernetes", handle="cluster-role")
        p.add(f"{RBAC}ClusterRoleBinding", "crb", {
            "metadata": {"name": p.name("crb")},
            "roleRef": {"apiGroup": API, "kind": "ClusterRole",
                        "name": role.inputs["metadata"]["name"]},
            "subjects": [{"kind": "Group", "apiGroup": API,
                          "name": draw(st.sampled_from(["platform-auditors", "operators",
                                                        "ws-cohort-a"]))}]},
            provider="kubernetes", handle="cluster-binding")
    namespace = draw(st.sampled_from(["team", "ws-cohort-a", "platform"]))
    p.add(f"{RBAC}ClusterRole", "secrets", {
        "metadata": {"name": "secrets-reader"},
        "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]}]},
        provider="kubernetes", handle="secrets-role")
    p.add(f"{RBAC}RoleBinding", "rb", {
        "metadata": {"name": p.name("rb"), "namespace": namespace},
        "roleRef": {"apiGroup": API, "kind": "ClusterRole", "name": "secrets-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "api", "namespace": namespace},
                     {"kind": "Group", "apiGroup": API, "name": "operators"}]},
        provider="kubernetes", handle="role-binding")
    return p


# --------------------------------------------------------------------------- mutations
# Each takes the compliant program and a draw, changes or adds one resource, and returns the
# resource's name.

Mutation = Callable[[Program, st.DataObject], str]


def _rule(p: Program, group: str, remote: dict[str, Any], direction: str = "ingress") -> str:
    return p.add("openstack:networking/secGroupRule:SecGroupRule", "bad", {
        "direction": direction, "ethertype": "IPv4", "protocol": "tcp", "portRangeMin": 5432.0,
        "portRangeMax": 5432.0, "securityGroupId": p.one(group).id, **remote}).name


def _pick(p: Program, data: st.DataObject, handle: str) -> RecordedResource:
    return data.draw(st.sampled_from(p.handles[handle]))


def router_on_data_subnet(p: Program, data: st.DataObject) -> str:
    router = p.add("openstack:networking/router:Router", "r", {})
    return p.add("openstack:networking/routerInterface:RouterInterface", "bad", {
        "routerId": router.id, "subnetId": _pick(p, data, "data-subnet").id}).name


def router_on_data_port(p: Program, data: st.DataObject) -> str:
    router = p.add("openstack:networking/router:Router", "r", {"externalNetworkId": "ext"})
    subnet = _pick(p, data, "data-subnet")
    port = p.add("openstack:networking/port:Port", "uplink", {
        "networkId": subnet.inputs["networkId"], "fixedIps": [{"subnetId": subnet.id}]})
    return p.add("openstack:networking/routerInterface:RouterInterface", "bad", {
        "routerId": router.id, "portId": port.id}).name


def router_gateway_on_data(p: Program, data: st.DataObject) -> str:
    return p.add("openstack:networking/router:Router", "bad", {
        "externalNetworkId": p.one("data-network").id}).name


def data_subnet_gateway(p: Program, data: st.DataObject) -> str:
    subnet = _pick(p, data, "data-subnet")
    subnet.inputs["noGateway"] = data.draw(st.sampled_from([False, None, "false"]))
    if data.draw(st.booleans()):
        subnet.inputs["gatewayIp"] = str(ipaddress.ip_network(subnet.inputs["cidr"])[1])
    return subnet.name


def data_subnet_host_routes(p: Program, data: st.DataObject) -> str:
    subnet = _pick(p, data, "data-subnet")
    subnet.inputs["hostRoutes"] = [{"destinationCidr": "0.0.0.0/0", "nextHop": "10.1.1.1"}]
    return subnet.name


def data_network_flag(p: Program, data: st.DataObject) -> str:
    network = p.one("data-network")
    network.inputs[data.draw(st.sampled_from(["external", "shared"]))] = data.draw(
        st.sampled_from([True, "true"]))
    return network.name


def data_network_shared_by_rbac(p: Program, data: st.DataObject) -> str:
    return p.add("openstack:networking/rbacPolicyV2:RbacPolicyV2", "bad", {
        "objectType": "network", "objectId": p.one("data-network").id, "targetTenant": "*",
        "action": data.draw(st.sampled_from(["access_as_shared", "access_as_external"]))}).name


def data_port_security_off(p: Program, data: st.DataObject) -> str:
    port = _pick(p, data, "data-port")
    port.inputs["portSecurityEnabled"] = False
    return port.name


def floating_ip_on_data_port(p: Program, data: st.DataObject) -> str:
    return p.add("openstack:networking/floatingIp:FloatingIp", "bad",
                 {"portId": _pick(p, data, "data-port").id}).name


def floating_ip_associated_to_data(p: Program, data: st.DataObject) -> str:
    p.add("openstack:networking/floatingIp:FloatingIp", "fip", {"address": "203.0.113.99"})
    return p.add("openstack:networking/floatingIpAssociate:FloatingIpAssociate", "bad", {
        "floatingIp": "203.0.113.99", "portId": _pick(p, data, "data-port").id}).name


def data_rule_world(p: Program, data: st.DataObject) -> str:
    remote = data.draw(st.sampled_from([{"remoteIpPrefix": "0.0.0.0/0"}, {},
                                        {"remoteIpPrefix": "0.0.0.0/1"}]))
    return _rule(p, "data-group", remote)


def data_rule_foreign_cidr(p: Program, data: st.DataObject) -> str:
    prefix = data.draw(st.sampled_from(["172.16.8.0/24", "192.168.0.0/16", "198.18.4.0/24",
                                        "10.99.0.0/16"]))
    direction = data.draw(st.sampled_from(["ingress", "egress"]))
    return _rule(p, "data-group", {"remoteIpPrefix": prefix}, direction)


def data_rule_edge_group(p: Program, data: st.DataObject) -> str:
    edge = tier_cidr(p.config, "edge")
    net = p.add("openstack:networking/network:Network", "n", {})
    subnet = p.add("openstack:networking/subnet:Subnet", "s",
                   {"networkId": net.id, "cidr": str(edge)})
    group = p.add("openstack:networking/secGroup:SecGroup", "g", {"deleteDefaultRules": True})
    p.add("openstack:networking/port:Port", "p", {
        "networkId": net.id, "fixedIps": [{"subnetId": subnet.id}],
        "securityGroupIds": [group.id]})
    return _rule(p, "data-group", {"remoteGroupId": group.id})


def data_group_default_egress(p: Program, data: st.DataObject) -> str:
    group = p.one("data-group")
    group.inputs["deleteDefaultRules"] = data.draw(st.sampled_from([False, None]))
    return group.name


def _role(p: Program, data: st.DataObject) -> RecordedResource:
    return _pick(p, data, "cluster-role")


def role_wildcard(p: Program, data: st.DataObject) -> str:
    role = _role(p, data)
    key = data.draw(st.sampled_from(["verbs", "resources"]))
    role.inputs["rules"][0][key] = [*role.inputs["rules"][0][key], "*"]
    return role.name


def role_granting_verb(p: Program, data: st.DataObject) -> str:
    role = _role(p, data)
    role.inputs["rules"].append({"apiGroups": data.draw(st.sampled_from([[""], [API]])),
                                 "resources": ["serviceaccounts", "clusterroles"],
                                 "verbs": [data.draw(st.sampled_from(
                                     ["escalate", "bind", "impersonate"]))]})
    return role.name


def role_shell(p: Program, data: st.DataObject) -> str:
    role = _role(p, data)
    role.inputs["rules"].append({"apiGroups": [""], "resources": [data.draw(st.sampled_from(
        ["pods/exec", "pods/attach", "nodes/proxy", "pods/portforward"]))],
        "verbs": [data.draw(st.sampled_from(["get", "create"]))]})
    return role.name


def role_aggregation(p: Program, data: st.DataObject) -> str:
    role = _role(p, data)
    if data.draw(st.booleans()):
        role.inputs["aggregationRule"] = {"clusterRoleSelectors": [{"matchLabels": {"a": "b"}}]}
    else:
        role.inputs["metadata"]["labels"] = {f"{API}/aggregate-to-"
                                             f"{data.draw(st.sampled_from(['view', 'edit']))}":
                                             "true"}
    return role.name


def namespaced_role_everything(p: Program, data: st.DataObject) -> str:
    return p.add(f"{RBAC}Role", "bad", {
        "metadata": {"name": "owner", "namespace": "team"},
        "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]},
        provider="kubernetes").name


def binding_builtin_role(p: Program, data: st.DataObject) -> str:
    binding = _pick(p, data, "cluster-binding")
    binding.inputs["roleRef"]["name"] = data.draw(st.sampled_from(
        ["cluster-admin", "admin", "edit"]))
    return binding.name


def binding_secrets_cluster_wide(p: Program, data: st.DataObject) -> str:
    binding = p.one("role-binding")
    binding.type = f"{RBAC}ClusterRoleBinding"
    binding.urn = binding.urn.replace(":RoleBinding::", ":ClusterRoleBinding::")
    binding.inputs["subjects"] = [{"kind": "Group", "apiGroup": API, "name": "operators"}]
    return binding.name


def subject_not_a_person(p: Program, data: st.DataObject) -> str:
    binding = _pick(p, data, "cluster-binding")
    binding.inputs["subjects"].append({
        "kind": data.draw(st.sampled_from(["Group", "User"])), "apiGroup": API,
        "name": data.draw(st.sampled_from(["system:anonymous", "system:unauthenticated",
                                           "system:authenticated", "system:masters"]))})
    return binding.name


def subject_default_or_foreign_account(p: Program, data: st.DataObject) -> str:
    binding = p.one("role-binding")
    namespace = binding.inputs["metadata"]["namespace"]
    binding.inputs["subjects"][0] = data.draw(st.sampled_from([
        {"kind": "ServiceAccount", "name": "default", "namespace": namespace},
        {"kind": "ServiceAccount", "name": "ci", "namespace": "build"}]))
    return binding.name


def openstack_insecure(p: Program, data: st.DataObject) -> str:
    provider = p.one("openstack")
    provider.inputs["insecure"] = data.draw(st.sampled_from(["true", True, "1"]))
    return provider.name


def openstack_plain_http(p: Program, data: st.DataObject) -> str:
    provider = p.one("openstack")
    host = p.config["eu-endpoint-allow-list"]["allowedAuthHosts"][0]
    if data.draw(st.booleans()):
        provider.inputs["authUrl"] = f"http://{host}/v3"
    else:
        provider.inputs["endpointOverrides"] = json.dumps(
            {data.draw(st.sampled_from(["network", "volumev3", "key-manager"])):
             f"http://{host}:9696/"})
    return provider.name


def openstack_empty_ca(p: Program, data: st.DataObject) -> str:
    provider = p.one("openstack")
    provider.inputs["cacertFile"] = data.draw(st.sampled_from(["", "/dev/null"]))
    return provider.name


def kubeconfig_unverified(p: Program, data: st.DataObject) -> str:
    provider = p.one("kubernetes")
    cluster = data.draw(st.sampled_from([
        {"server": "https://api.citadelle.internal:6443", "insecure-skip-tls-verify": True},
        {"server": "http://api.citadelle.internal:8080"}]))
    provider.inputs["kubeconfig"] = kubeconfig(cluster)
    return provider.name


def kubernetes_ambient_config(p: Program, data: st.DataObject) -> str:
    provider = p.one("kubernetes")
    del provider.inputs["kubeconfig"]
    return provider.name


def other_provider_skip_verify(p: Program, data: st.DataObject) -> str:
    key, value = data.draw(st.sampled_from([("skipTlsVerify", "true"), ("sslVerify", "false"),
                                            ("insecureSkipVerify", True)]))
    return p.add("pulumi:providers:vault", "bad", {"address": "https://vault.citadelle.internal",
                                                   key: value}, provider=None).name


MUTATIONS: dict[str, list[Mutation]] = {
    "data tier": [router_on_data_subnet, router_on_data_port, router_gateway_on_data,
                  data_subnet_gateway, data_subnet_host_routes, data_network_flag,
                  data_network_shared_by_rbac, data_port_security_off, floating_ip_on_data_port,
                  floating_ip_associated_to_data, data_rule_world, data_rule_foreign_cidr,
                  data_rule_edge_group, data_group_default_egress],
    "rbac": [role_wildcard, role_granting_verb, role_shell, role_aggregation,
             namespaced_role_everything, binding_builtin_role, binding_secrets_cluster_wide,
             subject_not_a_person, subject_default_or_foreign_account],
    "transport": [openstack_insecure, openstack_plain_http, openstack_empty_ca,
                  kubeconfig_unverified, kubernetes_ambient_config, other_provider_skip_verify],
}
ALL = [(family, m) for family, ms in MUTATIONS.items() for m in ms]


@budget(40)
@given(data=st.data())
def test_compliant_programs_pass(analyzer, dev_config, data):
    program = data.draw(programs(dev_config))
    result = run_gate(program.recording(), analyzer, dev_config)
    assert [(f.rule_id, f.subject, f.message) for f in result.findings] == []
    assert result.exit_code == 0


@pytest.mark.parametrize(("family", "mutate"), ALL, ids=[f"{f}:{m.__name__}" for f, m in ALL])
@budget(6)
@given(data=st.data())
def test_single_mutation_fails_naming_the_resource(analyzer, dev_config, family, mutate, data):
    program = data.draw(programs(dev_config))
    mutated = mutate(program, data)
    result = run_gate(program.recording(), analyzer, dev_config)
    assert result.exit_code == 1
    assert mutated in {f.subject for f in result.findings if f.blocking}, (
        family, [(f.rule_id, f.subject) for f in result.findings])
