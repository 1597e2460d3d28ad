"""BP-028 hardening level: each recommendation the roles implement, at this host's level.

One case per setting, marked with its recommendation id: kernel settings (R8-R14), kernel
command line the running kernel booted with (R7, R8, R33, R45), GRUB password and grub.cfg
mode (R5, R29), AppArmor enforcing (R45), module blacklist and module loading locked after
boot (R10), mount options (R28), sensitive file
modes (R50), setuid inventory (R56/R57), accounts (R31, R32, R36), needless packages and units
(R58, R62), updates (R61), integrity (R76). Expected values: the roles' variables for this host
(level from ``bp028_level`` per group).
"""

from __future__ import annotations

import json
import math
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from checks.target import Case, Target, key_values

PROBES = Path(__file__).with_name("probes")
# pam_authenticate's answers (security/_pam_types.h).
PAM_SUCCESS, PAM_AUTH_ERR = 0, 7


def sysctl_cases(target: Target) -> Iterator[Case]:
    applicable = target.vars.level_ids("bp028_kernel")
    overrides = target.vars["bp028_kernel_sysctl_overrides"]
    for rid, settings in target.vars["bp028_kernel_sysctl_recommendations"].items():
        if rid not in applicable:
            continue
        for key, value in settings.items():
            yield Case(key, (key, overrides.get(key, value)), [pytest.mark.bp028(rid)])


def boot_cases(target: Target) -> Iterator[Case]:
    applicable = target.vars.level_ids("bp028_kernel")
    for rid, params in target.vars["bp028_kernel_boot_recommendations"].items():
        if rid in applicable:
            for param in params:
                yield Case(param, param, [pytest.mark.bp028(rid)])


def module_cases(target: Target) -> Iterator[Case]:
    for module in target.vars["bp028_kernel_modules_blacklist"]:
        yield Case(module, module)


def mount_cases(target: Target) -> Iterator[Case]:
    for mount in target.vars["bp028_filesystem_mounts"]:
        yield Case(mount["path"], mount)


def permission_cases(target: Target) -> Iterator[Case]:
    for entry in target.vars["bp028_filesystem_permissions"]:
        yield Case(entry["path"], entry)


def package_cases(target: Target) -> Iterator[Case]:
    for package in target.vars["bp028_packages_absent"]:
        yield Case(package, package)


def unit_cases(target: Target) -> Iterator[Case]:
    for unit in target.vars["bp028_packages_masked_units"]:
        yield Case(unit, unit)


CASES = {"sysctl": sysctl_cases, "param": boot_cases, "module": module_cases,
         "mount": mount_cases, "entry": permission_cases, "package": package_cases,
         "unit": unit_cases}


def installed_packages(target: Target) -> set[str]:
    listing = target.output("dpkg-query -W -f '${Package} ${db:Status-Abbrev}\\n'")
    return {fields[0] for fields in map(str.split, listing.splitlines())
            if len(fields) > 1 and fields[1].startswith("i")}


def _sysctl_all(target: Target) -> dict[str, str]:
    return {k: " ".join(v.split()) for k, v in key_values(target.output("sysctl -a"), "=").items()}


@pytest.mark.snc("12.10")
def test_sysctl(target: Target, sysctl: tuple[str, Any]) -> None:
    key, value = sysctl
    assert _sysctl_all(target).get(key) == " ".join(str(value).split())


@pytest.mark.snc("12.10")
def test_kernel_command_line(target: Target, param: str) -> None:
    assert param in target.host.file("/proc/cmdline").content_string.split()


@pytest.mark.snc("12.10")
@pytest.mark.bp028("R37", "R45")
@pytest.mark.applies(recommendation="R45", role="bp028_kernel",
                     when="bp028_kernel_apparmor_enabled")
def test_apparmor_enforces_every_loaded_profile(target: Target) -> None:
    assert target.host.file("/sys/module/apparmor/parameters/enabled").content_string.strip() \
        == "Y", "AppArmor is not enabled in the running kernel"
    assert target.host.service(target.vars["bp028_kernel_apparmor_service"]).is_enabled
    profiles: dict[str, str] = json.loads(target.output("aa-status --json"))["profiles"]
    assert profiles, "no AppArmor profile loaded"
    not_enforced = sorted(name for name, mode in profiles.items() if mode != "enforce")
    assert not not_enforced, f"AppArmor profiles not in enforce mode: {not_enforced}"


