"""Administrator access: named administrators with keys, in the admin group, sudo with password.

SecNumCloud 3.2 9.2 (named accounts), 9.5 (authentication), 9.6 (administration interfaces),
12.12 (administration); BP-028 R33 (dedicated admin accounts), R39/R40 (sudo), R67 (remote
authentication). Expected values: the bp028_ssh and bp028_accounts variables for this host.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator

import pytest

from checks.target import Case, Target, key_values


def sshd_effective(target: Target) -> dict[str, str]:
    return key_values(target.output("sshd -T -C user=nobody,host=localhost,addr=127.0.0.1"))


def sshd_cases(target: Target) -> Iterator[Case]:
    v = target.vars
    groups = " ".join([v["bp028_ssh_admin_group"], *v["bp028_ssh_allow_groups_extra"]])
    expected = {
        "permitrootlogin": "no",
        "passwordauthentication": "no",
        "kbdinteractiveauthentication": "no",
        "permitemptypasswords": "no",
        "authenticationmethods": "publickey",
        "allowgroups": groups,
        "port": str(v["bp028_ssh_port"]),
        "maxauthtries": str(v["bp028_ssh_max_auth_tries"]),
        "maxsessions": str(v["bp028_ssh_max_sessions"]),
        "logingracetime": str(v["bp028_ssh_login_grace_time"]),
        "clientaliveinterval": str(v["bp028_ssh_client_alive_interval"]),
        "clientalivecountmax": str(v["bp028_ssh_client_alive_count_max"]),
        "allowtcpforwarding": str(v["bp028_ssh_allow_tcp_forwarding"]),
        "allowagentforwarding": "no",
        "x11forwarding": "no",
        "permituserenvironment": "no",
        "banner": str(v["bp028_ssh_banner_file"]),
    }
    for key, value in expected.items():
        yield Case(key, (key, value))


CASES = {"setting": sshd_cases}


@pytest.mark.snc("9.5", "9.6", "12.12")
@pytest.mark.bp028("R33", "R67")
def test_sshd_setting(target: Target, setting: tuple[str, str]) -> None:
    key, value = setting
    assert sshd_effective(target).get(key) == value


@pytest.mark.snc("9.2", "9.6")
@pytest.mark.bp028("R33")
def test_admin_user_is_in_the_admin_group(target: Target) -> None:
    user = target.host.user(target.vars["citadelle_admin_user"])
    assert user.exists
    assert target.vars["bp028_ssh_admin_group"] in user.groups


@pytest.mark.snc("9.6")
@pytest.mark.bp028("R33")
@pytest.mark.parametrize("banner_file", ["bp028_ssh_banner_file", "bp028_ssh_console_banner_file"])
def test_login_banner_is_the_role_one(target: Target, banner_file: str) -> None:
    banner = target.host.file(target.vars[banner_file]).content_string
    assert banner.split() == str(target.vars["bp028_ssh_banner_text"]).split()


@pytest.mark.snc("9.5", "12.12")
@pytest.mark.bp028("R39")
def test_sudo_always_asks_for_a_password(target: Target) -> None:
    found = target.root("grep -rlE 'NOPASSWD|!authenticate' /etc/sudoers /etc/sudoers.d || true")
    assert found.rc == 0, found.stderr
    assert found.stdout.split() == []


@pytest.mark.snc("12.6", "12.12")
@pytest.mark.bp028("R39")
def test_sudo_uses_a_pty_and_logs(target: Target) -> None:
    rules = target.output("cat /etc/sudoers /etc/sudoers.d/*")
    assert "Defaults use_pty" in rules
    assert f'logfile="{target.vars["bp028_accounts_sudo_logfile"]}"' in rules


@pytest.mark.snc("9.2", "9.5")
@pytest.mark.bp028("R40")
def test_sudo_rules_run_as_root_only(target: Target) -> None:
    group = target.vars["bp028_accounts_sudo_admin_group"]
    assert f"%{group} ALL=(root) ALL" in target.output(
        f"cat {target.vars['bp028_accounts_sudoers_file']}").splitlines()
    # No rule (root's own aside) may run commands as every user or group.
    pattern = target.vars["bp028_accounts_sudo_runas_all_pattern"]
    found = target.root(f"grep -rhP {shlex.quote(pattern)} /etc/sudoers /etc/sudoers.d || true")
    assert found.rc == 0, found.stderr
    assert found.stdout.splitlines() == []


@pytest.mark.snc("9.2", "9.6")
@pytest.mark.bp028("R38")
@pytest.mark.applies(recommendation="R38", role="bp028_accounts")
def test_only_the_admin_group_can_execute_sudo(target: Target) -> None:
    sudo_group = str(target.vars["bp028_accounts_sudo_admin_group"])
    info = target.root(f"stat -c '%U %G %a' {target.vars['bp028_accounts_sudo_binary']}")
    assert info.stdout.split() == ["root", sudo_group, "4110"], info
