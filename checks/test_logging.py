"""Logging: auditd rules loaded, the journal persistent and kept, forwarded to the collector.

SecNumCloud 3.2 12.6 (event logging, at least six months kept), 12.7 (protection, central
collector); BP-028 R33 (admin traceability), R71 (logging system), R73 (auditd). Expected rules
are the bp028_audit role's own template rendered for this host.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from checks.target import Case, Target, key_values

SIX_MONTHS_S = 182 * 24 * 3600
_UNITS = {"s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600, "hour": 3600, "d": 86400,
          "day": 86400, "w": 604800, "week": 604800, "month": 2629800, "M": 2629800,
          "year": 31557600, "y": 31557600}


def systemd_seconds(value: str) -> int:
    """A systemd time span (``1year``, ``6month``, ``180d 12h``) in seconds."""
    total = 0.0
    for number, unit in re.findall(r"(\d+)\s*([A-Za-z]*)", value):
        total += int(number) * _UNITS[unit or "s"]
    return int(total)


def expected_rules(target: Target) -> list[str]:
    text = target.vars.render_template(
        "bp028_audit", "etc/audit/rules.d/citadelle-bp028.rules.j2",
        bp028_audit_applicable=target.vars.level_ids("bp028_audit"))
    return [line.strip() for line in text.splitlines()
            if line.strip().startswith(("-w", "-a"))]


def rule_key_cases(target: Target) -> Iterator[Case]:
    keys = sorted({rule.rsplit("-k ", 1)[1] for rule in expected_rules(target) if "-k " in rule})
    for key in keys:
        yield Case(key, key)


def privileged_cases(target: Target) -> Iterator[Case]:
    for command in target.vars["bp028_audit_privileged_commands"]:
        yield Case(command.rsplit("/", 1)[1], command)


CASES = {"key": rule_key_cases, "command": privileged_cases}


@pytest.mark.snc("12.6")
@pytest.mark.bp028("R33", "R73")
def test_auditd_is_running_and_enabled(target: Target) -> None:
    service = target.host.service(target.vars["bp028_audit_service"])
    assert service.is_running
    assert service.is_enabled


@pytest.mark.snc("12.6")
@pytest.mark.bp028("R73")
def test_audit_rules_with_key_are_loaded(target: Target, key: str) -> None:
    loaded = target.output("auditctl -l")
    assert f"key={key}" in loaded or f"-k {key}" in loaded


@pytest.mark.snc("12.6", "9.6")
@pytest.mark.bp028("R33", "R73")
def test_privileged_command_is_audited(target: Target, command: str) -> None:
    assert f"path={command} " in target.output("auditctl -l") + " "


@pytest.mark.snc("12.7")
@pytest.mark.bp028("R73")
def test_audit_rules_immutable_at_enhanced(target: Target) -> None:
    immutable = "-e 2" in target.vars.render_template(
        "bp028_audit", "etc/audit/rules.d/citadelle-bp028.rules.j2",
        bp028_audit_applicable=target.vars.level_ids("bp028_audit"))
    status = key_values(target.output("auditctl -s"))
    assert status.get("enabled") == ("2" if immutable else "1")


def journald_settings(target: Target) -> dict[str, str]:
    """journald's effective settings: the main file and every drop-in, in systemd's order."""
    return key_values(target.output("systemd-analyze cat-config systemd/journald.conf"), "=")


@pytest.mark.snc("12.6", "12.7")
@pytest.mark.bp028("R71")
def test_journal_is_persistent_and_kept(target: Target) -> None:
    conf = journald_settings(target)
    assert conf.get("storage") == "persistent"
    assert conf.get("maxretentionsec") == target.vars["bp028_audit_journald_max_retention"]
    assert target.host.file("/var/log/journal").is_directory


@pytest.mark.snc("12.6")
def test_journal_retention_covers_six_months(target: Target) -> None:
    # What journald on the host will keep, whatever the role was asked to set.
    retention = journald_settings(target).get("maxretentionsec", "")
    assert retention and systemd_seconds(retention) >= SIX_MONTHS_S, retention


@pytest.mark.snc("12.7")
@pytest.mark.bp028("R71")
def test_journal_upload_is_enabled(target: Target) -> None:
    assert target.host.service(target.vars["bp028_audit_upload_service"]).is_enabled


@pytest.mark.snc("12.7")
@pytest.mark.bp028("R71")
def test_journal_upload_is_running(target: Target) -> None:
    assert target.host.service(target.vars["bp028_audit_upload_service"]).is_running
