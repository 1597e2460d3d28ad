"""Filters of the citadelle.hardening collection: BP-028 level resolution for every role.

``{{ 'enhanced' | citadelle.hardening.bp028_applicable }}`` is the list of recommendation ids
(R1, R2...) that apply at that level (levels are cumulative), read from the ANSSI-BP-028
reference shipped in the collection (``reference/anssi-bp028.yaml``). One implementation for
the nine roles instead of a regex over the file copied into each.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml
from ansible.errors import AnsibleFilterError

LEVELS = ("minimal", "intermediary", "enhanced", "high")
# plugins/filter/bp028.py -> the collection root, which holds reference/.
REFERENCE = Path(__file__).resolve().parents[2] / "reference" / "anssi-bp028.yaml"


@cache
def _recommendations(path: Path = REFERENCE) -> tuple[tuple[str, str], ...]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return tuple((str(r["id"]), str(r["level"])) for r in data["recommendations"])


def bp028_applicable(level: Any) -> list[str]:
    """Ids of the recommendations that apply at ``level``, in the reference's order."""
    if level not in LEVELS:
        raise AnsibleFilterError(
            f"bp028_applicable: unknown BP-028 level {level!r}; allowed: {', '.join(LEVELS)}")
    allowed = LEVELS[: LEVELS.index(level) + 1]
    return [rid for rid, rec_level in _recommendations() if rec_level in allowed]


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"bp028_applicable": bp028_applicable}
