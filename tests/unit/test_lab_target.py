"""The lab target's clones stand in for the environment's server groups, data volumes included."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from citadelle.environment import Environment
from citadelle.environment.targets import make_target
from citadelle.errors import CitadelleError
from citadelle.lab.outputs import placement
from citadelle.lab.target import LAB_CLONES, TRANSFER_HOST, LabTarget, lab_volumes


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


def test_the_lab_target_serves_the_migration_endpoints(tmp_path: Path) -> None:
    assert isinstance(make_target("lab"), LabTarget)
    env = Environment.load("dev", LabTarget(root=tmp_path))
    endpoints = LabTarget(root=tmp_path).transfer_endpoints(env, None)
    assert endpoints.source_url == "https://127.0.0.1:17443/sndslab"
    assert endpoints.source_ca == tmp_path.resolve() / "collector" / "pki" / "ca.crt"
    assert (endpoints.cloud, endpoints.gateways, endpoints.loopback) == \
        ("citadelle-lab", (TRANSFER_HOST,), True)
    # the account key is generated once, 512 random bits, and kept
    assert len(base64.b64decode(endpoints.key)) == 64
    assert LabTarget(root=tmp_path).transfer_endpoints(env, "other").key == endpoints.key
    assert LabTarget(root=tmp_path).transfer_endpoints(env, "other").cloud == "other"


def test_gateway_inventory_needs_a_live_gateway_clone(tmp_path: Path) -> None:
    env = Environment.load("dev", LabTarget(root=tmp_path))
    target = LabTarget(root=tmp_path)
    assert target.gateway_inventory(env, [], None) is None  # the copy runs on this machine
    with pytest.raises(CitadelleError, match="--gateway gw: no running lab clone of role gateway"):
        target.gateway_inventory(env, ["gw"], None)
    with pytest.raises(CitadelleError, match="--gateway gw, gw-b: no running lab clone"):
        target.gateway_inventory(env, ["gw", "gw-b"], None)


@pytest.mark.parametrize(("url", "seen"), [
    ("https://127.0.0.1:17443/sndslab", "https://10.0.2.2:17443/sndslab"),
    ("http://localhost/v3", "http://10.0.2.2:80/v3"),
    ("https://127.0.0.1/v1/AUTH_x", "https://10.0.2.2:443/v1/AUTH_x"),
])
def test_a_clone_sees_this_machine_at_the_user_mode_gateway(url: str, seen: str) -> None:
    assert LabTarget().gateway_url(url) == seen


def test_a_non_loopback_endpoint_is_not_a_lab_one() -> None:
    with pytest.raises(CitadelleError, match="is not a lab"):
        LabTarget().gateway_url("https://swift.example.eu/v1")


def test_the_lab_files_go_with_the_last_clone(tmp_path: Path) -> None:
    from citadelle.environment.targets import Access
    from citadelle.lab.outputs import write_outputs

    for name in ("inventory.yml", "ssh_config", "known_hosts"):
        (tmp_path / name).write_text("Host gone\n")
    written = write_outputs(tmp_path, tmp_path, (), user="admin", group="admins",
                            access=Access())
    assert written.clones == ()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_missed_key_derivation_benchmark_is_tried_again(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from citadelle.lab import volume

    # A qemu-img whose first two runs miss QEMU's CPU-time benchmark, as on a fast CPU.
    count = tmp_path / "runs"
    fake = tmp_path / "qemu-img"
    fake.write_text(f"""#!/bin/sh
echo x >> {count}
if [ "$(wc -l < {count})" -lt 3 ]; then
  echo "qemu-img: data.luks: {volume.BENCHMARK_MISS}" >&2; exit 1
fi
: > "$9"
""")
    fake.chmod(0o755)
    monkeypatch.setattr(volume, "tool", lambda name: str(fake))
    (tmp_path / "clone").mkdir()
    image = volume.create_image(tmp_path / "clone", 1)
    assert image.is_file() and len(count.read_text().splitlines()) == 3
    # Any other failure is reported at once.
    fake.write_text(f"#!/bin/sh\necho x >> {count}\necho 'qemu-img: no space' >&2\nexit 1\n")
    (tmp_path / "other").mkdir()
    with pytest.raises(CitadelleError, match="no space"):
        volume.create_image(tmp_path / "other", 1)
    assert len(count.read_text().splitlines()) == 4
