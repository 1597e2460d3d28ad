"""ANSSI-BP-028 hardening converged on real Debian 12 clones, one per node role, in parallel.

The session's converge (tests/conftest.py; site.yml: bastion, gateway and node in one play) is
shared by every check; its idempotent rerun is the main command's harden step
(tests/pipeline/test_main_command.py). Expected values come from the roles' defaults and vars
and the lab's endpoints, never from literals here.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import testinfra
import yaml

from citadelle.deploy import harden
from citadelle.environment.settings import HardeningSettings
from citadelle.lab import Lab, LabInventory
from citadelle.lab.outputs import lab_role_vars
from citadelle.paths import PLAYBOOKS_DIR, ROLES_DIR

pytestmark = [pytest.mark.vm, pytest.mark.timeout(3600)]

# The clones of the session converge: HARDENED_CLONES in tests/conftest.py.
CLONES = {"bastion": "bastion", "gw": "gateway", "node1": "node"}
HOSTS = sorted(CLONES)
LEVELS = ["minimal", "intermediary", "enhanced", "high"]
LAB_VARS = lab_role_vars()


def role_vars(role: str) -> dict[str, Any]:
    """A role's defaults and fixed vars (what the converge used, lab endpoints on top)."""
    values: dict[str, Any] = {}
    for part in ("defaults/main.yml", "vars/main.yml", "vars/Debian.yml"):
        values.update(yaml.safe_load((ROLES_DIR / role / part).read_text()) or {})
    return values


def group_vars(group: str) -> dict[str, Any]:
    path = PLAYBOOKS_DIR / "group_vars" / f"{group}.yml"
    return dict(yaml.safe_load(path.read_text())) if path.is_file() else {}


def level_of(host: str) -> str:
    """The level the lab inventory gives the clone's group (citadelle:hardening defaults)."""
    return HardeningSettings().level_of(CLONES[host])


def at_least(host: str, level: str) -> bool:
    return LEVELS.index(level_of(host)) >= LEVELS.index(level)


KERNEL = role_vars("bp028_kernel")
FILESYSTEM = role_vars("bp028_filesystem")
SSH = role_vars("bp028_ssh")
ACCOUNTS = role_vars("bp028_accounts")
AUDIT = role_vars("bp028_audit")
TIME = role_vars("bp028_time")
INTEGRITY = role_vars("bp028_integrity")
PACKAGES = role_vars("bp028_packages")


@dataclass
class Hardened:
    lab: Lab
    inventory: LabInventory
    first: harden.HardenResult
    first_started: float
    _cache: dict[tuple[str, str], str]

    def root(self, host: str, command: str) -> str:
        """Output of a command run as root through sudo (with the admin's password)."""
        key = (host, command)
        if key not in self._cache:
            proc = self.lab.ssh(host, command, sudo=True, timeout=300)
            assert proc.returncode == 0, f"{host}: {command}: {proc.stderr}"
            self._cache[key] = proc.stdout
        return self._cache[key]

    def host(self, name: str) -> Any:
        return testinfra.get_host(f"ssh://{name}", ssh_config=str(self.inventory.ssh_config))


@pytest.fixture(scope="module")
def hardened(hardened_converge: Any) -> Hardened:
    """The session's converge (tests/conftest.py), shared with the pipeline tests."""
    return Hardened(lab=hardened_converge.lab, inventory=hardened_converge.inventory,
                    first=hardened_converge.first,
                    first_started=hardened_converge.first_started, _cache={})


# -- convergence ---------------------------------------------------------------------------


@pytest.mark.parametrize("host", HOSTS)
def test_first_converge_hardens_every_node(hardened: Hardened, host: str) -> None:
    stats = hardened.first.hosts[host]
    assert (stats.failed, stats.unreachable) == (0, 0)
    assert stats.changed > 0


# -- the admin path --------------------------------------------------------------------------


