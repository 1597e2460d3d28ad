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


def sudo_listing(target: Target) -> tuple[set[str], list[str]]:
    """What sudo itself resolves for the administrator (``sudo -l -U``): the Defaults that
    apply to them and their rules, as ``(runas) [tags:] commands`` lines."""
    user = target.vars["citadelle_admin_user"]
    listed = target.fact(f"sudo -l -U {shlex.quote(user)}")
    assert listed.rc == 0, listed.stderr
    sections: dict[str, list[str]] = {}
    current = ""
    for line in listed.stdout.splitlines():
        if line and not line.startswith(" "):
            current = line
            sections[current] = []
        elif line.strip() and current:
            sections[current].append(line.strip())
    defaults = next((" ".join(v) for k, v in sections.items()
                     if k.startswith("Matching Defaults entries")), "")
    rules = next((v for k, v in sections.items() if "may run the following commands" in k), [])
    return {d.strip() for d in defaults.split(", ")}, rules


def sudo_default_cases(target: Target) -> Iterator[Case]:
    logfile = target.vars["bp028_accounts_sudo_logfile"]
    for default in ("use_pty", f"logfile={logfile}", "log_allowed", "log_denied", "env_reset",
                    "ignore_dot", "umask=0077", "!visiblepw"):
        yield Case(default, default)


CASES = {"setting": sshd_cases, "sudo_default": sudo_default_cases}


@pytest.mark.snc("12.6", "12.12")
@pytest.mark.bp028("R39")
def test_sudo_default_applies_to_the_admin(target: Target, sudo_default: str) -> None:
    defaults, _ = sudo_listing(target)
    assert sudo_default in defaults


@pytest.mark.snc("9.2", "9.5")
@pytest.mark.bp028("R40")
def test_sudo_rules_run_as_root_only(target: Target) -> None:
    # As sudo resolves them for the administrator: root only, password asked (no NOPASSWD).
    # The image's bootstrap rule and the role's drop-in both match: each must be root-only.
    rules = sudo_listing(target)[1]
    assert rules and set(rules) == {"(root) ALL"}, rules
    # No rule of anyone else (root's own aside) may run commands as every user or group.
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
