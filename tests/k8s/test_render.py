"""`citadelle render`: the declared objects as manifests, valid against the Kubernetes schemas."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from k8s_support import ENVIRONMENTS, MODES, kube_objects, plan, recording_for, stack_values

from citadelle.cli import main
from citadelle.plan.render import manifests, render_path, write_manifests

pytestmark = pytest.mark.unit


def _schema_version(env: str) -> str:
    """The schema set matching the pinned cluster minor (kubernetes-validate ships them)."""
    major, minor, _ = stack_values(env)["kubernetes"]["version"].lstrip("v").split(".")
    return f"{major}.{minor}.0"


def _rendered(env: str, mode: str) -> dict[str, dict[str, Any]]:
    return manifests(recording_for(env, mode))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_rendered_manifests_validate_against_the_openapi_schemas(env: str, mode: str) -> None:
    rendered = _rendered(env, mode)
    assert len(rendered) > 30
    failures = {}
    for path, manifest in rendered.items():
        try:
            kubernetes_validate.validate(manifest, _schema_version(env), strict=True)
        except kubernetes_validate.ValidationError as err:
            failures[path] = str(err).splitlines()[0]
    assert failures == {}


def test_the_validator_rejects_a_broken_manifest() -> None:
    rendered = _rendered("dev", "magnum")
    policy = next(m for p, m in rendered.items() if "networkpolicy" in p)
    broken = copy.deepcopy(policy)
    broken["spec"]["podSelectr"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, _schema_version("dev"), strict=True)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_declared_object_is_rendered_once_with_provider_file_names(env: str) -> None:
    recording = recording_for(env, "magnum")
    rendered = _rendered(env, "magnum")
    assert len(rendered) == len(kube_objects(recording))
    ns = next(m for m in rendered.values() if m["kind"] == "Namespace")
    name = ns["metadata"]["name"]
    assert render_path(ns) == f"1-manifest/v1-namespace-default-{name}.yaml"
    assert f"1-manifest/networking.k8s.io_v1-networkpolicy-{name}-default-deny.yaml" in rendered
    for manifest in rendered.values():
        assert list(manifest)[:3] == ["apiVersion", "kind", "metadata"]
        # Integral numbers come back as ints, not the wire's floats.
        assert "53.0" not in yaml.safe_dump(manifest)


def test_render_command_writes_the_tree_idempotently(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "dev"
    stale = out / "1-manifest" / "v1-configmap-default-gone.yaml"
    stale.parent.mkdir(parents=True)
    stale.write_text("stale\n")
    keep = out / "README"
    keep.write_text("not a manifest\n")
    assert main(["render", "dev", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.yaml"))
    assert files == sorted(_rendered("dev", "magnum"))
    assert f"{len(files)} manifests in {out}" in printed
    assert not stale.exists() and keep.read_text() == "not a manifest\n"
    rendered = _rendered("dev", "magnum")
    assert all(yaml.safe_load((out / f).read_text()) == rendered[f] for f in files)
    first = {f: (out / f).read_bytes() for f in files}
    mtimes = {f: (out / f).stat().st_mtime_ns for f in files}
    assert main(["render", "dev", "--out", str(out)]) == 0
    assert {f: (out / f).read_bytes() for f in files} == first
    assert {f: (out / f).stat().st_mtime_ns for f in files} == mtimes
    namespace = yaml.safe_load((out / "1-manifest" / "v1-namespace-default-ws-synthetic-demo.yaml")
                               .read_text())
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_render_refuses_an_output_that_is_a_file(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "file"
    target.write_text("")
    assert main(["render", "dev", "--out", str(target)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"citadelle: error: --out {target}: exists and is not a directory")


def test_write_manifests_never_renders_a_secret_in_clear(tmp_path: Path) -> None:
    secret = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270",
              "value": "[secret]"}
    from citadelle.plan.render import manifest_of

    manifest = manifest_of({"apiVersion": "v1", "kind": "ConfigMap",
                            "metadata": {"name": "x", "namespace": "n"},
                            "data": {"token": secret}})
    write_manifests({render_path(manifest): manifest}, tmp_path)
    text = (tmp_path / "1-manifest" / "v1-configmap-n-x.yaml").read_text()
    assert "token: '[secret]'" in text


def test_render_dir_config_makes_the_provider_render_instead_of_apply() -> None:
    def render_to(values: dict[str, Any]) -> None:
        values["kubernetes"]["renderDir"] = "rendered/prod"

    recording = plan("prod", render_to)
    (provider,) = recording.of_type("pulumi:providers:kubernetes")
    assert provider.inputs["renderYamlToDirectory"] == "rendered/prod"
    (default,) = recording_for("prod", "magnum").of_type("pulumi:providers:kubernetes")
    assert "renderYamlToDirectory" not in default.inputs
