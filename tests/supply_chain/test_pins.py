"""Every Python dependency is pinned, and every pinned one is hash-locked and installed as locked.

Fails when a dependency is added to pyproject.toml without ``==``, when the lock loses a hash or
disagrees with pyproject, or when the policy pack asks for a version the lock does not hold.
"""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from dataclasses import dataclass

import pytest

from citadelle import paths

pytestmark = [pytest.mark.unit, pytest.mark.snc("12.11.a", "14.4.a")]

PYPROJECT = paths.REPO_ROOT / "pyproject.toml"
LOCK = paths.REPO_ROOT / "requirements.lock"
POLICY_REQUIREMENTS = paths.POLICY_DIR / "requirements.txt"
_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]+\])?==(?P<version>[^\s;=<>!~]+)$")
_HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}\b")


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Locked:
    name: str
    version: str
    hashes: int


def direct_dependencies(pyproject_text: str) -> list[str]:
    project = tomllib.loads(pyproject_text)["project"]
    extras = [d for group in project.get("optional-dependencies", {}).values() for d in group]
    return [*project.get("dependencies", []), *extras]


def parse_lock(lock_text: str) -> dict[str, Locked]:
    """name -> entry of a `uv pip compile --generate-hashes` lock (continuations joined)."""
    joined = re.sub(r"\\\n\s*", " ", lock_text)
    entries: dict[str, Locked] = {}
    for line in joined.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        requirement = line.split()[0]
        match = _PIN.match(requirement)
        name = normalise(match.group("name")) if match else requirement
        entries[name] = Locked(name, match.group("version") if match else "",
                               len(_HASH.findall(line)))
    return entries


def pin_problems(pyproject_text: str, lock_text: str, pack_text: str) -> list[str]:
    """Every way the three files let an unpinned or unhashed dependency in."""
    problems: list[str] = []
    lock = parse_lock(lock_text)
    for entry in lock.values():
        if not entry.version:
            problems.append(f"requirements.lock: {entry.name} is not pinned with ==")
        if entry.hashes == 0:
            problems.append(f"requirements.lock: {entry.name} has no --hash")
    required = [("pyproject.toml", d) for d in direct_dependencies(pyproject_text)]
    required += [("policies/requirements.txt", line.strip()) for line in pack_text.splitlines()
                 if line.strip() and not line.lstrip().startswith("#")]
    for where, requirement in required:
        match = _PIN.match(requirement)
        if match is None:
            problems.append(f"{where}: {requirement!r} is not pinned with ==")
            continue
        name, version = normalise(match.group("name")), match.group("version")
        locked = lock.get(name)
        if locked is None:
            problems.append(f"{where}: {name} is not in requirements.lock (regenerate it)")
        elif locked.version != version:
            problems.append(
                f"{where}: {name}=={version} but requirements.lock has {locked.version}")
    return problems


def _texts() -> tuple[str, str, str]:
    return (PYPROJECT.read_text(encoding="utf-8"), LOCK.read_text(encoding="utf-8"),
            POLICY_REQUIREMENTS.read_text(encoding="utf-8"))


def test_project_dependencies_are_pinned_and_hash_locked():
    assert pin_problems(*_texts()) == []


def test_lock_holds_the_whole_tree():
    lock = parse_lock(LOCK.read_text(encoding="utf-8"))
    assert len(lock) > len(direct_dependencies(PYPROJECT.read_text(encoding="utf-8")))
    assert all(entry.hashes >= 1 for entry in lock.values())


@pytest.mark.parametrize(
    ("mutation", "expected"),
    [
        (lambda p, lk, pk: (p.replace('"PyYAML==6.0.4",', '"PyYAML==6.0.4",\n  "requests>=2",'),
                            lk, pk),
         "pyproject.toml: 'requests>=2' is not pinned with =="),
        (lambda p, lk, pk: (p.replace('"PyYAML==6.0.4",', '"PyYAML==6.0.4",\n  "requests",'),
                            lk, pk),
         "pyproject.toml: 'requests' is not pinned with =="),
        (lambda p, lk, pk: (p.replace('"PyYAML==6.0.4",',
                                      '"PyYAML==6.0.4",\n  "leftpad==1.0.0",'), lk, pk),
         "pyproject.toml: leftpad is not in requirements.lock (regenerate it)"),
        (lambda p, lk, pk: (p.replace("pydantic==2.14.4", "pydantic==2.14.3"), lk, pk),
         "pyproject.toml: pydantic==2.14.3 but requirements.lock has 2.14.4"),
        (lambda p, lk, pk: (p, re.sub(r"(pyyaml==6\.0\.4)((?: \\\n\s+--hash=\S+)+)", r"\1",
                                      lk, flags=re.IGNORECASE), pk),
         "requirements.lock: pyyaml has no --hash"),
        (lambda p, lk, pk: (p, lk + "\nleftpad>=1.0\n", pk),
         "requirements.lock: leftpad>=1.0 is not pinned with =="),
        (lambda p, lk, pk: (p, lk, pk + "\npulumi-openstack\n"),
         "policies/requirements.txt: 'pulumi-openstack' is not pinned with =="),
        (lambda p, lk, pk: (p, lk, pk.replace("pulumi-policy==1.21.0", "pulumi-policy==1.20.0")),
         "policies/requirements.txt: pulumi-policy==1.20.0 but requirements.lock has 1.21.0"),
    ],
    ids=["range", "bare-name", "unlocked", "version-drift", "hash-removed", "lock-unpinned",
         "pack-unpinned", "pack-drift"],
)
def test_check_catches_an_unpinned_or_unhashed_dependency(mutation, expected):
    mutated = mutation(*_texts())
    assert mutated != _texts(), "the mutation did not apply: update it to the current files"
    assert expected in pin_problems(*mutated)


_LOCKED = sorted(parse_lock(LOCK.read_text(encoding="utf-8")).values(), key=lambda e: e.name)


@pytest.mark.parametrize("entry", _LOCKED, ids=[e.name for e in _LOCKED])
def test_installed_version_is_the_locked_one(entry):
    try:
        installed = importlib.metadata.version(entry.name)
    except importlib.metadata.PackageNotFoundError:
        pytest.fail(f"{entry.name} is locked but not installed: run scripts/install")
    assert installed == entry.version
