"""The VM lab: cached image, golden snapshot, independent clones, admin path, outputs, teardown."""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from citadelle.environment import Environment
from citadelle.errors import CitadelleError
from citadelle.lab import ROLES, Lab, default_recipe, recipe_hash, volume
from citadelle.lab.image import DEFAULT_ADMIN_GROUP, DEFAULT_ADMIN_USER, find_image
from citadelle.lab.outputs import lab_outputs
from citadelle.lab.supervisor import alive
from citadelle.lab.vm import MachineSpec

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJmZ8rK0n7kq0Xw6b0pKkHq5m7Jx5l1X6aV9p0m5dY0W test"
MIRROR = "http://deb.debian.org/debian"


def _recipe(**changes: object):
    recipe = default_recipe(admin_authorized_key=KEY, admin_password="pw-one", mirror=MIRROR,
                            security_mirror="http://deb.debian.org/debian-security")
    return dataclasses.replace(recipe, **changes) if changes else recipe


# -- recipe hash and cache lookup (no VM) ------------------------------------------------------

def test_recipe_hash_is_stable():
    assert recipe_hash(_recipe()) == recipe_hash(_recipe())
    assert len(recipe_hash(_recipe())) == 64


@pytest.mark.parametrize("change", [
    {"packages": (*_recipe().packages, "lynis")},
    {"mirror": "http://ftp.fr.debian.org/debian"},
    {"kernel_cmdline": "console=ttyS0 slab_nomerge"},
    {"commands": (*_recipe().commands, "true")},
    {"files": {**_recipe().files, "/etc/issue": ("0644", "lab\n")}},
    {"admin_user": "operator"},
    {"image_size_mib": 8192},
], ids=["packages", "mirror", "cmdline", "commands", "files", "admin-user", "size"])
def test_recipe_hash_changes_with_the_recipe(change):
    assert recipe_hash(_recipe(**change)) != recipe_hash(_recipe())


def test_recipe_hash_covers_the_admin_password():
    other = default_recipe(admin_authorized_key=KEY, admin_password="pw-two", mirror=MIRROR,
                           security_mirror="http://deb.debian.org/debian-security")
    assert recipe_hash(other) != recipe_hash(_recipe())
    assert "pw-one" not in _recipe().as_json()


def test_cached_image_is_found_only_for_its_recipe(tmp_path: Path):
    recipe = _recipe()
    directory = tmp_path / recipe_hash(recipe)
    directory.mkdir()
    assert find_image(tmp_path, recipe) is None  # an interrupted build is not reused
    (directory / "complete").write_text(recipe_hash(recipe))
    found = find_image(tmp_path, recipe)
    assert found is not None and found.directory == directory
    assert find_image(tmp_path, _recipe(packages=(*recipe.packages, "lynis"))) is None


@pytest.mark.parametrize("change", [{"memory_mib": 2048}, {"cpus": 2}, {"kvm": True}],
                         ids=["memory", "cpus", "accel"])
def test_snapshot_key_changes_with_machine_args(change, tmp_path: Path):
    from citadelle.lab.image import BuiltImage

    image = BuiltImage(tmp_path, "0" * 64)
    base = MachineSpec()
    assert MachineSpec(**change).key(image, "QEMU 7.2") != base.key(image, "QEMU 7.2")
    assert base.key(image, "QEMU 8.2") != base.key(image, "QEMU 7.2")


@pytest.mark.parametrize(("text", "message"), [
    ("bastion", "'bastion' is not NAME=ROLE"),
    ("a=node,a=bastion", "clone 'a' given twice"),
    ("a=", "'a=' is not NAME=ROLE"),
])
def test_bad_clone_list_is_one_clear_error(text, message):
    from citadelle.errors import CitadelleError
    from citadelle.lab.commands import parse_clones

    with pytest.raises(CitadelleError, match=message):
        parse_clones(text)


