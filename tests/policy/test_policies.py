"""Every policy, one compliant and at least one violating case, through the out-of-process pack.

Each case builds a tiny recorded stack (the shapes citadelle.plan.offline records), runs it through
the gate's engine emulation (Remediate/Analyze per resource, AnalyzeStack) against the pack
started once for the session, and asserts which resource the policy flags. Allow-lists come from
dev's stack config, never from literals here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from citadelle.plan.gate import run_gate
from citadelle.plan.offline import SECRET_MASK, SECRET_SIG, SIG_KEY, UNKNOWN

# The builder fixture's class (tests/policy/conftest.py); conftest modules are not importable.
StackBuilder = Any


def secret(value: str = SECRET_MASK) -> dict[str, str]:
    return {SIG_KEY: SECRET_SIG, "value": value}

pytestmark = pytest.mark.policy
# The one advisory policy: it names what a preview cannot judge, and passes.
ADVISORY = "security-inputs-known"

DIGEST = "@sha256:" + "0" * 63 + "1"


def registry(b: StackBuilder) -> str:
    return str(b.config["image-allowed-registry"]["allowedRegistries"][0])


def pod(b: StackBuilder, *, image: str | None = None, container: dict[str, Any] | None = None,
        spec: dict[str, Any] | None = None) -> dict[str, Any]:
    """A Deployment body that passes the whole workload baseline unless overridden."""
    base_container = {
        "name": "api",
        "image": image or f"{registry(b)}/platform/api{DIGEST}",
        "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True,
                            "runAsUser": 10001, "capabilities": {"drop": ["ALL"]}},
    }
    base_container.update(container or {})
    pod_spec = {"containers": [base_container], **(spec or {})}
    return {"spec": {"replicas": 1, "selector": {"matchLabels": {"app": "api"}},
                     "template": {"metadata": {"labels": {"app": "api"}}, "spec": pod_spec}}}


def psa(version: str = "v1.31", level: str = "restricted") -> dict[str, str]:
    labels = {}
    for mode in ("enforce", "audit", "warn"):
        labels[f"pod-security.kubernetes.io/{mode}"] = level
        labels[f"pod-security.kubernetes.io/{mode}-version"] = version
    return labels


def deny_all(b: StackBuilder, namespace: str, types: list[str] | None = None) -> None:
    b.k8s("networking.k8s.io/v1", "NetworkPolicy", f"deny-{namespace}",
          {"spec": {"podSelector": {}, "policyTypes": types or ["Ingress", "Egress"]}},
          namespace=namespace)


# --------------------------------------------------------------------------- cases
# Each builder adds resources to the stack and returns the name of the resource the policy must
# flag, or None when the case is compliant.

Case = Callable[[StackBuilder], str | None]


def region_ok(b: StackBuilder) -> str | None:
    b.add("openstack:blockstorage/volume:Volume", "vol", {"region": b.provider.inputs["region"]})
    return None


def region_bad_provider(b: StackBuilder) -> str | None:
    b.provider.inputs["region"] = "us-east-1"
    return "openstack"


def region_bad_resource(b: StackBuilder) -> str | None:
    b.add("openstack:objectstorage/container:Container", "replica", {"region": "us-west-2"})
    return "replica"


def endpoint_ok(b: StackBuilder) -> str | None:
    domain = b.config["eu-endpoint-allow-list"]["allowedDomains"][0]
    b.add("openstack:objectstorage/container:Container", "c",
          {"metadata": {"mirror": f"https://mirror.{domain}/debian"}})
    return None


def endpoint_bad_auth(b: StackBuilder) -> str | None:
    b.provider.inputs["authUrl"] = "https://identity.us-east-1.example.com/v3"
    return "openstack"


def endpoint_bad_url(b: StackBuilder) -> str | None:
    b.add("openstack:objectstorage/container:Container", "c",
          {"metadata": {"mirror": "https://deb.example.org/debian"}})
    return "c"


def endpoint_bad_url_beside_unknown(b: StackBuilder) -> str | None:
    # During a real preview some inputs are unknown (engine sentinel): they are skipped, the
    # known ones are still checked.
    b.add("openstack:objectstorage/container:Container", "partly-known",
          {"metadata": {"owner": UNKNOWN, "mirror": "https://deb.example.org/debian"}})
    return "partly-known"


def provider_ok(b: StackBuilder) -> str | None:
    b.add("openstack:compute/keypair:Keypair", "kp", {"name": "admin"})
    return None


def provider_bad(b: StackBuilder) -> str | None:
    b.add("openstack:compute/keypair:Keypair", "kp", {"name": "admin"}, provider=None)
    return "kp"


def world_ok(b: StackBuilder) -> str | None:
    b.rule(b.tier("edge"), "edge-https", 443, cidr="0.0.0.0/0")
    return None


def world_bad_app(b: StackBuilder) -> str | None:
    b.rule(b.tier("app"), "app-https-world", 443, cidr="0.0.0.0/0")
    return "app-https-world"


def world_bad_edge_port(b: StackBuilder) -> str | None:
    b.rule(b.tier("edge"), "edge-http", 80, cidr="0.0.0.0/0")
    return "edge-http"


def world_bad_no_remote(b: StackBuilder) -> str | None:
    b.rule(b.tier("data"), "data-any", 5432)
    return "data-any"


def ssh_ok(b: StackBuilder) -> str | None:
    admin = b.tier("admin")
    admin_cidr = b.config["ssh-from-bastion-only"]["adminCidrs"][0]
    b.rule(admin, "bastion-ssh", 22, cidr=admin_cidr)
    b.rule(b.tier("app"), "app-ssh", 22, group=admin["group"])
    return None


def ssh_bad_cidr(b: StackBuilder) -> str | None:
    b.tier("admin")
    b.rule(b.tier("app"), "app-ssh-lan", 22, cidr="10.0.0.0/8")
    return "app-ssh-lan"


def ssh_bad_bastion_world(b: StackBuilder) -> str | None:
    b.rule(b.tier("admin"), "bastion-ssh-world", 22, cidr="0.0.0.0/0")
    return "bastion-ssh-world"


def ssh_bad_peer_group(b: StackBuilder) -> str | None:
    edge = b.tier("edge")
    b.rule(b.tier("app"), "app-ssh-from-edge", 22, group=edge["group"])
    return "app-ssh-from-edge"


def floating_ok(b: StackBuilder) -> str | None:
    edge = b.tier("edge")
    lb = b.add("openstack:loadbalancer/loadBalancer:LoadBalancer", "lb",
               {"vipSubnetId": edge["subnet"].id}, outputs={"vipPortId": "vip-port"})
    b.add("openstack:networking/floatingIp:FloatingIp", "edge-fip",
          {"portId": lb.outputs["vipPortId"]})
    bastion_port = b.port(b.tier("admin"), "bastion-port")
    b.add("openstack:networking/floatingIp:FloatingIp", "bastion-fip", {"pool": "ext"},
          outputs={"address": "203.0.113.20"})
    b.add("openstack:networking/floatingIpAssociate:FloatingIpAssociate", "bastion-assoc",
          {"floatingIp": "203.0.113.20", "portId": bastion_port.id})
    b.add("openstack:containerinfra/clusterTemplate:ClusterTemplate", "tpl",
          {"floatingIpEnabled": False})
    return None


def floating_bad_app(b: StackBuilder) -> str | None:
    app_port = b.port(b.tier("app"), "worker-port")
    b.add("openstack:networking/floatingIp:FloatingIp", "worker-fip", {"pool": "ext"},
          outputs={"address": "203.0.113.30"})
    b.add("openstack:networking/floatingIpAssociate:FloatingIpAssociate", "worker-assoc",
          {"floatingIp": "203.0.113.30", "portId": app_port.id})
    return "worker-assoc"


def floating_bad_data_port(b: StackBuilder) -> str | None:
    data_port = b.port(b.tier("data"), "db-port")
    b.add("openstack:networking/floatingIp:FloatingIp", "db-fip", {"portId": data_port.id})
    return "db-fip"


def floating_bad_magnum(b: StackBuilder) -> str | None:
    b.add("openstack:containerinfra/clusterTemplate:ClusterTemplate", "tpl", {"coe": "kubernetes"})
    return "tpl"


def data_ok(b: StackBuilder) -> str | None:
    b.tier("data")
    app = b.tier("app")
    router = b.add("openstack:networking/router:Router", "router", {"externalNetworkId": "ext"})
    b.add("openstack:networking/routerInterface:RouterInterface", "app-if",
          {"routerId": router.id, "subnetId": app["subnet"].id})
    return None


def data_bad_interface(b: StackBuilder) -> str | None:
    data = b.tier("data")
    router = b.add("openstack:networking/router:Router", "router", {"externalNetworkId": "ext"})
    b.add("openstack:networking/routerInterface:RouterInterface", "data-if",
          {"routerId": router.id, "subnetId": data["subnet"].id})
    return "data-if"


def data_bad_gateway(b: StackBuilder) -> str | None:
    data = b.tier("data")
    data["subnet"].inputs["noGateway"] = False
    return "subnet-data"


def kek(b: StackBuilder, name: str = "kek", **changes: Any) -> None:
    inputs: dict[str, Any] = {
        "algorithm": "aes", "bitLength": 256.0, "secretType": "symmetric", "payload": secret(),
        "acl": {"read": {"projectAccess": False, "users": ["cinder-svc"]}},
    }
    inputs.update(changes)
    b.add("openstack:keymanager/secretV1:SecretV1", name, inputs)


def payload_ok(b: StackBuilder) -> str | None:
    kek(b)
    return None


def payload_bad(b: StackBuilder) -> str | None:
    kek(b, "literal-kek", payload="c2VjcmV0LWluLWNsZWFy")
    return "literal-kek"


def key_bad_acl(b: StackBuilder) -> str | None:
    kek(b, "open-kek", acl={"read": {"projectAccess": True, "users": ["cinder-svc"]}})
    return "open-kek"


def key_bad_length(b: StackBuilder) -> str | None:
    kek(b, "short-kek", bitLength=128.0)
    return "short-kek"


def volume_type(b: StackBuilder) -> str:
    entry = b.config["volume-encrypted-type"]["encryptedVolumeTypes"][0]
    name = f"citadelle-test-{entry}"
    b.add("openstack:blockstorage/volumeTypeV3:VolumeTypeV3", "luks", {
        "name": name,
        "extraSpecs": {"citadelle:encryption_provider": "luks",
                       "citadelle:encryption_key_size": "256"},
    })
    return name


def volume_ok(b: StackBuilder) -> str | None:
    b.add("openstack:blockstorage/volume:Volume", "data-vol",
          {"size": 100.0, "volumeType": volume_type(b)})
    return None


def volume_bad_untyped(b: StackBuilder) -> str | None:
    volume_type(b)
    b.add("openstack:blockstorage/volume:Volume", "plain-vol", {"size": 100.0})
    return "plain-vol"


def volume_bad_type(b: StackBuilder) -> str | None:
    b.add("openstack:blockstorage/volume:Volume", "classic-vol",
          {"size": 100.0, "volumeType": "classic"})
    return "classic-vol"


def volume_bad_spec(b: StackBuilder) -> str | None:
    name = volume_type(b)
    b.resources[-1].inputs["extraSpecs"] = {"citadelle:encryption_provider": "none"}
    b.add("openstack:blockstorage/volume:Volume", "fake-luks-vol",
          {"size": 10.0, "volumeType": name})
    return "fake-luks-vol"


def container_ok(b: StackBuilder) -> str | None:
    b.add("openstack:objectstorage/container:Container", "extractions",
          {"containerRead": "*:4f1c7e0e2b7d4a86a8b9f1f0a3c2d1e0", "containerWrite": ""})
    return None


def container_bad(b: StackBuilder) -> str | None:
    b.add("openstack:objectstorage/container:Container", "public-lake",
          {"containerRead": ".r:*,.rlistings"})
    return "public-lake"


def container_bad_all_accounts(b: StackBuilder) -> str | None:
    b.add("openstack:objectstorage/container:Container", "shared", {"containerWrite": "*:*"})
    return "shared"


def server_metadata(b: StackBuilder) -> dict[str, str]:
    return {key: "x" for key in ("environment", "node_role", "data_classification", "owner")}


def server_ok(b: StackBuilder) -> str | None:
    b.add("openstack:compute/instance:Instance", "node-1", {"metadata": server_metadata(b)})
    return None


def server_bad(b: StackBuilder) -> str | None:
    metadata = server_metadata(b)
    del metadata["owner"]
    b.add("openstack:compute/instance:Instance", "orphan-1", {"metadata": metadata})
    return "orphan-1"


def psa_ok(b: StackBuilder) -> str | None:
    b.k8s("v1", "Namespace", "citadelle-apps", {}, labels=psa())
    system = b.config["namespace-pod-security-restricted"]["systemNamespaces"][0]
    b.k8s("v1", "Namespace", system, {})
    return None


def psa_bad_level(b: StackBuilder) -> str | None:
    b.k8s("v1", "Namespace", "team-a", {}, labels=psa(level="baseline"))
    return "namespace-team-a"


def psa_bad_unpinned(b: StackBuilder) -> str | None:
    b.k8s("v1", "Namespace", "team-b", {}, labels=psa(version="latest"))
    return "namespace-team-b"


def deny_ok(b: StackBuilder) -> str | None:
    b.k8s("v1", "Namespace", "citadelle-apps", {}, labels=psa())
    deny_all(b, "citadelle-apps")
    return None


def deny_bad_ingress_only(b: StackBuilder) -> str | None:
    b.k8s("v1", "Namespace", "team-c", {}, labels=psa())
    deny_all(b, "team-c", ["Ingress"])
    return "namespace-team-c"


def deny_bad_selector(b: StackBuilder) -> str | None:
    b.k8s("v1", "Namespace", "team-d", {}, labels=psa())
    b.k8s("networking.k8s.io/v1", "NetworkPolicy", "deny-web",
          {"spec": {"podSelector": {"matchLabels": {"app": "web"}},
                    "policyTypes": ["Ingress", "Egress"]}}, namespace="team-d")
    return "namespace-team-d"


def deployment(b: StackBuilder, name: str, **kwargs: Any) -> str:
    b.k8s("apps/v1", "Deployment", name, pod(b, **kwargs), namespace="citadelle-apps")
    return f"deployment-{name}"


def workload_ok(b: StackBuilder) -> str | None:
    deployment(b, "api")
    return None


def privileged_bad(b: StackBuilder) -> str | None:
    return deployment(b, "priv", container={"securityContext": {
        "privileged": True, "allowPrivilegeEscalation": True, "runAsNonRoot": True}})


def capabilities_bad(b: StackBuilder) -> str | None:
    return deployment(b, "netadmin", container={"securityContext": {
        "allowPrivilegeEscalation": False, "runAsNonRoot": True,
        "capabilities": {"add": ["NET_ADMIN"]}}})


def host_path_bad(b: StackBuilder) -> str | None:
    return deployment(b, "hostpath", spec={"volumes": [
        {"name": "root", "hostPath": {"path": "/"}}]})


def host_network_bad(b: StackBuilder) -> str | None:
    return deployment(b, "hostnet", spec={"hostNetwork": True})


def root_uid_bad(b: StackBuilder) -> str | None:
    return deployment(b, "root", container={"securityContext": {
        "allowPrivilegeEscalation": False, "runAsUser": 0}})


def root_unset_bad(b: StackBuilder) -> str | None:
    return deployment(b, "maybe-root", container={"securityContext": {
        "allowPrivilegeEscalation": False}})


def cron_root_bad(b: StackBuilder) -> str | None:
    template = pod(b, container={"securityContext": {"allowPrivilegeEscalation": False,
                                                     "runAsUser": 0}})["spec"]["template"]
    b.k8s("batch/v1", "CronJob", "nightly", {"spec": {"schedule": "0 2 * * *",
                                                      "jobTemplate": {"spec": {
                                                          "template": template}}}},
          namespace="citadelle-apps")
    return "cronjob-nightly"


def binding_ok(b: StackBuilder) -> str | None:
    b.k8s("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "auditors",
          {"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                       "name": "citadelle-auditor"},
           "subjects": [{"kind": "Group", "name": "citadelle-auditors"}]})
    return None


def binding_bad(b: StackBuilder) -> str | None:
    b.k8s("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "ops-admin",
          {"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                       "name": "cluster-admin"},
           "subjects": [{"kind": "Group", "name": "citadelle-operators"}]})
    return "clusterrolebinding-ops-admin"


def service(b: StackBuilder, name: str, kind: str, namespace: str) -> str:
    b.k8s("v1", "Service", name, {"spec": {"type": kind, "ports": [{"port": 443}]}},
          namespace=namespace)
    return f"service-{name}"


def exposure_ok(b: StackBuilder) -> str | None:
    edge = b.config["service-exposure-edge-only"]["edgeNamespaces"][0]
    service(b, "ingress", "NodePort", edge)
    service(b, "api", "ClusterIP", "citadelle-apps")
    return None


def exposure_bad(b: StackBuilder) -> str | None:
    return service(b, "api-lb", "LoadBalancer", "citadelle-apps")


def registry_bad(b: StackBuilder) -> str | None:
    return deployment(b, "hub", image=f"docker.io/library/nginx{DIGEST}")


def registry_bad_implicit(b: StackBuilder) -> str | None:
    return deployment(b, "implicit", image=f"nginx{DIGEST}")


def digest_bad(b: StackBuilder) -> str | None:
    return deployment(b, "tagged", image=f"{registry(b)}/platform/api:1.4.2")


def workspace(b: StackBuilder, ws: str, *, expires: str | None, approval: str | None,
              quota: bool = True) -> str:
    annotations = {}
    if expires:
        annotations["citadelle.io/expires"] = expires
    if approval:
        annotations["citadelle.io/approval-ref"] = approval
    name = f"ws-{ws}"
    b.k8s("v1", "Namespace", name, {}, labels={**psa(), "citadelle.io/workspace": ws},
          annotations=annotations)
    if quota:
        b.k8s("v1", "ResourceQuota", "quota", {"spec": {"hard": {"limits.cpu": "4"}}},
              namespace=name)
        b.k8s("v1", "LimitRange", "limits", {"spec": {"limits": []}}, namespace=name)
    return f"namespace-{name}"


def ws_ok(b: StackBuilder) -> str | None:
    workspace(b, "cohort", expires="2099-12-31", approval="CESREES-2026-0001")
    return None


def ws_bad_expired(b: StackBuilder) -> str | None:
    return workspace(b, "old", expires="2020-01-31", approval="CESREES-2019-0001")


def ws_bad_unapproved(b: StackBuilder) -> str | None:
    return workspace(b, "rogue", expires="2099-12-31", approval=None)


def ws_bad_no_expiry(b: StackBuilder) -> str | None:
    return workspace(b, "forever", expires=None, approval="CNIL-2026-1")


def quota_bad(b: StackBuilder) -> str | None:
    return workspace(b, "unbounded", expires="2099-12-31", approval="X-1", quota=False)


# --------------------------------------------------------------------------- tiers by CIDR


def cidr(b: StackBuilder, tier: str) -> str:
    return str(b.config["data-tier-peers-only"]["tierCidrs"][tier][0])


def untagged_tier(b: StackBuilder, name: str, tier: str) -> dict[str, Any]:
    """A network, subnet, group and port recognised by the tier's CIDR alone (neutral names)."""
    net = b.add("openstack:networking/network:Network", f"net-{name}", {"name": name})
    subnet = b.add("openstack:networking/subnet:Subnet", f"subnet-{name}",
                   {"networkId": net.id, "cidr": cidr(b, tier), "noGateway": tier == "data"})
    group = b.add("openstack:networking/secGroup:SecGroup", f"sg-{name}",
                  {"name": name, "deleteDefaultRules": True})
    port = b.add("openstack:networking/port:Port", f"port-{name}",
                 {"networkId": net.id, "fixedIps": [{"subnetId": subnet.id}],
                  "securityGroupIds": [group.id]})
    return {"network": net, "subnet": subnet, "group": group, "port": port}


