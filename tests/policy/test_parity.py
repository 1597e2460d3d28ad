"""Mirror parity: identical structures pass; a removed rule, an extra floating IP or an
unencrypted volume in the mirror is each reported, whatever the names, CIDRs and sizes."""

from __future__ import annotations

import copy
import json

import pytest

from citadelle.cli import main
from citadelle.plan.offline import RecordedResource, Recording
from citadelle.plan.parity import compare, parity
from citadelle.plan.plan import plan_environment, tiers, write_json

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def prod() -> Recording:
    return plan_environment("prod")


@pytest.fixture(scope="module")
def mirror_base() -> Recording:
    return plan_environment("mirror")


@pytest.fixture
def mirror(mirror_base) -> Recording:
    return copy.deepcopy(mirror_base)


def first(recording: Recording, short: str, **inputs) -> RecordedResource:
    return next(r for r in recording.resources if r.type.endswith(":" + short)
                and all(r.inputs.get(k) == v for k, v in inputs.items()))


def test_prod_and_mirror_are_identical(prod, mirror):
    report = compare(prod, mirror)
    assert report.drift == []
    assert report.exit_code == 0
    assert report.compared["rules"] > 0 and report.compared["kubernetes"] > 0


def test_names_cidrs_and_sizes_are_ignored(prod, mirror):
    for resource in mirror.resources:
        if "size" in resource.inputs:
            resource.inputs["size"] = resource.inputs["size"] * 2
        if "cidr" in resource.inputs:
            resource.inputs["cidr"] = "172.31.0.0/24"
        resource.name = "renamed-" + resource.name
    assert compare(prod, mirror).drift == []


def test_removed_security_rule_is_reported(prod, mirror):
    rule = first(mirror, "SecGroupRule", direction="ingress", portRangeMin=22.0,
                 description="SSH only from bastion")
    mirror.resources.remove(rule)
    report = compare(prod, mirror)
    facts = {(d.category, d.fact, d.a, d.b) for d in report.drift}
    assert ("rules", (report_tier(mirror, rule), "ingress", "tcp", "22", "tier:admin"), 1, 0) \
        in facts
    assert report.exit_code == 1


def report_tier(recording: Recording, rule: RecordedResource) -> str:
    tier_of = tiers(recording)
    group = next(r for r in recording.resources if r.id == rule.inputs["securityGroupId"])
    return tier_of[group.urn]


def test_extra_floating_ip_is_reported(prod, mirror):
    port = first(mirror, "Port", name="citadelle-mirror-workers-1")
    template = first(mirror, "FloatingIpAssociate")
    extra = copy.deepcopy(template)
    extra.urn, extra.name, extra.id = extra.urn + "-extra", "extra", "extra-id"
    extra.inputs = {"floatingIp": "203.0.113.99", "portId": port.id}
    mirror.resources.append(extra)
    report = compare(prod, mirror)
    assert ("public", ("FloatingIpAssociate", "app"), 0, 1) in {
        (d.category, d.fact, d.a, d.b) for d in report.drift}
    assert report.exit_code == 1


def test_unencrypted_volume_is_reported(prod, mirror):
    volume = first(mirror, "Volume")
    volume.inputs["volumeType"] = "classic"
    report = compare(prod, mirror)
    drift = {(d.category, d.fact) for d in report.drift}
    assert any(category == "encryption" and fact[0] == "volume" and fact[2] == "NOT encrypted"
               for category, fact in drift)
    assert report.exit_code == 1


def test_allowed_count_pattern_tolerates_counts_only(prod, mirror):
    worker = first(mirror, "Instance", name="citadelle-mirror-workers-1")
    mirror.resources.remove(worker)
    assert compare(prod, mirror).exit_code == 1
    allowed = compare(prod, mirror, ["citadelle:compute:ComputeFleet/app/Instance"])
    assert allowed.drift == []


def test_cli_json_and_exit_code(prod, mirror, tmp_path, capsys):
    volume = first(mirror, "Volume")
    volume.inputs["volumeType"] = "classic"
    write_json(prod, tmp_path / "prod.json")
    write_json(mirror, tmp_path / "mirror.json")
    assert main(["parity", str(tmp_path / "prod.json"), str(tmp_path / "mirror.json"),
                 "--json"]) == 1
    document = json.loads(capsys.readouterr().out)
    assert document["identical"] is False
    assert {d["category"] for d in document["drift"]} == {"encryption"}
    assert main(["parity", str(tmp_path / "prod.json"), str(tmp_path / "prod.json")]) == 0
    assert "Result: IDENTICAL structure" in capsys.readouterr().out


def test_parity_of_environments_by_name():
    report = parity("prod", "mirror")
    assert report.exit_code == 0


def test_allowances_come_from_the_parity_namespace():
    from citadelle.errors import CitadelleError
    from citadelle.plan.parity import ALLOW_KEY, _allowances

    assert _allowances({ALLOW_KEY: '["citadelle:compute:ComputeFleet/app/*"]'}) == [
        "citadelle:compute:ComputeFleet/app/*"]
    assert _allowances({}) == []
    with pytest.raises(CitadelleError, match="parity:allowCounts: expected a list of patterns"):
        _allowances({ALLOW_KEY: "all"})


def test_key_no_longer_used_is_reported(prod, mirror):
    kek = first(mirror, "SecretV1", name="citadelle-mirror-kubernetes-kek")
    ref = kek.outputs["secretRef"]
    users = [r for r in mirror.resources if ref in json.dumps(r.inputs) and r is not kek]
    profile = next(r for r in users if r.type == "kubernetes:core/v1:ConfigMap")
    profile.inputs = json.loads(json.dumps(profile.inputs).replace(ref, "offline:another-key"))
    report = compare(prod, mirror)
    lost = [d for d in report.drift if d.category == "encryption" and d.fact[0] == "key-use"]
    assert [(d.fact[1], d.fact[3], d.a, d.b) for d in lost] == [
        ("ConfigMap", "kubernetes", 1, 0)]
