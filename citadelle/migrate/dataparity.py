"""`citadelle parity A B --data`: do two environments hold the same objects?

During the double run the mirror must hold prod's data. Each side is an object manifest (key,
size, SHA-256, as ``citadelle migrate verify`` reads the destination back): by default the newest
verified destination manifest of each environment's run folder, or the files given. Objects are
compared by key, size and SHA-256 (never by modification time); exit 1 on any difference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from citadelle.errors import CitadelleError
from citadelle.migrate import manifest
from citadelle.migrate.context import read_json
from citadelle.paths import RUNS_DIR


def newest_manifest(env: str, base: Path = RUNS_DIR) -> Path:
    """The newest destination manifest a verify of ``env`` (or its lab rehearsal) read back."""
    found = [p for folder in (base / "migrate" / env, base / "migrate" / f"{env}-lab")
             for p in folder.glob("verify-*/destination-manifest.json")]
    found += list((base / "migrate" / env).glob("workspaces/*/verify-*/"
                                                "destination-manifest.json"))
    if not found:
        raise CitadelleError(f"environment {env}: no verified destination manifest under "
                             f"{base / 'migrate' / env} (run `citadelle migrate verify {env}`, "
                             "or give the manifest file)")
    return max(found, key=lambda p: p.parent.name.split("-", 1)[-1])


def _side(source: str) -> tuple[str, dict[str, Any]]:
    path = Path(source) if source.endswith(".json") else newest_manifest(source)
    data = read_json(path, "manifest")
    if data.get("kind") != manifest.KIND or not isinstance(data.get("objects"), list):
        raise CitadelleError(f"manifest {path}: not a Citadelle migration manifest")
    return str(path), data


def data_parity(a: str, b: str) -> tuple[int, dict[str, Any]]:
    path_a, data_a = _side(a)
    path_b, data_b = _side(b)
    result = manifest.compare(manifest.entries(data_a), manifest.entries(data_b))
    report = {"a": {"name": a, "manifest": path_a, **data_a["totals"]},
              "b": {"name": b, "manifest": path_b, **data_b["totals"]},
              "identical": result.ok, "differences": result.as_json()}
    return (0 if result.ok else 1), report


def render(report: dict[str, Any]) -> str:
    a, b = report["a"], report["b"]
    lines = [f"data parity {a['name']} -> {b['name']}: {a['objects']} objects / {a['bytes']} "
             f"bytes vs {b['objects']} / {b['bytes']}"]
    for kind, keys in report["differences"].items():
        label = {"missing": f"only in {a['name']}", "extra": f"only in {b['name']}"}.get(
            kind, kind.replace("_", " "))
        lines += [f"  {label}: {key}" for key in keys]
    lines.append("identical (key, size, SHA-256)" if report["identical"] else "DATA DRIFT")
    return "\n".join(lines)