def data_untagged_ok(b: StackBuilder) -> str | None:
    db = untagged_tier(b, "store", "data")
    apps = untagged_tier(b, "apps", "app")
    b.rule(db, "store-from-apps", 5432, group=apps["group"])
    b.rule(db, "store-from-apps-cidr", 5432, cidr=cidr(b, "app"))
    return None


def data_bad_router_port(b: StackBuilder) -> str | None:
    db = untagged_tier(b, "store", "data")
    router = b.add("openstack:networking/router:Router", "router", {"externalNetworkId": "ext"})
    b.add("openstack:networking/routerInterface:RouterInterface", "store-uplink",
          {"routerId": router.id, "portId": db["port"].id})
    return "store-uplink"


def data_bad_mistagged_gateway(b: StackBuilder) -> str | None:
    # Tagged "app", but its CIDR is the data tier's: the CIDR decides.
    db = untagged_tier(b, "store", "data")
    db["subnet"].inputs.update(noGateway=False, tags=["tier=app"])
    return "subnet-store"


def data_bad_external_network(b: StackBuilder) -> str | None:
    db = untagged_tier(b, "store", "data")
    db["network"].inputs["external"] = True
    return "net-store"


def data_bad_port_security_off(b: StackBuilder) -> str | None:
    db = untagged_tier(b, "store", "data")
    db["port"].inputs["portSecurityEnabled"] = False
    return "port-store"


