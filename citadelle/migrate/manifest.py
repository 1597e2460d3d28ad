"""Manifests: every object of one side with its size and SHA-256, and their canonical digest.

A manifest is JSON: ``kind``, ``environment``, ``side`` (source or destination), ``endpoint``,
``containers``, ``created``, ``objects`` (sorted by key; key = ``<source container>/<name>``,
the destination's object name) and ``totals``. Its digest is the SHA-256 of its canonical JSON
(sorted keys, no spaces), the form evidence refers to.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from citadelle.errors import CitadelleError
from citadelle.files import write_file
from citadelle.migrate.context import read_json

KIND = "citadelle-migration-manifest"


@dataclass(frozen=True)
class Entry:
    key: str
    size: int
    sha256: str
    md5: str | None = None
    etag: str | None = None
    last_modified: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Entry:
        return cls(key=str(data["key"]), size=int(data["size"]), sha256=str(data["sha256"]),
                   md5=data.get("md5"), etag=data.get("etag"),
                   last_modified=data.get("last_modified"))


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def canonical(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def digest(data: Any) -> str:
    return hashlib.sha256(canonical(data)).hexdigest()


def build(environment: str, side: str, endpoint: str, containers: Iterable[str],
          entries: Iterable[Entry]) -> dict[str, Any]:
    objects = sorted((asdict(e) for e in entries), key=lambda e: str(e["key"]))
    return {
        "kind": KIND, "environment": environment, "side": side, "endpoint": endpoint,
        "containers": list(containers), "created": now(), "objects": objects,
        "totals": {"objects": len(objects), "bytes": sum(int(o["size"]) for o in objects)},
    }


def write(path: Path, manifest: Mapping[str, Any]) -> str:
    """Write the manifest (canonical JSON) atomically; returns its digest."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_file(path, canonical(manifest).decode() + "\n")
    return digest(manifest)


def load(path: Path, environment: str, side: str = "source") -> dict[str, Any]:
    """A manifest of ``environment``; refuses one of another environment or kind."""
    data = read_json(path, "manifest")
    if data.get("kind") != KIND or not isinstance(data.get("objects"), list):
        raise CitadelleError(f"manifest {path}: not a Citadelle migration manifest")
    if data.get("environment") != environment:
        raise CitadelleError(f"manifest {path}: made for environment "
                             f"{data.get('environment')!r}, not {environment!r}")
    if data.get("side") != side:
        raise CitadelleError(f"manifest {path}: a {data.get('side')} manifest, expected {side}")
    return data


def entries(manifest: Mapping[str, Any]) -> dict[str, Entry]:
    return {str(o["key"]): Entry.from_json(o) for o in manifest["objects"]}


@dataclass(frozen=True)
class Comparison:
    missing: list[str]
    extra: list[str]
    size_mismatch: list[str]
    hash_mismatch: list[str]

    @property
    def ok(self) -> bool:
        return not (self.missing or self.extra or self.size_mismatch or self.hash_mismatch)

    def as_json(self) -> dict[str, list[str]]:
        return asdict(self)


def compare(source: Mapping[str, Entry], destination: Mapping[str, Entry]) -> Comparison:
    common = sorted(set(source) & set(destination))
    sizes = [k for k in common if source[k].size != destination[k].size]
    return Comparison(
        missing=sorted(set(source) - set(destination)),
        extra=sorted(set(destination) - set(source)),
        size_mismatch=sizes,
        hash_mismatch=[k for k in common if k not in sizes
                       and source[k].sha256 != destination[k].sha256],
    )
