"""The Kubernetes side passes the policy pack, in both cluster modes, run out of process."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest
import yaml
from k8s_support import MODES, stack_values

from citadelle import paths
from citadelle.cli import main

pytestmark = pytest.mark.policy

KUBERNETES_POLICIES = ("namespace-pod-security-restricted", "namespace-default-deny",
                       "no-cluster-admin-binding", "workspace-not-expired", "workspace-quota")


def _stack_file(tmp_path: Path, env: str, mode: str) -> Path:
    stack = yaml.safe_load((paths.ENVIRONMENTS_DIR / f"Pulumi.{env}.yaml").read_text())
    stack["config"]["citadelle:kubernetes"]["mode"] = mode
    if mode == "existing":
        # Shaped as `pulumi config set --secret` leaves it; offline it becomes a placeholder.
        stack["config"]["citadelle:kubeconfig"] = {"secure": "v1:AAAAAAAAAAAAAAAA:placeholder"}
        stack["config"]["citadelle:kubernetes"]["apiServerCidrs"] = ["10.250.30.0/28"]
    target = tmp_path / f"Pulumi.{env}.yaml"
    target.write_text(yaml.safe_dump(stack))
    return target


@pytest.mark.parametrize("mode", MODES)
def test_prod_passes_the_gate_with_every_kubernetes_policy_applied(
    tmp_path: Path, mode: str, capsys: pytest.CaptureFixture[str]
) -> None:
    junit = tmp_path / "gate.xml"
    code = main(["gate", "prod", "--stack-config", str(_stack_file(tmp_path, "prod", mode)),
                 "--junit", str(junit)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "0 mandatory violations" in out
    checked = Counter(tc.get("classname") for tc in ET.parse(junit).getroot().iter("testcase"))
    workspaces = len(stack_values("prod")["workspaces"])
    namespaces = 3 + workspaces
    assert checked["namespace-pod-security-restricted"] == namespaces
    assert checked["workspace-not-expired"] == workspaces
    for policy in KUBERNETES_POLICIES:
        assert checked[policy] > 0, policy