def peers_ok(b: StackBuilder) -> str | None:
    return data_untagged_ok(b)


def peers_bad_world(b: StackBuilder) -> str | None:
    db = untagged_tier(b, "store", "data")
    b.rule(db, "store-half-internet", 5432, cidr="0.0.0.0/1")
    return "store-half-internet"


def peers_bad_foreign_cidr(b: StackBuilder) -> str | None:
    db = untagged_tier(b, "store", "data")
    b.rule(db, "store-from-office", 5432, cidr="172.16.8.0/24")
    return "store-from-office"


def peers_bad_edge_group(b: StackBuilder) -> str | None:
    db = untagged_tier(b, "store", "data")
    front = untagged_tier(b, "front", "edge")
    b.rule(db, "store-from-front", 5432, group=front["group"])
    return "store-from-front"


def peers_bad_default_egress(b: StackBuilder) -> str | None:
    db = untagged_tier(b, "store", "data")
    db["group"].inputs["deleteDefaultRules"] = False
    return "sg-store"


def floating_bad_fixed_ip(b: StackBuilder) -> str | None:
    untagged_tier(b, "store", "data")
    address = cidr(b, "data").split("/")[0].rsplit(".", 1)[0] + ".10"
    b.add("openstack:networking/floatingIp:FloatingIp", "store-fip",
          {"pool": "ext", "fixedIp": address, "portId": "port-elsewhere"})
    return "store-fip"