@pytest.mark.parametrize(("clones", "message"), [
    ({"n1": "database"}, "role 'database' invalid: one of bastion, gateway, node"),
    ({"Node_1": "node"}, "clone name 'Node_1' invalid"),
    ({}, "no clones requested"),
])
def test_bad_clones_are_refused_before_any_vm_starts(clones, message, tmp_path: Path):
    from citadelle.errors import CitadelleError

    with pytest.raises(CitadelleError, match=message):
        Lab(root=tmp_path).up(clones)
    assert not (tmp_path / "images").exists()


# -- real VMs ------------------------------------------------------------------------------

pair_names = {"lab-a": "bastion", "lab-b": "node"}
# lab-b stands in for a server whose group declares a data volume (dataVolumeGb: 2).
pair_volumes = {"lab-b": 2}


@pytest.fixture(scope="module")
def pair(module_lab_clones):
    return module_lab_clones(pair_names, pair_volumes)


# Authentication tests must not ride on the multiplexed connection of the admin user.
FRESH_CONNECTION = ("-o", "ControlMaster=no", "-o", "ControlPath=none")


def _ssh(inv, name: str, command: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ssh", "-F", str(inv.ssh_config), *extra, name, command],
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.vm
def test_image_is_cached_under_its_recipe_hash(lab: Lab):
    image = lab.build_image()
    assert image.directory.name == recipe_hash(lab.recipe())
    assert (image.directory / "complete").is_file()
    assert lab.build_image().directory == image.directory
    # Booted from its own disk: no kernel or initramfs handed to qemu.
    assert not (image.directory / "vmlinuz").exists()
    assert "-kernel" not in lab.spec.shared_args()


@pytest.mark.vm
def test_clone_boots_through_grub_from_its_partitioned_disk(lab: Lab, pair):
    cmdline = lab.ssh("lab-b", "cat /proc/cmdline").stdout.split()
    assert cmdline[0].startswith("BOOT_IMAGE=/boot/vmlinuz-")  # set by GRUB
    assert any(word.startswith("root=UUID=") for word in cmdline)
    assert lab.ssh("lab-b", "findmnt -n -o SOURCE /").stdout.strip() == "/dev/vda1"
    assert "set timeout=1" in lab.ssh("lab-b", "cat /boot/grub/grub.cfg", sudo=True).stdout


@pytest.mark.vm
@pytest.mark.parametrize("name", sorted(pair_names))
def test_clone_answers_ssh_with_the_lab_key(pair, name):
    proc = _ssh(pair, name, "id -un; hostname")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [DEFAULT_ADMIN_USER, name]


@pytest.mark.vm
def test_clones_are_independent(pair):
    marker = f"/home/{DEFAULT_ADMIN_USER}/written-in-lab-a"
    assert _ssh(pair, "lab-a", f"echo a > {marker} && sync").returncode == 0
    assert _ssh(pair, "lab-a", f"cat {marker}").stdout.strip() == "a"
    absent = _ssh(pair, "lab-b", f"test -e {marker}; echo $?")
    assert absent.stdout.strip() == "1"


@pytest.mark.vm
@pytest.mark.bp028("R39")
def test_root_ssh_login_is_refused(pair):
    proc = _ssh(pair, "lab-a", "true", *FRESH_CONNECTION, "-l", "root")
    assert proc.returncode == 255
    assert "Permission denied (publickey)" in proc.stderr


@pytest.mark.vm
def test_password_ssh_login_is_refused(pair):
    proc = _ssh(pair, "lab-a", "true", *FRESH_CONNECTION, "-o", "PubkeyAuthentication=no",
                "-o", "BatchMode=yes")
    assert proc.returncode == 255
    # The server lists the methods it accepts: public key only, no password.
    assert "Permission denied (publickey)" in proc.stderr


@pytest.mark.vm
@pytest.mark.bp028("R39")
def test_sudo_needs_the_admin_password(lab: Lab, pair):
    assert _ssh(pair, "lab-a", "sudo -n true").returncode != 0
    proc = lab.ssh("lab-a", "id -u", sudo=True)
    assert (proc.returncode, proc.stdout.strip()) == (0, "0")


@pytest.mark.vm
@pytest.mark.parametrize("name", sorted(pair_names))
def test_clone_clock_follows_the_host(pair, name):
    before = time.time()
    proc = _ssh(pair, name, "date +%s.%N")
    after = time.time()
    guest = float(proc.stdout)
    assert before - 1 <= guest <= after + 1


@pytest.mark.vm
def test_clones_get_their_own_host_keys(pair):
    keys = {name: _ssh(pair, name, "cat /etc/ssh/ssh_host_ed25519_key.pub").stdout.split()[1]
            for name in pair_names}
    assert keys["lab-a"] != keys["lab-b"]
    assert {n: pair.clone(n).host_key_ed25519.split()[1] for n in pair_names} == keys


@pytest.mark.vm
def test_vmgenid_is_bound_so_clones_reseed_their_rng(pair):
    proc = _ssh(pair, "lab-b", "ls /sys/bus/acpi/drivers/vmgenid")
    assert proc.returncode == 0, proc.stderr
    assert "QEMUVGID:00" in proc.stdout.split()


@pytest.mark.vm
def test_data_volume_is_a_plain_disk_of_its_size_in_the_guest(pair):
    proc = _ssh(pair, "lab-b", f"lsblk -b -dn -o SIZE,TYPE /dev/disk/by-id/virtio-{volume.SERIAL}")
    assert proc.stdout.split() == [str(2 * 2**30), "disk"], proc.stderr
    assert _ssh(pair, "lab-a", f"test -e /dev/disk/by-id/virtio-{volume.SERIAL}").returncode == 1
    assert (pair.clone("lab-a").data_volume_gb, pair.clone("lab-b").data_volume_gb) == (0, 2)


@pytest.mark.vm
@pytest.mark.snc("10.1")
def test_data_volume_holds_only_ciphertext_on_this_machine(lab: Lab, pair):
    marker = secrets.token_hex(16)
    device = f"/dev/disk/by-id/virtio-{volume.SERIAL}"
    # Written through the page cache and flushed; read back past it (O_DIRECT wants 512 B).
    proc = lab.ssh("lab-b", f"printf %s {marker} | dd of={device} conv=fsync status=none"
                   f" && dd if={device} bs=512 count=1 iflag=direct status=none | head -c 32",
                   sudo=True)
    assert proc.stdout.strip() == marker, proc.stderr
    image = pair.clone("lab-b").directory / volume.IMAGE
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(image)],
                                     capture_output=True, text=True, check=True).stdout)
    assert (info["format"], info["virtual-size"]) == ("luks", 2 * 2**30)
    with image.open("rb") as handle:
        assert not any(marker.encode() in chunk for chunk in iter(lambda: handle.read(2**24), b""))
    assert (image.parent / volume.KEY).stat().st_mode & 0o777 == 0o600


