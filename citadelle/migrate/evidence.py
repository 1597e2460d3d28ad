"""Tamper-evident evidence of a verified transfer, and its re-verification.

The evidence file sits in the verify run's folder beside the two manifests it names (the source
manifest copied there, the destination read-back). It records their SHA-256 digests, the counts
and bytes of each side, the differences found, the time range (copy and verify), the gateways
and the engine version, and ends with ``digest``: the SHA-256 of everything else in canonical
JSON. ``check-evidence`` recomputes that digest, re-hashes both manifests and recompares them:
editing any of the three files, or the result, is detected. It is integrity, not authorship:
whoever can rewrite all three consistently could forge them, so the report's copy and the
evidence's digest are kept by the auditors (docs/migration.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from citadelle.errors import CitadelleError
from citadelle.files import write_file
from citadelle.migrate import manifest
from citadelle.migrate.context import read_json

KIND = "citadelle-migration-evidence"


def seal(body: dict[str, Any]) -> dict[str, Any]:
    return {**body, "kind": KIND, "digest": manifest.digest({**body, "kind": KIND})}


def write(path: Path, body: dict[str, Any]) -> dict[str, Any]:
    sealed = seal(body)
    write_file(path, manifest.canonical(sealed).decode() + "\n")
    return sealed


def check(path: Path) -> list[str]:
    """Problems found re-verifying ``path`` (empty: the evidence holds)."""
    data = read_json(path, "evidence")
    if data.get("kind") != KIND:
        raise CitadelleError(f"evidence {path}: not a Citadelle migration evidence file")
    problems = []
    body = {k: v for k, v in data.items() if k != "digest"}
    if manifest.digest(body) != data.get("digest"):
        problems.append("the evidence's digest does not match its content (edited)")
    loaded = {}
    for side in ("source", "destination"):
        record = data.get(side, {})
        file = path.parent / str(record.get("manifest", ""))
        if not file.is_file():
            problems.append(f"{side} manifest {file.name} is missing")
            continue
        content = read_json(file, f"{side} manifest")
        if manifest.digest(content) != record.get("manifest_sha256"):
            problems.append(f"{side} manifest {file.name} does not match its recorded digest")
        if content.get("kind") != manifest.KIND or not isinstance(content.get("objects"), list):
            problems.append(f"{side} manifest {file.name} is not a migration manifest")
            continue
        totals = content.get("totals", {})
        if (totals.get("objects"), totals.get("bytes")) != (record.get("objects"),
                                                            record.get("bytes")):
            problems.append(f"{side} counts differ from the manifest's")
        loaded[side] = content
    if len(loaded) == 2:
        result = manifest.compare(manifest.entries(loaded["source"]),
                                  manifest.entries(loaded["destination"]))
        if result.as_json() != data.get("differences") or result.ok != data.get("ok"):
            problems.append("the recorded result differs from the manifests' comparison")
    return problems