# --------------------------------------------------------------------------- provider TLS


def kubeconfig(cluster: dict[str, Any]) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Config",
                       "clusters": [{"name": "c", "cluster": cluster}]})


def tls_ok(b: StackBuilder) -> str | None:
    b.provider.inputs.update(insecure="false", cacertFile="/etc/ssl/certs/ca.pem")
    b.add("pulumi:providers:kubernetes", "k8s", {"kubeconfig": kubeconfig(
        {"server": "https://api.citadelle.internal:6443",
         "certificate-authority": "/etc/ssl/certs/k8s-ca.pem"})}, provider=None)
    return None


def tls_bad_insecure(b: StackBuilder) -> str | None:
    b.provider.inputs["insecure"] = "true"
    return "openstack"


def tls_bad_http_override(b: StackBuilder) -> str | None:
    b.provider.inputs["endpointOverrides"] = json.dumps(
        {"volumev3": "http://volume.fr-par-1.snc.ovhcloud.com/v3"})
    return "openstack"


def tls_bad_empty_ca(b: StackBuilder) -> str | None:
    b.provider.inputs["cacertFile"] = "/dev/null"
    return "openstack"


def tls_bad_kubeconfig_skip_verify(b: StackBuilder) -> str | None:
    b.add("pulumi:providers:kubernetes", "k8s", {"kubeconfig": kubeconfig(
        {"server": "https://api.citadelle.internal:6443", "insecure-skip-tls-verify": True})},
        provider=None)
    return "k8s"