@pytest.mark.vm
def test_a_live_clone_is_not_reused_with_another_volume(lab: Lab, pair):
    with pytest.raises(CitadelleError, match="already up as 'node' with 2 GiB of data volume"):
        lab.up({"lab-b": "node"})


@pytest.mark.vm
def test_the_lab_target_realises_the_environment_outputs(pair):
    outputs = lab_outputs(Environment.load("dev"), pair.clones, DEFAULT_ADMIN_USER,
                          DEFAULT_ADMIN_GROUP).to_json()
    assert set(outputs) == {"environment", "region", "servers", "adminUser", "adminGroup",
                            "containers"}
    assert outputs["environment"] == "dev"
    assert (outputs["adminUser"], outputs["adminGroup"]) == (DEFAULT_ADMIN_USER,
                                                             DEFAULT_ADMIN_GROUP)
    assert {n: (s["sshHost"], s["sshPort"], s["hostKeyEd25519"])
            for n, s in outputs["servers"].items()} == {
        c.name: ("127.0.0.1", c.port, c.host_key_ed25519) for c in pair.clones}
    assert {n: s["role"] for n, s in outputs["servers"].items()} == pair_names
    assert {n: s["sshPort"] for n, s in outputs["servers"].items()} == {
        n: pair.clone(n).port for n in pair_names}
    assert outputs["servers"]["lab-b"]["privateIp"] == "10.0.2.15"


