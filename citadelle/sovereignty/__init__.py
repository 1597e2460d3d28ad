"""Data and administration in the EU: state backend, endpoint scan, secret scan."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def walk(data: Any, path: str = "", key: str = "") -> Iterator[tuple[str, str, str]]:
    """(path, key, string) for every string leaf; ``key`` is the nearest mapping key."""
    if isinstance(data, dict):
        for k, v in data.items():
            yield from walk(v, f"{path}.{k}" if path else str(k), str(k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from walk(v, f"{path}[{i}]", key)
    elif isinstance(data, str):
        yield path, key, data