@pytest.mark.snc("12.10")
@pytest.mark.bp028("R10")
@pytest.mark.applies(recommendation="R10", role="bp028_kernel",
                     when="bp028_kernel_modules_disabled_enabled")
def test_module_loading_is_locked_after_boot(target: Target) -> None:
    assert _sysctl_all(target).get("kernel.modules_disabled") == "1"
    assert target.host.service(target.vars["bp028_kernel_modules_disabled_unit"]).is_enabled


@pytest.mark.snc("9.6", "12.10")
@pytest.mark.bp028("R5")
@pytest.mark.applies(recommendation="R5", role="bp028_kernel",
                     when="bp028_kernel_grub_password_enabled")
def test_grub_menu_needs_the_superuser_password(target: Target) -> None:
    config = target.output(f"cat {target.vars['bp028_kernel_grub_cfg']}")
    user = target.vars["bp028_kernel_grub_superuser"]
    assert f'set superusers="{user}"' in config
    assert re.search(rf"^password_pbkdf2 {re.escape(user)} grub\.pbkdf2\.sha512\.\d+\.",
                     config, re.MULTILINE), "no PBKDF2 password for the GRUB superuser"
    # Booting stays unattended: every entry boots without the password, editing needs it.
    entries = [line for line in config.splitlines() if line.lstrip().startswith("menuentry ")]
    assert entries, "no boot entry in the GRUB configuration"
    assert all("--unrestricted" in line for line in entries), entries


@pytest.mark.snc("9.3", "12.10")
@pytest.mark.bp028("R5", "R29")
def test_grub_configuration_is_root_only(target: Target) -> None:
    info = target.root(f"stat -c '%U %G %a' {target.vars['bp028_kernel_grub_cfg']}")
    assert info.stdout.split() == ["root", "root", "600"], info


@pytest.mark.snc("12.10")
@pytest.mark.bp028("R10")
def test_module_cannot_load(target: Target, module: str) -> None:
    dry_run = target.root(f"modprobe -n -v {module}")
    assert f"install {target.vars['bp028_kernel_false_binary']}" in dry_run.stdout, dry_run


@pytest.mark.snc("12.10")
@pytest.mark.bp028("R28")
def test_mount_options(target: Target, mount: dict[str, Any]) -> None:
    wanted = {o for o in str(mount["opts"]).split(",") if o in ("nosuid", "nodev", "noexec")}
    options = target.host.check_output(f"findmnt -n -o OPTIONS --target {mount['path']}")
    assert wanted <= set(options.split(",")), f"{mount['path']} mounted with {options}"


@pytest.mark.snc("9.3")
@pytest.mark.bp028("R50")
def test_sensitive_file_mode(target: Target, entry: dict[str, Any]) -> None:
    info = target.host.file(entry["path"])
    assert (info.user, info.group, f"{info.mode:04o}") == (entry["owner"], entry["group"],
                                                           entry["mode"])


@pytest.mark.snc("12.10")
@pytest.mark.bp028("R56", "R57")
def test_setuid_files_are_reviewed(target: Target) -> None:
    found = set(target.output("find / -xdev -type f -perm /6000 2>/dev/null || true").split())
    unexpected = sorted(found - set(target.vars["bp028_filesystem_setid_allowed"]))
    assert not unexpected, f"setuid/setgid executables outside the reviewed list: {unexpected}"


