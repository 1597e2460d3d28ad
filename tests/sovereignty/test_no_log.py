"""Ansible tasks that handle a secret keep it out of the logs (`no_log: true`)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from citadelle import paths

pytestmark = [pytest.mark.unit, pytest.mark.snc("10.5.a", "12.6.a")]

# A Jinja reference to a variable whose name says it holds a secret.
_SECRET_REFERENCE = re.compile(
    r"\{\{[^}]*\b\w*(password|passphrase|secret|token|private_key|api_key)\w*\b[^}]*\}\}",
    re.IGNORECASE)
_BLOCK_KEYS = ("block", "rescue", "always")


def tasks(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, list):
        for item in node:
            yield from tasks(item)
    elif isinstance(node, dict):
        if any(k in node for k in _BLOCK_KEYS):
            for key in _BLOCK_KEYS:
                yield from tasks(node.get(key))
        elif "tasks" in node or "handlers" in node or "pre_tasks" in node:
            for key in ("pre_tasks", "tasks", "post_tasks", "handlers"):
                yield from tasks(node.get(key))
        else:
            yield node


def leaks(document: Any) -> list[str]:
    """Names of tasks that pass a secret variable to a module without no_log."""
    found = []
    for task in tasks(document):
        arguments = {k: v for k, v in task.items() if k not in ("name", "when", "tags")}
        if _SECRET_REFERENCE.search(yaml.safe_dump(arguments)) and task.get("no_log") is not True:
            found.append(str(task.get("name", "(unnamed task)")))
    return found


_FILES = sorted([*paths.ROLES_DIR.glob("*/tasks/*.yml"), *paths.ROLES_DIR.glob(
    "*/handlers/*.yml"), *paths.PLAYBOOKS_DIR.glob("*.yml")])


def test_there_are_tasks_to_check():
    assert len(_FILES) > 10


@pytest.mark.parametrize("path", _FILES, ids=lambda p: str(p.relative_to(paths.REPO_ROOT)))
def test_tasks_handling_secrets_use_no_log(path: Path):
    assert leaks(yaml.safe_load(path.read_text(encoding="utf-8"))) == []


@pytest.mark.parametrize(
    ("task", "leaking"),
    [
        ({"name": "Set it", "ansible.builtin.user": {"name": "x",
                                                     "password": "{{ admin_password_hash }}"}},
         True),
        ({"name": "Set it", "ansible.builtin.user": {"name": "x",
                                                     "password": "{{ admin_password_hash }}"},
          "no_log": True}, False),
        ({"block": [{"name": "Token", "ansible.builtin.uri": {
            "url": "https://openbao.citadelle.internal:8200/v1/x",
            "headers": {"X-Vault-Token": "{{ openbao_token }}"}}}]}, True),
        ({"name": "Quality", "ansible.builtin.template": {"src": "pwquality.conf.j2",
                                                          "dest": "/etc/security/pwq.conf"},
          "when": "bp028_accounts_pwquality_enabled"}, False),
    ],
    ids=["user-password", "user-password-no-log", "token-in-block", "no-secret"],
)
def test_the_check_catches_a_secret_task_without_no_log(task, leaking):
    assert bool(leaks([task])) is leaking
