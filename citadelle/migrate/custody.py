"""The chain of custody of each migrating workspace, from its recorded state (for the report).

Per workspace: the manifests (the sync manifest's digest, the last verify's two manifests), the
verifies (how many, the last one re-checked now with ``check-evidence``), the freeze (start,
end, measured seconds, the refused write that proved it), the switch, the source's deletion
evidence, and who ran each step (SecNumCloud 19.1.h and 19.1.i reversibility, 19.4 deletion).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from citadelle.errors import CitadelleError
from citadelle.migrate import evidence
from citadelle.migrate.state import WorkspaceState

HEADERS = ("Workspace", "Phase", "Manifests", "Verifies", "Write freeze", "Switch",
           "Source deletion", "Run by")


@dataclass(frozen=True)
class Custody:
    folder: str
    cells: tuple[str, ...]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.is_file() else "-"


def _recheck(path: Path) -> str:
    try:
        problems = evidence.check(path)
    except CitadelleError as err:
        return f"unreadable ({err})"
    return "holds" if not problems else "; ".join(problems)


def _who(history: list[dict[str, Any]], steps: dict[str, dict[str, Any]]) -> str:
    """Who ran each action and cutover step, in the order they first ran."""
    by: dict[str, list[str]] = {}
    for action, who in [(h["action"], h["by"]) for h in history] + [
            (f"cutover {name}", step["by"]) for name, step in steps.items()]:
        if who not in by.setdefault(action, []):
            by[action].append(who)
    return "; ".join(f"{action}: {', '.join(who)}" for action, who in by.items()) or "-"


def custody(env: str, base: Path) -> list[Custody]:
    rows = []
    for run in (base / "migrate" / env, base / "migrate" / f"{env}-lab"):
        for folder in sorted((run / "workspaces").glob("*/state.json")):
            state = WorkspaceState.load(run, folder.parent.name)
            data = state.data
            history = data.get("history", [])
            verifies = [h for h in history if h["action"] == "verify"]
            last = data.get("last_verify")
            verify_text = f"{len(verifies)} run(s)"
            if last:
                path = Path(last["evidence"])
                verify_text += (f"; last {'green' if last['ok'] else 'RED'} {last['at']}, "
                                f"evidence {last['digest'][:16]}, re-verified now: "
                                f"{_recheck(path)}")
            manifests = f"sync manifest {_digest(state.sync_manifest)}"
            if last:
                folder_ = Path(last["evidence"]).parent
                manifests += (f"; verified source {_digest(folder_ / 'source-manifest.json')}, "
                              f"destination {_digest(folder_ / 'destination-manifest.json')}")
            steps = data.get("steps", {})
            freeze = data.get("freeze", {})
            proof = steps.get("freeze", {}).get("details", {}).get("proof", {})
            freeze_text = "-" if not freeze else (
                f"{freeze.get('started')} to {freeze.get('ended', 'not ended')}"
                + (f" ({freeze['seconds']:.1f} s)" if "seconds" in freeze else "")
                + "".join(f"; write to {c} refused {p['status']} {p['error_code']} at "
                          f"{p['refused_at']}" for c, p in proof.items()))
            switch = steps.get("switch", {})
            switch_text = (f"{switch['finished']}, gate exit "
                           f"{switch['details']['gate']['exit_code']}; read-only source until "
                           f"{data.get('retention_until')}") if "finished" in switch else "-"
            retired = data.get("retired")
            deleted = sum(v["objects"] for v in retired["deleted"].values()) if retired else 0
            retired_text = (f"{retired['at']}: {deleted} objects deleted, listing empty, "
                            f"evidence {retired['digest'][:16]}" if retired else "-")
            rows.append(Custody(str(folder.parent), (
                data["workspace"], state.phase, manifests, verify_text, freeze_text,
                switch_text, retired_text, _who(history, steps))))
    return rows