def tls_bad_no_kubeconfig(b: StackBuilder) -> str | None:
    b.add("pulumi:providers:kubernetes", "k8s", {}, provider=None)
    return "k8s"


def tls_bad_other_provider(b: StackBuilder) -> str | None:
    b.add("pulumi:providers:vault", "vault", {"address": "https://vault.citadelle.internal",
                                              "skipTlsVerify": "true"}, provider=None)
    return "vault"


# --------------------------------------------------------------------------- RBAC

RBAC = "rbac.authorization.k8s.io/v1"


def role(b: StackBuilder, name: str, rules: list[dict[str, Any]], *, kind: str = "ClusterRole",
         namespace: str | None = None, **body: Any) -> None:
    b.k8s(RBAC, kind, name, {"rules": rules, **body}, namespace=namespace)


def binding(b: StackBuilder, name: str, role_name: str, subjects: list[dict[str, Any]], *,
            kind: str = "ClusterRoleBinding", namespace: str | None = None,
            role_kind: str = "ClusterRole") -> None:
    b.k8s(RBAC, kind, name, {"roleRef": {"apiGroup": "rbac.authorization.k8s.io",
                                         "kind": role_kind, "name": role_name},
                             "subjects": subjects}, namespace=namespace)


GROUP_SUBJECT = {"kind": "Group", "name": "platform-operators",
                 "apiGroup": "rbac.authorization.k8s.io"}
