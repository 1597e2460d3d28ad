"""The GRUB superuser password hash (BP-028 R5) of a cloud environment: an operators' file
referenced by the inventory (never copied into it), checked before anything is touched."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from citadelle import paths
from citadelle.cli import main
from citadelle.deploy.inventory import write_inventory
from citadelle.environment import Environment
from citadelle.environment.outputs import StackOutputs
from citadelle.environment.targets import GRUB_HASH_ENV, grub_hash_pattern, make_target
from citadelle.errors import CitadelleError
from citadelle.lab.grub import grub_pbkdf2

pytestmark = [pytest.mark.unit, pytest.mark.bp028("R5")]

OUTPUTS = {
    "environment": "prod", "adminUser": "citadelle-admin", "adminGroup": "citadelle-admins",
    "bastion": {"publicIp": "192.0.2.10", "sshPort": 22, "hostKeyEd25519":
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFP+qKVsgKVUzae9fHCI8QkewZkWEhhoiYv8IdCFjiKd"},
    "servers": {"citadelle-prod-workers-1": {"role": "node", "privateIp": "10.30.16.5"}},
}


@pytest.fixture
def hash_file(tmp_path: Path) -> Path:
    path = tmp_path / "grub.hash"
    path.write_text(grub_pbkdf2(secrets.token_urlsafe(16), secrets.token_bytes(64)) + "\n")
    path.chmod(0o600)
    return path


def test_the_pattern_is_the_roles_own() -> None:
    role_vars = yaml.safe_load((paths.REPO_ROOT / "roles/bp028_kernel/vars/main.yml").read_text())
    assert grub_hash_pattern().pattern == role_vars["bp028_kernel_grub_hash_pattern"]


def test_deploy_of_a_cloud_environment_without_the_hash_is_refused_first(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv(GRUB_HASH_ENV, raising=False)
    monkeypatch.setattr(paths, "RUNS_DIR", tmp_path / "runs")
    assert main(["deploy", "prod"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--grub-password-hash-file FILE" in err and GRUB_HASH_ENV in err
    assert not (tmp_path / "runs").exists()  # no run folder, no gate, no `pulumi up`
    # Verifying alone needs no hash.
    assert main(["deploy", "prod", "--from-step", "verify", "--to-step", "verify",
                 "--run", str(tmp_path / "missing")]) == 2
    assert "GRUB" not in capsys.readouterr().err


@pytest.mark.parametrize(("mode", "text", "message"), [
    (0o644, None, "readable by others (mode 0644); chmod 600 it"),
    (0o600, "correct horse battery staple", "not the output of grub-mkpasswd-pbkdf2"),
    (0o600, "grub.pbkdf2.sha512.10000.ABCD.EF", "not the output of grub-mkpasswd-pbkdf2"),
])
def test_a_bad_hash_file_is_refused(hash_file: Path, mode: int, text: str | None,
                                    message: str) -> None:
    if text is not None:
        hash_file.write_text(text)
    hash_file.chmod(mode)
    target = make_target("cloud", grub_password_hash_file=hash_file)
    with pytest.raises(CitadelleError, match=re.escape(message)):
        target.require_hardening_secrets()
    with pytest.raises(CitadelleError, match=re.escape(message)):
        target.access(Environment.load("prod"))


def test_a_missing_hash_file_is_one_line(tmp_path: Path) -> None:
    target = make_target("cloud", grub_password_hash_file=tmp_path / "nope")
    with pytest.raises(CitadelleError, match=r"nope: No such file or directory$"):
        target.require_hardening_secrets()


def test_the_inventory_references_the_hash_and_never_holds_it(
        hash_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(GRUB_HASH_ENV, str(hash_file))
    target = make_target("cloud")  # from the variable
    target.require_hardening_secrets()
    env = Environment.load("prod", target)
    files = write_inventory(env, StackOutputs.parse(OUTPUTS), target.access(env),
                            tmp_path / "inv" / "inventory.yml", target="cloud", source="test")
    written = "".join(p.read_text() for p in files.inventory.parent.rglob("*") if p.is_file())
    assert hash_file.read_text().strip() not in written
    inventory = yaml.safe_load(files.inventory.read_text())
    assert inventory["all"]["vars"]["bp028_kernel_grub_password_hash"] == (
        f"{{{{ lookup('ansible.builtin.file', \"{hash_file.resolve()}\") }}}}")
    # Ansible resolves it on the controller to the file's hash.
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("ansible")), "citadelle-prod-workers-1", "-i",
         str(files.inventory), "-m", "ansible.builtin.debug", "-a",
         "var=bp028_kernel_grub_password_hash"], capture_output=True, text=True, check=False,
        env={**os.environ, "ANSIBLE_CONFIG": str(paths.REPO_ROOT / "ansible.cfg")}, timeout=120)
    assert proc.returncode == 0, proc.stderr[-400:]
    assert f"bp028_kernel_grub_password_hash: {hash_file.read_text().strip()}" in proc.stdout


def test_the_lab_takes_no_hash_file(hash_file: Path) -> None:
    with pytest.raises(CitadelleError, match="are for --target cloud"):
        make_target("lab", grub_password_hash_file=hash_file)