@pytest.mark.snc("9.5", "10.3")
@pytest.mark.bp028("R31", "R68")
def test_password_quality_as_the_library_judges(target: Target) -> None:
    """The host's libpwquality (what pam_pwquality calls), its effective configuration read as
    it reads it, judges passwords made by probes/pwquality.py: one character short of the
    minimum, one character class missing, and one that meets both (it must pass every rule,
    the dictionary check included: a missing cracklib dictionary refuses every password)."""
    minlen = int(target.vars["bp028_accounts_pwquality_minlen"])
    minclass = int(target.vars["bp028_accounts_pwquality_minclass"])
    script = (PROBES / "pwquality.py").read_text(encoding="utf-8")
    probe = target.root(f"python3 -c {shlex.quote(script)} {minlen} {minclass}")
    assert probe.rc == 0, probe.stderr
    found = json.loads(probe.stdout)
    code, said = found["short"]
    assert code < 0 and f"shorter than {minlen} characters" in said, found
    code, said = found["few_classes"]
    assert code < 0 and "contains less than" in said, found
    assert found["strong"][0] >= 0, found


@pytest.mark.snc("9.5")
@pytest.mark.bp028("R31")
def test_failed_logins_lock_the_account_then_release(target: Target) -> None:
    """The host's real PAM stack (sshd's), driven by probes/pam_lockout.py with wrong passwords
    for ``nobody``: pam_faillock counts each failure, refuses the attempt after ``deny`` with
    the time left to unlock, and an administrator's reset releases the account."""
    deny = int(target.vars["bp028_accounts_faillock_deny"])
    script = (PROBES / "pam_lockout.py").read_text(encoding="utf-8")
    probe = target.root(f"python3 -c {shlex.quote(script)} {deny}")
    assert probe.rc == 0, probe.stderr
    found = json.loads(probe.stdout)
    refused, locked = found["attempts"][:deny], found["attempts"][deny]
    # Below the threshold: ordinary refusals (Debian 12's stack answers PAM_PERM_DENIED), no
    # lock message; the next attempt is refused by pam_faillock's preauth.
    assert all(code != PAM_SUCCESS and not said for code, said in refused), refused
    assert locked[0] == PAM_AUTH_ERR, locked
    counted = [line for line in found["tally_locked"].splitlines() if line.endswith(" V")]
    assert len(counted) >= deny, found["tally_locked"]
    said = " ".join(locked[1])
    assert f"locked due to {deny} failed logins" in said, said
    left = re.search(r"\((\d+) minutes left to unlock\)", said)
    unlock_minutes = math.ceil(int(target.vars["bp028_accounts_faillock_unlock_time"]) / 60)
    assert left is not None and 0 < int(left[1]) <= unlock_minutes, said
    # Released: after the reset a wrong password is an ordinary refusal again.
    code, after = found["after_reset"]
    assert (code, after) == (refused[0][0], [])
    assert not [line for line in found["tally_after"].splitlines() if line.endswith(" V")]


def _login_defs(target: Target) -> dict[str, str]:
    """login.defs ``KEY<spaces or tabs>value`` lines; comments skipped, last wins."""
    text = target.host.file("/etc/login.defs").content_string
    return {fields[0]: fields[1] for fields in (line.split(None, 1) for line in text.splitlines())
            if len(fields) == 2 and not fields[0].startswith("#")}


@pytest.mark.snc("9.5")
@pytest.mark.bp028("R31", "R68")
def test_password_ageing_and_hashing_defaults(target: Target) -> None:
    defs = _login_defs(target)
    assert defs.get("ENCRYPT_METHOD") == "YESCRYPT"
    assert defs.get("YESCRYPT_COST_FACTOR") == str(
        target.vars["bp028_accounts_yescrypt_cost_factor"])
    assert (defs.get("PASS_MAX_DAYS"), defs.get("PASS_MIN_DAYS"), defs.get("PASS_WARN_AGE")) == (
        str(target.vars["bp028_accounts_pass_max_days"]),
        str(target.vars["bp028_accounts_pass_min_days"]),
        str(target.vars["bp028_accounts_pass_warn_age"]))


@pytest.mark.snc("9.5")
@pytest.mark.bp028("R31")
def test_root_password_is_aged(target: Target) -> None:
    # shadow: name:hash:lastchg:min:max:warn:...
    fields = target.output("getent shadow root").strip().split(":")
    assert (fields[3], fields[4], fields[5]) == (
        str(target.vars["bp028_accounts_pass_min_days"]),
        str(target.vars["bp028_accounts_pass_max_days"]),
        str(target.vars["bp028_accounts_pass_warn_age"]))