READ_PODS = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]


def rbac_ok(b: StackBuilder) -> str | None:
    role(b, "reader", READ_PODS)
    binding(b, "readers", "reader", [GROUP_SUBJECT])
    role(b, "config", [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}],
         kind="Role", namespace="team")
    binding(b, "config", "config", [GROUP_SUBJECT, {"kind": "ServiceAccount", "name": "api",
                                                    "namespace": "team"}],
            kind="RoleBinding", namespace="team", role_kind="Role")
    return None


def rbac_bad_wildcard(b: StackBuilder) -> str | None:
    role(b, "owner", [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}], kind="Role",
         namespace="team")
    return "role-owner"


def rbac_bad_escalate(b: StackBuilder) -> str | None:
    role(b, "granter", [{"apiGroups": ["rbac.authorization.k8s.io"],
                         "resources": ["clusterroles"], "verbs": ["bind", "escalate"]}])
    return "clusterrole-granter"


def rbac_bad_exec(b: StackBuilder) -> str | None:
    role(b, "shell", [{"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]}])
    return "clusterrole-shell"


def rbac_bad_aggregation(b: StackBuilder) -> str | None:
    role(b, "gathered", [], aggregationRule={
        "clusterRoleSelectors": [{"matchLabels": {"team": "x"}}]})
    return "clusterrole-gathered"


def rbac_bad_cluster_secrets(b: StackBuilder) -> str | None:
    role(b, "secrets", [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]}])
    binding(b, "all-secrets", "secrets", [GROUP_SUBJECT])
    return "clusterrolebinding-all-secrets"


def rbac_bad_builtin_admin(b: StackBuilder) -> str | None:
    binding(b, "team-admin", "admin", [GROUP_SUBJECT], kind="RoleBinding", namespace="team")
    return "rolebinding-team-admin"


def subjects_ok(b: StackBuilder) -> str | None:
    return rbac_ok(b)


def subjects_bad_authenticated(b: StackBuilder) -> str | None:
    binding(b, "all", "view", [{"kind": "Group", "name": "system:authenticated"}])
    return "clusterrolebinding-all"


def subjects_bad_unauthenticated(b: StackBuilder) -> str | None:
    binding(b, "anon", "view", [{"kind": "Group", "name": "system:unauthenticated"}],
            kind="RoleBinding", namespace="team")
    return "rolebinding-anon"


def subjects_bad_default_sa(b: StackBuilder) -> str | None:
    binding(b, "dflt", "view", [{"kind": "ServiceAccount", "name": "default",
                                 "namespace": "team"}], kind="RoleBinding", namespace="team")
    return "rolebinding-dflt"


def subjects_bad_foreign_sa(b: StackBuilder) -> str | None:
    binding(b, "ci", "view", [{"kind": "ServiceAccount", "name": "ci", "namespace": "build"}],
            kind="RoleBinding", namespace="team")
    return "rolebinding-ci"


# --------------------------------------------------------------------------- unknown at preview


def known_ok(b: StackBuilder) -> str | None:
    b.rule(b.tier("app"), "app-from-edge", 8443, group=b.tier("edge")["group"])
    return None


def known_bad_rule_peer(b: StackBuilder) -> str | None:
    data = b.tier("data")
    b.add("openstack:networking/secGroupRule:SecGroupRule", "data-from-later",
          {"direction": "ingress", "protocol": "tcp", "portRangeMin": 5432.0,
           "portRangeMax": 5432.0, "remoteIpPrefix": UNKNOWN,
           "securityGroupId": data["group"].id})
    return "data-from-later"


def known_bad_kubeconfig_path(b: StackBuilder) -> str | None:
    b.add("pulumi:providers:kubernetes", "k8s", {"kubeconfig": "~/.kube/config"},
          provider=None)
    return "k8s"


CASES: list[tuple[str, Case]] = [
    ("eu-region-allow-list", region_ok),
    ("eu-region-allow-list", region_bad_provider),
    ("eu-region-allow-list", region_bad_resource),
    ("eu-endpoint-allow-list", endpoint_ok),
    ("eu-endpoint-allow-list", endpoint_bad_auth),
    ("eu-endpoint-allow-list", endpoint_bad_url),
    ("eu-endpoint-allow-list", endpoint_bad_url_beside_unknown),
    ("explicit-provider", provider_ok),
    ("explicit-provider", provider_bad),
    ("no-world-open-ingress", world_ok),
    ("no-world-open-ingress", world_bad_app),
    ("no-world-open-ingress", world_bad_edge_port),
    ("no-world-open-ingress", world_bad_no_remote),
    ("ssh-from-bastion-only", ssh_ok),
    ("ssh-from-bastion-only", ssh_bad_cidr),
    ("ssh-from-bastion-only", ssh_bad_bastion_world),
    ("ssh-from-bastion-only", ssh_bad_peer_group),
    ("floating-ip-edge-bastion-only", floating_ok),
    ("floating-ip-edge-bastion-only", floating_bad_app),
    ("floating-ip-edge-bastion-only", floating_bad_data_port),
    ("floating-ip-edge-bastion-only", floating_bad_magnum),
    ("data-tier-no-external-route", data_ok),
    ("data-tier-no-external-route", data_bad_interface),
    ("data-tier-no-external-route", data_bad_gateway),
    ("data-tier-no-external-route", data_untagged_ok),
    ("data-tier-no-external-route", data_bad_router_port),
    ("data-tier-no-external-route", data_bad_mistagged_gateway),
    ("data-tier-no-external-route", data_bad_external_network),
    ("data-tier-no-external-route", data_bad_port_security_off),
    ("data-tier-peers-only", peers_ok),
    ("data-tier-peers-only", peers_bad_world),
    ("data-tier-peers-only", peers_bad_foreign_cidr),
    ("data-tier-peers-only", peers_bad_edge_group),
    ("data-tier-peers-only", peers_bad_default_egress),
    ("floating-ip-edge-bastion-only", floating_bad_fixed_ip),
    ("provider-tls-verified", tls_ok),
    ("provider-tls-verified", tls_bad_insecure),
    ("provider-tls-verified", tls_bad_http_override),
    ("provider-tls-verified", tls_bad_empty_ca),
    ("provider-tls-verified", tls_bad_kubeconfig_skip_verify),
    ("provider-tls-verified", tls_bad_no_kubeconfig),
    ("provider-tls-verified", tls_bad_other_provider),
    ("rbac-least-privilege", rbac_ok),
    ("rbac-least-privilege", rbac_bad_wildcard),
    ("rbac-least-privilege", rbac_bad_escalate),
    ("rbac-least-privilege", rbac_bad_exec),
    ("rbac-least-privilege", rbac_bad_aggregation),
    ("rbac-least-privilege", rbac_bad_cluster_secrets),
    ("rbac-least-privilege", rbac_bad_builtin_admin),
    ("rbac-platform-subjects", subjects_ok),
    ("rbac-platform-subjects", subjects_bad_authenticated),
    ("rbac-platform-subjects", subjects_bad_unauthenticated),
    ("rbac-platform-subjects", subjects_bad_default_sa),
    ("rbac-platform-subjects", subjects_bad_foreign_sa),
    ("security-inputs-known", known_ok),
    ("security-inputs-known", known_bad_rule_peer),
    ("security-inputs-known", known_bad_kubeconfig_path),
    ("barbican-payload-secret", payload_ok),
    ("barbican-payload-secret", payload_bad),
    ("barbican-key-protection", payload_ok),
    ("barbican-key-protection", key_bad_acl),
    ("barbican-key-protection", key_bad_length),
    ("volume-encrypted-type", volume_ok),
    ("volume-encrypted-type", volume_bad_untyped),
    ("volume-encrypted-type", volume_bad_type),
    ("volume-encrypted-type", volume_bad_spec),
    ("object-storage-private", container_ok),
    ("object-storage-private", container_bad),
    ("object-storage-private", container_bad_all_accounts),
    ("server-required-metadata", server_ok),
    ("server-required-metadata", server_bad),
    ("namespace-pod-security-restricted", psa_ok),
    ("namespace-pod-security-restricted", psa_bad_level),
    ("namespace-pod-security-restricted", psa_bad_unpinned),
    ("namespace-default-deny", deny_ok),
    ("namespace-default-deny", deny_bad_ingress_only),
    ("namespace-default-deny", deny_bad_selector),
    ("no-privileged-containers", workload_ok),
    ("no-privileged-containers", privileged_bad),
    ("no-privileged-containers", capabilities_bad),
    ("no-host-access", workload_ok),
    ("no-host-access", host_path_bad),
    ("no-host-access", host_network_bad),
    ("no-root-containers", workload_ok),
    ("no-root-containers", root_uid_bad),
    ("no-root-containers", root_unset_bad),
    ("no-root-containers", cron_root_bad),
    ("no-cluster-admin-binding", binding_ok),
    ("no-cluster-admin-binding", binding_bad),
    ("service-exposure-edge-only", exposure_ok),
    ("service-exposure-edge-only", exposure_bad),
    ("image-allowed-registry", workload_ok),
    ("image-allowed-registry", registry_bad),
    ("image-allowed-registry", registry_bad_implicit),
    ("image-pinned-digest", workload_ok),
    ("image-pinned-digest", digest_bad),
    ("workspace-not-expired", ws_ok),
    ("workspace-not-expired", ws_bad_expired),
    ("workspace-not-expired", ws_bad_unapproved),
    ("workspace-not-expired", ws_bad_no_expiry),
    ("workspace-quota", ws_ok),
    ("workspace-quota", quota_bad),
]


@pytest.mark.parametrize(("policy", "case"), CASES,
                         ids=[f"{p}:{c.__name__}" for p, c in CASES])
def test_policy_case(analyzer, stack, policy, case):
    expected = case(stack)
    result = run_gate(stack.recording(), analyzer, stack.config)
    flagged = sorted({f.subject for f in result.findings if f.rule_id == policy})
    if expected is None:
        assert flagged == []
    elif policy == ADVISORY:
        assert flagged == [expected]
        assert all(not f.blocking for f in result.findings if f.rule_id == policy)
    else:
        assert flagged == [expected]
        assert result.exit_code == 1
        assert all(f.blocking for f in result.findings if f.rule_id == policy)


def test_every_policy_has_compliant_and_violating_cases(analyzer):
    names = {p.name for p in analyzer.info}
    compliant = {p for p, c in CASES if c.__name__.endswith("_ok")}
    violating = {p for p, c in CASES if "_bad" in c.__name__}
    assert compliant == names
    assert violating == names


def test_unknown_input_skips_one_resource_not_the_stack(analyzer, stack):
    # During a preview one rule's peer is unknown: it is named (advisory), never flagged as a
    # violation, and the stack policies still judge every other resource.
    known_bad_rule_peer(stack)
    data = {"group": next(r for r in stack.resources if r.name == "sg-data")}
    stack.rule(data, "data-world", 5432, cidr="0.0.0.0/0")
    result = run_gate(stack.recording(), analyzer, stack.config)
    blocking = {(f.rule_id, f.subject) for f in result.findings if f.blocking}
    assert ("no-world-open-ingress", "data-world") in blocking
    assert ("data-tier-peers-only", "data-world") in blocking
    assert not any(subject == "data-from-later" for _, subject in blocking)
    assert [(f.rule_id, f.blocking) for f in result.findings if f.subject == "data-from-later"] \
        == [(ADVISORY, False)]


@pytest.mark.parametrize(("type_token", "body", "expected"), [
    # Another API version, a List and a Patch of the same kinds: judged as the kinds are.
    ("kubernetes:apps/v1beta2:Deployment", "privileged", "deployment-v1beta2"),
    ("kubernetes:apps/v1:DeploymentList", "privileged", "deploymentlist"),
    ("kubernetes:apps/v1:DeploymentPatch", "privileged", "deploymentpatch"),
    ("kubernetes:core/v1:PodTemplate", "privileged", "podtemplate"),
    # A patch that only changes the image leaves the rest as it is: nothing to judge there.
    ("kubernetes:apps/v1:DeploymentPatch", "image-only", None),
])
def test_workload_shapes_are_judged_by_kind(analyzer, stack, type_token, body, expected):
    container: dict[str, Any] = {"name": "api", "image": f"{registry(stack)}/api{DIGEST}"}
    if body == "privileged":
        container["securityContext"] = {"privileged": True, "allowPrivilegeEscalation": False,
                                        "runAsNonRoot": True, "runAsUser": 10001}
    kind = type_token.rsplit(":", 1)[1].removesuffix("Patch").removesuffix("List")
    template = {"metadata": {"labels": {"app": "api"}}, "spec": {"containers": [container]}}
    obj: dict[str, Any] = {"apiVersion": "apps/v1", "kind": kind,
                           "metadata": {"name": "api", "namespace": "team"}}
    obj.update({"template": template} if kind == "PodTemplate"
               else {"spec": {"template": template}})
    inputs = {"items": [obj]} if type_token.endswith("List") else obj
    name = expected or "deploymentpatch"
    stack.add(type_token, name, inputs, provider=None)
    result = run_gate(stack.recording(), analyzer, stack.config)
    flagged = sorted({f.subject for f in result.findings
                      if f.rule_id == "no-privileged-containers"})
    assert flagged == ([expected] if expected else [])
    assert not [f for f in result.findings if f.rule_id == "no-root-containers"]
