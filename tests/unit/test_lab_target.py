"""The lab target's clones stand in for the environment's server groups, data volumes included."""

from __future__ import annotations

import pytest

from citadelle.environment import Environment
from citadelle.lab.target import LAB_CLONES, LabTarget, lab_volumes, placement


@pytest.mark.parametrize("name", ["dev", "mirror", "prod"])
def test_each_clone_gets_the_data_volume_of_its_server_group(name: str) -> None:
    env = Environment.load(name, LabTarget())
    compute = env.settings.compute
    app_pool = next(p for p in compute.node_pools if p.tier == "app")
    expected = {"bastion": compute.bastion.data_volume_gb,
                "gw": compute.gateway.data_volume_gb, "node1": app_pool.data_volume_gb}
    assert lab_volumes(env, LAB_CLONES) == {n: gb for n, gb in expected.items() if gb}


def test_dev_gateway_clone_carries_the_transfer_staging_volume() -> None:
    env = Environment.load("dev", LabTarget())
    assert placement(env, "gateway") == ("transfer", "gateway")
    assert lab_volumes(env, LAB_CLONES) == {"gw": 100}
    assert lab_volumes(env, {"baseline": "node"}) == {}
