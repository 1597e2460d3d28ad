"""Waivers: accepted, owned and dated exceptions to a requirement on a host or group.

``waivers/<env>.yaml`` (and ``waivers/lab.yaml`` for the VM lab)::

    waivers:
      - requirement: "12.8"             # SecNumCloud 3.2 or BP-028 id (reference/)
        scope: node                     # a host name or an inventory group (all = every host)
        checks: [test_clock_synchronised]  # optional: only these checks (default: all of the id)
        justification: why the risk is accepted, and what covers it meanwhile
        owner: who answers for it
        expires: 2027-03-31             # after this date the waiver no longer applies

A waived check still runs: if it fails it is reported as waived (xfail with the waiver as its
reason, visible in JUnit); an expired waiver fails its own check; an unknown requirement id or
a malformed entry refuses the whole file.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from citadelle import paths
from citadelle.errors import CitadelleError

WAIVERS_DIR = paths.REPO_ROOT / "waivers"
_FIELDS = {"requirement", "scope", "checks", "justification", "owner", "expires"}
_REQUIRED = ("requirement", "scope", "justification", "owner", "expires")
_SCOPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


@dataclass(frozen=True)
class Waiver:
    requirement: str
    scope: str
    justification: str
    owner: str
    expires: dt.date
    checks: tuple[str, ...] = ()
    source: str = ""
    index: int = 0

    @property
    def key(self) -> str:
        return f"{self.requirement}@{self.scope}#{self.index}"

    def expired(self, today: dt.date) -> bool:
        return self.expires < today

    def applies(self, requirement_ids: Iterable[str], host: str, groups: Sequence[str],
                check: str) -> bool:
        """True when this waiver covers the check ``check`` on ``host`` (any of its groups)."""
        if self.scope not in ("all", host, *groups):
            return False
        if self.checks and check not in self.checks:
            return False
        return any(rid == self.requirement or rid.startswith(self.requirement + ".")
                   for rid in requirement_ids)

    def reason(self) -> str:
        return (f"waived: {self.requirement} on {self.scope} until {self.expires.isoformat()} "
                f"(owner {self.owner}): {self.justification}")


@dataclass
class WaiverSet:
    waivers: list[Waiver] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)

    def find(self, requirement_ids: Iterable[str], host: str, groups: Sequence[str],
             check: str, today: dt.date) -> tuple[Waiver | None, Waiver | None]:
        """(valid waiver covering the check, expired waiver covering it), either may be None."""
        ids = list(requirement_ids)
        valid = expired = None
        for waiver in self.waivers:
            if waiver.applies(ids, host, groups, check):
                if waiver.expired(today):
                    expired = expired or waiver
                else:
                    valid = valid or waiver
        return valid, expired


def _date(value: Any, where: str) -> dt.date:
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise CitadelleError(f"{where}.expires: {value!r} is not a date (YYYY-MM-DD)") from None


def parse_waivers(data: Any, source: str, known_ids: frozenset[str]) -> list[Waiver]:
    """Validate one waiver file's content; raise CitadelleError on the first problem."""
    if data is None:
        return []
    if not isinstance(data, dict) or set(data) != {"waivers"} or not isinstance(
            data["waivers"], list):
        raise CitadelleError(f"{source}: expected a mapping with one key 'waivers' (a list)")
    result: list[Waiver] = []
    for index, entry in enumerate(data["waivers"]):
        where = f"{source}: waivers[{index}]"
        if not isinstance(entry, dict):
            raise CitadelleError(f"{where}: expected a mapping")
        unknown = sorted(set(entry) - _FIELDS)
        if unknown:
            raise CitadelleError(f"{where}.{unknown[0]}: unknown key; allowed: "
                                 + ", ".join(sorted(_FIELDS)))
        for key in _REQUIRED:
            if entry.get(key) in (None, ""):
                raise CitadelleError(f"{where}.{key}: required key is missing")
        requirement = str(entry["requirement"])
        if requirement not in known_ids:
            raise CitadelleError(
                f"{where}.requirement: {requirement!r} is not a SecNumCloud 3.2 or BP-028 id "
                "(see reference/secnumcloud-3.2.yaml and reference/anssi-bp028.yaml)")
        scope = str(entry["scope"])
        if not _SCOPE.match(scope):
            raise CitadelleError(f"{where}.scope: {scope!r} is not a host or group name")
        checks = entry.get("checks") or []
        if not isinstance(checks, list) or not all(isinstance(c, str) for c in checks):
            raise CitadelleError(f"{where}.checks: expected a list of check names")
        justification = str(entry["justification"]).strip()
        if len(justification) < 20:
            raise CitadelleError(f"{where}.justification: too short; say why the risk is "
                                 "accepted and what covers it meanwhile")
        result.append(Waiver(requirement=requirement, scope=scope,
                             justification=" ".join(justification.split()),
                             owner=str(entry["owner"]),
                             expires=_date(entry["expires"], where), checks=tuple(checks),
                             source=source, index=index))
    return result


def _reference(name: str) -> Any:
    return yaml.safe_load((paths.REFERENCE_DIR / name).read_text(encoding="utf-8"))


@cache
def bp028_reference() -> dict[str, dict[str, Any]]:
    """BP-028 recommendations by id (R1..R80)."""
    return {r["id"]: r for r in _reference("anssi-bp028.yaml")["recommendations"]}


@cache
def snc_reference() -> dict[str, dict[str, Any]]:
    """SecNumCloud 3.2 sections by id, in document order."""
    return {str(s["id"]): s for s in _reference("secnumcloud-3.2.yaml")["sections"]}


@cache
def known_requirement_ids() -> frozenset[str]:
    """Every SecNumCloud 3.2 section and requirement id, and every BP-028 id."""
    ids = set(bp028_reference())
    for section_id, section in snc_reference().items():
        ids.add(section_id)
        ids.update(str(r) for r in section.get("requirement_ids") or [])
    return frozenset(ids)


def default_files(env: str, target: str) -> list[Path]:
    """The environment's waivers and the target's (``waivers/lab.yaml``), where they exist."""
    return [WAIVERS_DIR / f"{env}.yaml", WAIVERS_DIR / f"{target}.yaml"]


def load_waivers(files: Sequence[Path], known_ids: frozenset[str] | None = None) -> WaiverSet:
    """Load the files that exist (a missing file means no waivers for that scope)."""
    if known_ids is None:
        known_ids = known_requirement_ids()
    result = WaiverSet()
    for path in files:
        if not path.is_file():
            continue
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as err:
            raise CitadelleError(f"{path}: malformed YAML: {getattr(err, 'problem', err)}") \
                from None
        result.waivers.extend(parse_waivers(data, str(path), known_ids))
        result.files.append(path)
    return result
