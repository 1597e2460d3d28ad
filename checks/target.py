"""One host under check: its expected values and the two ways to look at it.

- ``target.host``: a pytest-testinfra host over the inventory's ssh_config (the admin user's own
  view: files, services, sockets, packages);
- ``target.root(cmd)`` / ``target.fact(cmd)``: a command as root through sudo, for what only
  root may read (``sshd -T``, ``nft``, ``auditctl``). The admin's sudo password (BP-028 R39:
  sudo always asks) is fed on sudo's standard input from the file the inventory references,
  never on a command line; ``fact`` caches the output per host for the whole run.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import testinfra

from checks.expected import Expected

SSH_TIMEOUT_S = 180


class Case(NamedTuple):
    """One per-host case of a check: its id, its value and its own requirement marks."""

    id: str
    value: Any
    marks: Sequence[Any] = ()


@dataclass(frozen=True)
class Result:
    rc: int
    stdout: str
    stderr: str


@dataclass
class Target:
    name: str
    groups: tuple[str, ...]
    vars: Expected
    ssh_config: Path
    password_file: Path | None
    _host: Any = None
    _facts: dict[str, Result] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.name

    @property
    def host(self) -> Any:
        if self._host is None:
            self._host = testinfra.get_host(f"ssh://{self.name}", ssh_config=str(self.ssh_config),
                                            timeout=SSH_TIMEOUT_S)
        return self._host

    def in_group(self, *groups: str) -> bool:
        return any(g in self.groups for g in groups)

    def root(self, command: str) -> Result:
        password = (self.password_file.read_text(encoding="utf-8").strip() + "\n"
                    if self.password_file is not None else "")
        sudo = ["sudo", "-S", "-p", ""] if password else ["sudo", "-n"]
        # ssh hands the remote shell one string: quote every word for it.
        argv = ["ssh", "-F", str(self.ssh_config), self.name, "--",
                shlex.join([*sudo, "sh", "-c", command])]
        proc = subprocess.run(argv, input=password, capture_output=True, text=True,
                              timeout=SSH_TIMEOUT_S, check=False)
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def fact(self, command: str) -> Result:
        if command not in self._facts:
            self._facts[command] = self.root(command)
        return self._facts[command]

    def output(self, command: str) -> str:
        """Cached root output of a command that must succeed."""
        result = self.fact(command)
        if result.rc != 0:
            raise AssertionError(f"{self.name}: `{command}` exited {result.rc}: "
                                 f"{result.stderr.strip()[-300:]}")
        return result.stdout


def key_values(text: str, separator: str | None = None) -> dict[str, str]:
    """``key value`` (or ``key<separator>value``) lines -> dict; comments skipped, last wins."""
    result: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        if separator is None:
            key, _, value = line.partition(" ")
        else:
            key, _, value = line.partition(separator)
        result[key.strip().lower()] = value.strip()
    return result


def words(value: str, separator: str = ",") -> Sequence[str]:
    return [w.strip() for w in value.split(separator) if w.strip()]
