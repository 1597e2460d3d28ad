"""The cluster: private Magnum cluster or existing one, one explicit provider, KMS on Barbican."""

from __future__ import annotations

import pytest
import yaml
from k8s_support import (
    ENVIRONMENTS,
    MODES,
    kube_objects,
    of_kind,
    recording_for,
    stack_values,
)

from citadelle.plan.offline import Recording, is_secret

pytestmark = pytest.mark.unit

TEMPLATE = "openstack:containerinfra/clusterTemplate:ClusterTemplate"
CLUSTER = "openstack:containerinfra/cluster:Cluster"
NODE_GROUP = "openstack:containerinfra/nodeGroup:NodeGroup"
K8S_PROVIDER = "pulumi:providers:kubernetes"
SECRET = "openstack:keymanager/secretV1:SecretV1"


@pytest.fixture(params=ENVIRONMENTS)
def env(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _by_name(recording: Recording, type_token: str, suffix: str) -> str | None:
    return next((r.id for r in recording.of_type(type_token) if r.name.endswith(suffix)), None)


@pytest.mark.snc("13.2")
def test_magnum_cluster_is_private_in_the_app_tier(env: str) -> None:
    recording = recording_for(env, "magnum")
    (template,) = recording.of_type(TEMPLATE)
    (cluster,) = recording.of_type(CLUSTER)
    app_network = _by_name(recording, "openstack:networking/network:Network", "network-app")
    app_subnet = _by_name(recording, "openstack:networking/subnet:Subnet", "network-app")
    for resource in (template, cluster):
        assert resource.inputs["floatingIpEnabled"] is False
        assert resource.inputs["masterLbEnabled"] is True
        assert resource.inputs["fixedNetwork"] == app_network
        assert resource.inputs["fixedSubnet"] == app_subnet
    assert template.inputs["labels"]["master_lb_floating_ip_enabled"] == "false"
    assert template.inputs["public"] is False
    assert template.inputs["tlsDisabled"] is False
    assert template.inputs["networkDriver"] == "calico"  # enforces NetworkPolicy
    # The API answers on a private address of the app subnet.
    subnet = next(s for s in recording.of_type("openstack:networking/subnet:Subnet")
                  if s.id == app_subnet)
    prefix = subnet.inputs["cidr"].rsplit(".", 2)[0]
    assert recording.stack_outputs["kubernetes"]["apiAddress"].startswith(f"https://{prefix}.")


def test_magnum_cluster_pins_version_image_registry_and_encrypted_volumes(env: str) -> None:
    recording = recording_for(env, "magnum")
    values = stack_values(env)
    (template,) = recording.of_type(TEMPLATE)
    labels = template.inputs["labels"]
    assert labels["kube_tag"] == values["kubernetes"]["version"]
    assert template.inputs["image"] == values["compute"]["image"]
    assert labels["container_infra_prefix"] == f"{values['kubernetes']['registry']}/magnum"
    (volume_type,) = recording.of_type("openstack:blockstorage/volumeTypeV3:VolumeTypeV3")
    assert labels["boot_volume_type"] == volume_type.inputs["name"]
    assert labels["etcd_volume_type"] == volume_type.inputs["name"]
    assert labels["audit_log_enabled"] == "true"
    assert "TLS_RSA_" not in labels["api_server_tls_cipher_suites"]


def test_masters_and_node_groups_cover_every_availability_zone(env: str) -> None:
    recording = recording_for(env, "magnum")
    values = stack_values(env)
    zones = values["openstack"]["availabilityZones"]
    (cluster,) = recording.of_type(CLUSTER)
    assert cluster.inputs["labels"]["control_plane_availability_zones"] == ",".join(zones)
    assert cluster.inputs["masterCount"] == values["kubernetes"]["masterCount"]
    placed = {cluster.inputs["labels"]["availability_zone"]: cluster.inputs["nodeCount"]}
    for group in recording.of_type(NODE_GROUP):
        assert group.inputs["imageId"] == values["compute"]["image"]
        zone = group.inputs["labels"]["availability_zone"]
        placed[zone] = placed.get(zone, 0) + group.inputs["nodeCount"]
    assert sorted(placed) == sorted(zones)
    assert sum(placed.values()) == sum(g["count"] for g in values["kubernetes"]["nodeGroups"])
    assert max(placed.values()) - min(placed.values()) <= 1


def test_existing_mode_declares_no_magnum_cluster_and_reads_the_kubeconfig_secret() -> None:
    recording = recording_for("prod", "existing")
    assert not recording.of_type(TEMPLATE)
    assert not recording.of_type(CLUSTER)
    (provider,) = recording.of_type(K8S_PROVIDER)
    assert is_secret(provider.inputs["kubeconfig"])
    assert recording.stack_outputs["kubernetes"]["mode"] == "existing"
    assert recording.stack_outputs["kubernetes"]["apiAddress"] is None


@pytest.mark.snc("12.14")
def test_every_kubernetes_object_goes_through_the_explicit_provider(env: str, mode: str) -> None:
    recording = recording_for(env, mode)
    (provider,) = recording.of_type(K8S_PROVIDER)
    assert is_secret(provider.inputs["kubeconfig"])  # never a path to an ambient kubeconfig
    assert "context" not in provider.inputs and "cluster" not in provider.inputs
    assert provider.inputs["clusterIdentifier"] == f"citadelle-{env}-k8s"
    objects = kube_objects(recording)
    assert len(objects) > 30
    expected = f"{provider.urn}::{provider.id}"
    assert {o.provider for o in objects} == {expected}
    if mode == "magnum":
        (cluster,) = recording.of_type(CLUSTER)
        assert cluster.provider and cluster.provider.split("::")[-2] == "openstack"


@pytest.mark.snc("10.5")
def test_secrets_encryption_uses_kms_v2_on_the_environment_barbican_key(env: str,
                                                                        mode: str) -> None:
    recording = recording_for(env, mode)
    kek = next(s for s in recording.of_type(SECRET)
               if s.inputs["metadata"]["purpose"] == "kubernetes")
    key_ref = kek.outputs["secretRef"]
    (profile,) = [c for c in of_kind(recording, "ConfigMap")
                  if c.inputs["metadata"]["name"] == "cluster-security-profile"]
    data = profile.inputs["data"]
    assert data["kms-key-ref"] == key_ref
    assert f"key-id = {key_ref.rsplit('/', 1)[-1]}" in data["barbican-kms-plugin.conf"]
    encryption = yaml.safe_load(data["encryption-configuration.yaml"])
    (rule,) = encryption["resources"]
    assert rule["resources"] == ["secrets"]
    first = rule["providers"][0]["kms"]
    assert first["apiVersion"] == "v2" and first["name"] == "barbican"
    assert recording.stack_outputs["kubernetes"]["kmsKeyRef"] == key_ref
    # The Magnum service user is among the key's readers (it runs the plugin's credential).
    assert f"magnum-svc-{env}" in kek.inputs["acl"]["read"]["users"]


def test_audit_policy_never_logs_secret_bodies(env: str) -> None:
    recording = recording_for(env, "magnum")
    (profile,) = [c for c in of_kind(recording, "ConfigMap")
                  if c.inputs["metadata"]["name"] == "cluster-security-profile"]
    policy = yaml.safe_load(profile.inputs["data"]["audit-policy.yaml"])
    assert policy["apiVersion"] == "audit.k8s.io/v1"
    secret_rule = next(r for r in policy["rules"]
                       if any("secrets" in g.get("resources", []) for g in r.get("resources", [])))
    assert secret_rule["level"] == "Metadata"
    assert policy["rules"][-1] == {"level": "Metadata"}  # everything else is audited