@pytest.mark.snc("9.3")
@pytest.mark.bp028("R36")
@pytest.mark.applies(recommendation="R36", role="bp028_accounts")
def test_default_umask(target: Target) -> None:
    umask = str(target.vars["bp028_accounts_umask"])
    assert _login_defs(target).get("UMASK") == umask
    for shell in ("bash -lc umask", "bash -ic umask 2>/dev/null"):
        assert target.host.check_output(shell).strip()[-3:] == umask[-3:], shell


@pytest.mark.snc("9.6")
@pytest.mark.bp028("R32")
def test_idle_shells_time_out(target: Target) -> None:
    tmout = target.host.check_output("bash -lc 'echo ${TMOUT:-unset}'")
    assert tmout.strip() == str(target.vars["bp028_accounts_tmout"])


@pytest.mark.snc("12.10")
@pytest.mark.bp028("R58", "R62")
def test_needless_package_absent(target: Target, package: str) -> None:
    assert package not in installed_packages(target)


@pytest.mark.snc("12.10")
@pytest.mark.bp028("R62")
def test_needless_unit_masked(target: Target, unit: str) -> None:
    state = target.host.run(f"systemctl is-enabled {unit}").stdout.strip()
    assert state == "masked"


@pytest.mark.snc("12.11")
@pytest.mark.bp028("R60")
@pytest.mark.applies(recommendation="R60", role="bp028_packages",
                     when="bp028_packages_sources_enabled")
@pytest.mark.parametrize("option", ["Acquire::AllowInsecureRepositories",
                                    "Acquire::AllowWeakRepositories",
                                    "Acquire::AllowDowngradeToInsecureRepositories",
                                    "APT::Get::AllowUnauthenticated"])
def test_apt_refuses_unsigned_sources_and_packages(target: Target, option: str) -> None:
    # APT's effective configuration (every apt.conf.d fragment merged), not one file.
    assert f'{option} "false";' in target.fact("apt-config dump").stdout.splitlines()


@pytest.mark.snc("12.11")
@pytest.mark.bp028("R61")
def test_security_updates_are_scheduled(target: Target) -> None:
    for package in target.vars["bp028_packages_unattended_packages"]:
        assert package in installed_packages(target)
    assert target.host.service("apt-daily-upgrade.timer").is_enabled


@pytest.mark.snc("12.4", "12.10")
@pytest.mark.bp028("R76")
def test_integrity_database_and_check_timer(target: Target) -> None:
    assert target.root(f"test -s {target.vars['bp028_integrity_database']}").rc == 0
    assert target.host.service("citadelle-aide-check.timer").is_enabled
    sealed = {line.split()[0] for line in
              target.output(f"cat {target.vars['bp028_integrity_config']}").splitlines()
              if line.startswith("/") and line.split()[-1] == "Citadelle"}
    assert set(target.vars["bp028_integrity_aide_paths"]) <= sealed


@pytest.mark.snc("12.4", "12.10")
@pytest.mark.bp028("R76")
def test_nothing_sealed_changed_since_the_baseline(target: Target) -> None:
    # A full `aide --check`: every sealed path matches the database (a converge builds it last,
    # after the handlers; a later change stays flagged until a reviewed re-baseline).
    config = target.vars["bp028_integrity_config"]
    checked = target.root(f"aide --config {config} --check")
    assert checked.rc == 0, checked.stdout[:4000] + checked.stderr


@pytest.mark.snc("12.4", "12.10")
@pytest.mark.bp028("R76")
def test_integrity_check_detects_a_modified_binary(target: Target) -> None:
    # The host's AIDE with the role's rule group: clean (0), then a changed file (4: changed).
    script = (PROBES / "aide_detects.sh").read_text(encoding="utf-8")
    probe = target.root(f"sh -c {shlex.quote(script)} probe "
                        f"{shlex.quote(target.vars['bp028_integrity_config'])}")
    assert probe.rc == 0, probe.stderr
    assert probe.stdout.split() == ["clean=0", "modified=4", "named=1"], probe.stdout
