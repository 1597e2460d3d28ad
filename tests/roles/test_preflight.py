"""The hardening play's preflight, run for real by ansible-runner against this machine's own
facts (controller-side checks only: `--tags citadelle_preflight` runs no role concern).

One run covers every case: each case is a host of a generated inventory (local connection)
with its own variables, so each host fails with its own message, or passes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from citadelle.deploy import harden
from citadelle.paths import PLAYBOOKS_DIR, REFERENCE_DIR, ROLES_DIR

pytestmark = pytest.mark.unit

# Valid endpoints of a made-up environment; each case below breaks one thing.
VALID: dict[str, Any] = {
    "bp028_firewall_admin_cidrs": ["10.30.1.0/27"],
    "bp028_time_ntp_servers": ["ntp1.example.internal"],
    "bp028_audit_forward_url": "https://logs.example.internal:19532",
    "bp028_packages_mirror_url": "http://mirror.example.internal/debian",
    "bp028_packages_security_mirror_url": "http://mirror.example.internal/debian-security",
}
# (case, variables replaced or removed (None), expected words of the one-line refusal)
BAD_CASES: list[tuple[str, dict[str, Any], list[str]]] = [
    ("world-open-admin-cidr", {"bp028_firewall_admin_cidrs": ["0.0.0.0/0"]},
     ["not world-open", "0.0.0.0/0"]),
    ("malformed-cidr", {"bp028_firewall_admin_cidrs": ["10.0.0.0/33"]}, ["CIDR", "10.0.0.0/33"]),
    ("no-admin-cidr", {"bp028_firewall_admin_cidrs": None},
     ["bp028_firewall_admin_cidrs"]),
    ("no-ntp-servers", {"bp028_time_ntp_servers": None}, ["bp028_time_ntp_servers"]),
    ("cleartext-log-collector", {"bp028_audit_forward_url": "http://logs.example.internal"},
     ["https://", "http://logs.example.internal"]),
    ("unknown-level", {"bp028_level": "maximal"}, ["must be one of", "maximal"]),
    ("short-passwords", {"bp028_accounts_pwquality_minlen": 8}, ["minlen must be >= 15"]),
    ("weak-cipher", {"bp028_ssh_ciphers": ["aes128-cbc"]}, ["CBC"]),
    ("admin-not-in-ssh-group", {"bp028_ssh_admin_group": "nobody-group"},
     ["nobody-group", "lock it out"]),
    ("unknown-sysctl-override", {"bp028_kernel_sysctl_overrides": {"net.bogus": 1}},
     ["unknown keys", "net.bogus"]),
    ("removes-sshd", {"bp028_packages_absent": ["openssh-server"]}, ["openssh-server"]),
]
LEVELS = ["minimal", "intermediary", "enhanced", "high"]
GROUP_LEVELS = {"bastion": "enhanced", "gateway": "intermediary", "node": "intermediary"}


def host_vars(changes: dict[str, Any]) -> dict[str, Any]:
    values = {**VALID, **changes}
    return {k: v for k, v in values.items() if v is not None}


@pytest.fixture(scope="module")
def preflight(tmp_path_factory: pytest.TempPathFactory) -> harden.HardenResult:
    base = tmp_path_factory.mktemp("preflight")
    hosts: dict[str, Any] = {}
    for case, changes, _ in BAD_CASES:
        hosts[case] = host_vars(changes)
    for level in LEVELS:
        hosts[f"level-{level}"] = host_vars({"bp028_level": level})
    local = {"ansible_connection": "local", "ansible_become": False,
             "ansible_python_interpreter": str(Path(harden.VENV_BIN) / "python"),
             # The connecting account must be in the SSH admin group: here, root in root.
             "ansible_user": "root", "bp028_ssh_admin_group": "root"}
    for values in hosts.values():
        for key, value in local.items():
            values.setdefault(key, value)
    # No bp028_level: the group decides (enhanced on the bastion, intermediary elsewhere).
    groups = {group: {"hosts": {f"group-{group}": {**host_vars({}), **local}}}
              for group in GROUP_LEVELS}
    inventory = base / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": hosts, "children": groups}}))
    return harden.run_playbook(PLAYBOOKS_DIR / "harden.yml", inventory, tags="citadelle_preflight",
                               extravars={"citadelle_hosts": "all"}, run_dir=base / "run")


def failures_of(result: harden.HardenResult, host: str) -> list[str]:
    return [f.message for f in result.failures if f.host == host]


@pytest.mark.parametrize(("case", "expected"), [(c, e) for c, _, e in BAD_CASES],
                         ids=[c for c, _, _ in BAD_CASES])
def test_bad_variable_is_refused_before_any_change(preflight: harden.HardenResult, case: str,
                                                   expected: list[str]) -> None:
    messages = failures_of(preflight, case)
    assert len(messages) == 1, messages
    assert [w for w in expected if w not in messages[0]] == [], messages[0]
    assert preflight.hosts[case].changed == 0


@pytest.mark.parametrize("level", LEVELS)
def test_valid_variables_pass_the_preflight(preflight: harden.HardenResult, level: str) -> None:
    host = f"level-{level}"
    assert failures_of(preflight, host) == []
    assert preflight.hosts[host].failed == 0
    assert preflight.hosts[host].changed == 0


def applicable_ids(level: str) -> list[str]:
    reference = yaml.safe_load((REFERENCE_DIR / "anssi-bp028.yaml").read_text())
    allowed = LEVELS[: LEVELS.index(level) + 1]
    return [r["id"] for r in reference["recommendations"] if r["level"] in allowed]


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("role", sorted(p.name for p in ROLES_DIR.glob("bp028_*")))
def test_level_selects_the_reference_recommendations(preflight: harden.HardenResult,
                                                     level: str, role: str) -> None:
    facts = preflight.facts[f"level-{level}"]
    assert facts[f"{role}_applicable"] == applicable_ids(level)


@pytest.mark.parametrize(("group", "level"), GROUP_LEVELS.items())
@pytest.mark.parametrize("role", sorted(p.name for p in ROLES_DIR.glob("bp028_*")))
def test_default_level_is_enhanced_on_the_bastion_only(preflight: harden.HardenResult,
                                                       group: str, level: str, role: str) -> None:
    assert preflight.facts[f"group-{group}"][f"{role}_applicable"] == applicable_ids(level)