@pytest.mark.vm
def test_inventory_has_the_environment_groups(pair):
    inventory = yaml.safe_load(pair.inventory.read_text())
    groups = inventory["all"]["children"]
    assert sorted(groups) == sorted(ROLES)
    assert {role: sorted(g["hosts"]) for role, g in groups.items()} == {
        "bastion": ["lab-a"], "gateway": [], "node": ["lab-b"]}
    # The environment's inventory (`citadelle inventory dev --target lab`): hosts by name,
    # reached through its ssh_config on their forwarded ports, host keys pinned.
    assert groups["node"]["hosts"]["lab-b"]["ansible_host"] == "lab-b"
    assert (inventory["all"]["vars"]["citadelle_environment"],
            inventory["all"]["vars"]["ansible_user"]) == ("dev", DEFAULT_ADMIN_USER)
    block = pair.ssh_config.read_text().split("Host lab-b\n", 1)[1].split("\n\n", 1)[0]
    assert f"  HostName 127.0.0.1\n  Port {pair.clone('lab-b').port}" in block
    assert "  StrictHostKeyChecking yes" in block
    assert os.stat(pair.inventory).st_mode & 0o077 == 0


@pytest.mark.vm
def test_ansible_becomes_root_through_the_inventory(pair):
    proc = subprocess.run(
        [str(Path(os.environ.get("VIRTUAL_ENV", ".venv")) / "bin" / "ansible"), "-i",
         str(pair.inventory), "node", "--become", "-m", "ansible.builtin.command", "-a", "id -u"],
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "ANSIBLE_HOST_KEY_CHECKING": "False"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "lab-b | CHANGED | rc=0 >>\n0" in proc.stdout


@pytest.mark.vm
def test_testinfra_reaches_a_clone_through_the_ssh_config(pair):
    import testinfra

    host = testinfra.get_host("ssh://lab-b", ssh_config=str(pair.ssh_config))
    assert host.check_output("id -un") == DEFAULT_ADMIN_USER
    assert host.file("/etc/hostname").content_string.strip() == "lab-b"
    assert host.service("ssh").is_running


@pytest.mark.vm
def test_down_kills_the_clone_by_pid(lab: Lab, lab_clones):
    inventory = lab_clones({"lab-gone": "gateway"})
    clone = inventory.clone("lab-gone")
    assert lab.ssh("lab-gone", "true").returncode == 0  # usable as soon as up() returns
    marker = str(clone.directory / "qmp.sock")
    assert alive(clone.pid, marker)
    assert lab.down(["lab-gone"]) == ["lab-gone"]
    assert not Path(f"/proc/{clone.pid}").exists()
    assert not clone.directory.exists()
    remaining = {c.name for c in lab.clones()}
    assert "lab-gone" not in remaining
    # The files name the clones still up, and are gone with the last one.
    if remaining:
        assert "Host lab-gone" not in inventory.ssh_config.read_text()
    else:
        assert not inventory.ssh_config.exists() and not inventory.inventory.exists()


FAILING_TEST = '''
import os
from pathlib import Path


def test_fails_while_holding_a_clone(lab_clones):
    inventory = lab_clones({"doomed": "node"})
    Path(os.environ["CITADELLE_TEST_PID_FILE"]).write_text(str(inventory.clone("doomed").pid))
    assert inventory.clone("doomed").port == 0  # fails on purpose
'''


@pytest.mark.vm
def test_fixtures_kill_their_clones_when_a_test_fails(tmp_path: Path):
    conftest = Path(__file__).parent.parent / "conftest.py"
    (tmp_path / "conftest.py").write_text(conftest.read_text())
    (tmp_path / "test_failing.py").write_text(FAILING_TEST)
    pid_file = tmp_path / "pid"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir",
         str(tmp_path), "--basetemp", str(tmp_path / "base"), str(tmp_path)],
        capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path,
        env={**os.environ, "CITADELLE_TEST_PID_FILE": str(pid_file)})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 failed" in proc.stdout
    pid = int(pid_file.read_text())
    assert not Path(f"/proc/{pid}").exists()