def ssh(hardened: Hardened, host: str, *options: str, user: str | None = None,
        ) -> subprocess.CompletedProcess[str]:
    clone = hardened.inventory.clone(host)
    target = f"{user}@{host}" if user else host
    return subprocess.run(
        ["ssh", "-F", str(hardened.inventory.ssh_config), "-o", "BatchMode=yes",
         "-o", "ControlMaster=no", "-o", "ControlPath=none", "-p", str(clone.port), *options,
         target, "id -un"], capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.bp028("R33")
@pytest.mark.parametrize("host", HOSTS)
def test_admin_key_still_logs_in_and_sudo_works(hardened: Hardened, host: str) -> None:
    proc = ssh(hardened, host)
    assert (proc.returncode, proc.stdout.strip()) == (0, hardened.lab.admin_user), proc.stderr
    assert hardened.root(host, "id -u").strip() == "0"


@pytest.mark.bp028("R33")
@pytest.mark.parametrize("host", HOSTS)
def test_root_login_is_refused(hardened: Hardened, host: str) -> None:
    proc = ssh(hardened, host, user="root")
    assert proc.returncode == 255
    assert "Permission denied" in proc.stderr


@pytest.mark.bp028("R67")
@pytest.mark.parametrize("host", HOSTS)
def test_password_login_is_not_offered(hardened: Hardened, host: str) -> None:
    proc = ssh(hardened, host, "-o", "PubkeyAuthentication=no",
               "-o", "PreferredAuthentications=password,keyboard-interactive")
    assert proc.returncode == 255
    # The server offers public keys only: no password prompt could ever be shown.
    assert "Permission denied (publickey)" in proc.stderr


@pytest.mark.bp028("R79")
def test_invalid_sshd_option_is_refused_and_sshd_keeps_serving(hardened: Hardened,
                                                               tmp_path: Path) -> None:
    host = "gw"
    config = SSH["bp028_ssh_config_file"]
    before = hardened.root(host, f"sha256sum {config}")
    bad = harden.run_playbook(
        "site", hardened.inventory.inventory, limit=host, tags="bp028_ssh_server",
        extravars={"bp028_ssh_extra_options": {"CitadelleNoSuchOption": "yes"}},
        run_dir=tmp_path / "bad-sshd")
    assert not bad.ok
    assert [f.task for f in bad.failures] == [
        "R33, R50, R67, R79 | Configure sshd per ANSSI OpenSSH guidance"]
    assert "CitadelleNoSuchOption" in bad.failures[0].message
    assert bad.hosts[host].changed == 0
    hardened._cache.pop((host, f"sha256sum {config}"))
    assert hardened.root(host, f"sha256sum {config}") == before
    proc = ssh(hardened, host)
    assert (proc.returncode, proc.stdout.strip()) == (0, hardened.lab.admin_user), proc.stderr


# -- one proof per concern -------------------------------------------------------------------


def sysctl_expected(host: str) -> list[tuple[str, str, str]]:
    rows = []
    for settings in KERNEL["bp028_kernel_sysctl_recommendations"].values():
        for key, value in settings.items():
            rows.append((host, key, str(value)))
    return rows


SYSCTL_CASES = [row for host in HOSTS for row in sysctl_expected(host)]


@pytest.mark.bp028("R9", "R11", "R12", "R13", "R14")
@pytest.mark.parametrize(("host", "key", "value"), SYSCTL_CASES,
                         ids=[f"{h}-{k}" for h, k, _ in SYSCTL_CASES])
def test_sysctl_values_are_live(hardened: Hardened, host: str, key: str, value: str) -> None:
    keys = sorted({k for h, k, _ in SYSCTL_CASES if h == host})
    live = dict(line.split(" = ", 1) for line in
                hardened.root(host, "sysctl " + " ".join(keys)).splitlines())
    assert live[key].split() == value.split()


# -- boot-time settings: the converge reboots, GRUB boots the kernel with the roles' line -------


@pytest.mark.bp028("R5")
@pytest.mark.parametrize("host", HOSTS)
def test_node_rebooted_unattended_through_the_password_protected_grub(hardened: Hardened,
                                                                       host: str) -> None:
    uptime = float(hardened.root(host, "cat /proc/uptime").split()[0])
    # A restored clone's uptime counts from the golden VM's boot: only a reboot during the
    # first converge makes it shorter than the time since that converge started.
    assert uptime < time.time() - hardened.first_started
    grub_cfg = hardened.root(host, f"cat {KERNEL['bp028_kernel_grub_cfg']}")
    assert f'set superusers="{KERNEL["bp028_kernel_grub_superuser"]}"' in grub_cfg
    # Booted by GRUB from the clone's own disk, not by qemu -kernel.
    assert hardened.root(host, "cat /proc/cmdline").startswith("BOOT_IMAGE=")


@pytest.mark.bp028("R7", "R8", "R33", "R45")
@pytest.mark.parametrize("host", HOSTS)
def test_running_kernel_has_the_boot_parameters(hardened: Hardened, host: str) -> None:
    running = hardened.root(host, "cat /proc/cmdline").split()
    boot = KERNEL["bp028_kernel_boot_recommendations"]
    assert set(boot["R8"] + boot["R33"]) <= set(running), running
    if at_least(host, "enhanced"):
        assert set(boot["R7"] + boot["R45"]) <= set(running), running
    else:
        assert not set(boot["R7"]) & set(running), running


@pytest.mark.bp028("R10", "R45")
@pytest.mark.parametrize("host", HOSTS)
def test_apparmor_and_module_lock_from_enhanced(hardened: Hardened, host: str) -> None:
    locked = hardened.root(host, "cat /proc/sys/kernel/modules_disabled").strip()
    assert (locked == "1") == at_least(host, "enhanced")
    if at_least(host, "enhanced"):
        status = hardened.root(host, "aa-status --json")
        assert '"enforce"' in status and '"complain"' not in status, status


@pytest.mark.bp028("R5")
def test_broken_kernel_parameter_is_refused_before_any_change(hardened: Hardened,
                                                              tmp_path: Path) -> None:
    host = "node1"
    dropin = KERNEL["bp028_kernel_grub_dropin"]
    before = hardened.root(host, f"sha256sum {dropin} {KERNEL['bp028_kernel_grub_cfg']}")
    bad = harden.run_playbook(
        "site", hardened.inventory.inventory, limit=host, tags="bp028_kernel_boot",
        extravars={"bp028_kernel_boot_extra_params": ['quiet" GRUB_TIMEOUT=0']},
        run_dir=tmp_path / "bad-grub")
    assert not bad.ok
    assert [f.task for f in bad.failures] == [
        "Citadelle | Check the kernel parameters are plain words "
        "(the GRUB drop-in is sourced by a shell)"]
    assert bad.hosts[host].changed == 0
    hardened._cache.pop((host, f"sha256sum {dropin} {KERNEL['bp028_kernel_grub_cfg']}"))
    assert hardened.root(host, f"sha256sum {dropin} {KERNEL['bp028_kernel_grub_cfg']}") == before


@pytest.mark.parametrize("module", KERNEL["bp028_kernel_modules_blacklist"][:4])
def test_unused_modules_cannot_load(hardened: Hardened, module: str) -> None:
    out = hardened.root("node1", f"modprobe -n -v {module} 2>&1 || true")
    assert f"install {KERNEL['bp028_kernel_false_binary']}" in out


@pytest.mark.bp028("R28")
@pytest.mark.parametrize("path", [m["path"] for m in FILESYSTEM["bp028_filesystem_mounts"]])
def test_mount_options(hardened: Hardened, path: str) -> None:
    options = hardened.host("node1").mount_point(path).options
    assert {"nodev", "nosuid", "noexec"} <= set(options)


@pytest.mark.bp028("R50")
@pytest.mark.parametrize("entry", FILESYSTEM["bp028_filesystem_permissions"],
                         ids=[e["path"] for e in FILESYSTEM["bp028_filesystem_permissions"]])
def test_sensitive_file_permissions(hardened: Hardened, entry: dict[str, str]) -> None:
    out = hardened.root("node1", f"stat -c '%U %G %a' {entry['path']}").split()
    assert out == [entry["owner"], entry["group"], entry["mode"].lstrip("0")]


@pytest.mark.bp028("R56")
@pytest.mark.parametrize("host", HOSTS)
def test_setuid_inventory_is_recorded(hardened: Hardened, host: str) -> None:
    report = hardened.root(host, f"cat {FILESYSTEM['bp028_filesystem_report_dir']}"
                           "/bp028-filesystem-report.txt")
    assert "setid /usr/bin/sudo" in report
    assert "world-writable" not in report and "NOT-REVIEWED" not in report


@pytest.mark.bp028("R80")
@pytest.mark.parametrize("host", HOSTS)
def test_firewall_drops_by_default_and_admits_the_admin_tier(hardened: Hardened,
                                                             host: str) -> None:
    ruleset = hardened.root(host, "nft list table inet citadelle")
    assert "type filter hook input priority filter; policy drop;" in ruleset
    admins = ", ".join(c.removesuffix("/32") for c in LAB_VARS["bp028_firewall_admin_cidrs"])
    assert f"elements = {{ {admins} }}" in ruleset


@pytest.mark.bp028("R73")
@pytest.mark.parametrize("host", HOSTS)
def test_audit_rules_are_loaded(hardened: Hardened, host: str) -> None:
    rules = hardened.root(host, "auditctl -l")
    assert "-w /etc/passwd -p wa -k identity" in rules
    assert "-w /etc/sudoers -p wa -k sudoers" in rules
    for command in AUDIT["bp028_audit_privileged_commands"][:3]:
        assert f"-F path={command} -F perm=x" in rules
    status = hardened.root(host, "auditctl -s")
    assert ("enabled 2" in status) == at_least(host, "enhanced")


@pytest.mark.bp028("R71")
@pytest.mark.parametrize("host", HOSTS)
def test_journal_is_persistent_and_forwarded(hardened: Hardened, host: str) -> None:
    node = hardened.host(host)
    assert node.file("/var/log/journal").is_directory
    assert f"URL={LAB_VARS['bp028_audit_forward_url']}" in node.file(
        "/etc/systemd/journal-upload.conf").content_string
    assert node.service(AUDIT["bp028_audit_upload_service"]).is_enabled


@pytest.mark.parametrize("host", HOSTS)
def test_chrony_uses_the_environment_servers_only(hardened: Hardened, host: str) -> None:
    node = hardened.host(host)
    servers = [line.split()[1] for line in
               node.file(TIME["bp028_time_config_file"]).content_string.splitlines()
               if line.startswith(("server ", "pool "))]
    assert servers == LAB_VARS["bp028_time_ntp_servers"]
    assert node.service(TIME["bp028_time_service"]).is_running


SSHD_CASES = [
    ("permitrootlogin", "no"),
    ("passwordauthentication", "no"),
    ("kbdinteractiveauthentication", "no"),
    ("x11forwarding", "no"),
    ("loglevel", "VERBOSE"),
    ("allowgroups", SSH["bp028_ssh_admin_group"]),
    ("maxauthtries", str(SSH["bp028_ssh_max_auth_tries"])),
    ("clientaliveinterval", str(SSH["bp028_ssh_client_alive_interval"])),
    ("clientalivecountmax", str(SSH["bp028_ssh_client_alive_count_max"])),
    ("ciphers", ",".join(SSH["bp028_ssh_ciphers"])),
    ("macs", ",".join(SSH["bp028_ssh_macs"])),
    ("kexalgorithms", ",".join(SSH["bp028_ssh_kex_algorithms"])),
    ("banner", SSH["bp028_ssh_banner_file"]),
]


@pytest.mark.bp028("R33", "R67", "R79")
@pytest.mark.parametrize("host", HOSTS)
@pytest.mark.parametrize(("key", "value"), SSHD_CASES, ids=[k for k, _ in SSHD_CASES])
def test_sshd_effective_settings(hardened: Hardened, host: str, key: str, value: str) -> None:
    effective = dict(line.split(" ", 1) for line in
                     hardened.root(host, "sshd -T").splitlines() if " " in line)
    assert effective[key] == value


@pytest.mark.parametrize("host", HOSTS)
def test_tcp_forwarding_only_on_the_bastion(hardened: Hardened, host: str) -> None:
    expected = {**SSH, **group_vars(CLONES[host])}["bp028_ssh_allow_tcp_forwarding"]
    effective = hardened.root(host, "sshd -T")
    assert f"allowtcpforwarding {expected}\n" in effective


@pytest.mark.bp028("R31", "R68")
@pytest.mark.parametrize(("file", "module"), [("common-auth", "pam_faillock.so"),
                                              ("common-account", "pam_faillock.so"),
                                              ("common-password", "pam_pwquality.so"),
                                              ("common-password", "pam_pwhistory.so")])
def test_pam_stack_locks_out_and_checks_quality(hardened: Hardened, file: str,
                                                module: str) -> None:
    assert module in hardened.host("node1").file(f"/etc/pam.d/{file}").content_string


@pytest.mark.bp028("R31")
def test_lockout_policy(hardened: Hardened) -> None:
    text = hardened.host("node1").file("/etc/security/faillock.conf").content_string
    assert f"deny = {ACCOUNTS['bp028_accounts_faillock_deny']}" in text
    assert "even_deny_root" in text


@pytest.mark.bp028("R39")
@pytest.mark.parametrize("host", HOSTS)
def test_sudo_defaults(hardened: Hardened, host: str) -> None:
    defaults = hardened.root(host, f"sudo -l -U {hardened.lab.admin_user}")
    assert "use_pty" in defaults
    assert f"logfile={ACCOUNTS['bp028_accounts_sudo_logfile']}" in defaults
    assert "NOPASSWD" not in hardened.root(host, "cat /etc/sudoers /etc/sudoers.d/*")


@pytest.mark.bp028("R36")
@pytest.mark.parametrize("host", HOSTS)
def test_login_umask_from_enhanced(hardened: Hardened, host: str) -> None:
    login_umask = hardened.lab.ssh(host, "bash -lc umask").stdout.strip()
    assert (login_umask == "0" + ACCOUNTS["bp028_accounts_umask"]) == at_least(host, "enhanced")


@pytest.mark.bp028("R76", "R79")
@pytest.mark.parametrize("host", HOSTS)
def test_aide_database_built_and_check_scheduled(hardened: Hardened, host: str) -> None:
    assert hardened.root(host, f"test -s {INTEGRITY['bp028_integrity_database']} && echo yes"
                         ).strip() == "yes"
    assert hardened.host(host).service("citadelle-aide-check.timer").is_enabled


@pytest.mark.bp028("R61")
@pytest.mark.parametrize("host", HOSTS)
def test_unattended_upgrades_take_security_updates_only(hardened: Hardened, host: str) -> None:
    dump = hardened.host(host).check_output("apt-config dump Unattended-Upgrade::Origins-Pattern")
    patterns = [line for line in dump.splitlines() if "origin=" in line]
    assert len(patterns) == 1 and "-security" in patterns[0]
    sources = hardened.host(host).file(PACKAGES["bp028_packages_sources_file"]).content_string
    assert f"URIs: {LAB_VARS['bp028_packages_mirror_url']}" in sources


@pytest.mark.parametrize("host", HOSTS)
def test_core_dumps_are_off(hardened: Hardened, host: str) -> None:
    assert hardened.root(host, "sysctl -n kernel.core_pattern").strip() == (
        "|" + KERNEL["bp028_kernel_false_binary"])


# Last in the module: it changes node1's sealed set (the checks above read the converge's).
@pytest.mark.bp028("R76", "R79")
def test_a_converge_keeps_a_change_flagged_until_a_reviewed_rebaseline(hardened: Hardened,
                                                                     tmp_path: Path) -> None:
    host, probe = "node1", "/usr/local/sbin/citadelle-rebaseline-probe"
    database, config = INTEGRITY["bp028_integrity_database"], INTEGRITY["bp028_integrity_config"]
    check = f"{INTEGRITY['bp028_integrity_aide']} --config {config} --check --limit '^/usr/local/'"
    hardened.root(host, f"install -m 0755 /bin/true {probe}")

    def converge(*options: str) -> tuple[int, str, subprocess.CompletedProcess[str]]:
        parser = argparse.ArgumentParser()
        harden.add_harden_options(parser)
        args = parser.parse_args(
            ["--inventory", str(hardened.inventory.inventory), "--limit", host,
             "--tags", "bp028_integrity_aide", "--run-dir", str(tmp_path / str(len(options))),
             *options])
        rc = harden.harden(args)
        sealed = hardened.lab.ssh(host, f"sha256sum {database}", sudo=True).stdout
        return rc, sealed, hardened.lab.ssh(host, check, sudo=True, timeout=600)

    before = hardened.lab.ssh(host, f"sha256sum {database}", sudo=True).stdout
    rc, sealed, found = converge()
    # AIDE's exit code is a bit field: 1 "entries added" (the probe), 4 "entries changed" (the
    # directory that received it); nothing else under /usr/local moved.
    assert (rc, sealed, found.returncode) == (0, before, 5), found.stdout[-2000:]
    assert re.search(rf"^f\++: {re.escape(probe)}$", found.stdout, re.MULTILINE), found.stdout
    assert re.findall(r"^[dfl] [ .=a-zA-Z+-]+: (\S+)$", found.stdout, re.MULTILINE) == [
        "/usr/local/sbin"], found.stdout
    rc, sealed, found = converge("--aide-rebaseline")
    assert rc == 0 and sealed != before
    assert found.returncode == 0, found.stdout[-2000:]
    assert probe not in found.stdout
