"""Shards balanced by bytes over the transfer gateways, and how long the move takes.

Greedy by size (largest object first, onto the least loaded gateway): within one largest object
of the optimum, which is what matters with millions of small partitions and a few big ones.
Durations assume the link is the bottleneck: the configured link capacity shared by every
gateway, or the sum of the gateways' bandwidth limits when lower.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from citadelle.migrate.context import Tuning

PB = 10**15
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


@dataclass(frozen=True)
class Shard:
    gateway: str
    keys: tuple[str, ...]
    bytes: int


def shard(objects: Sequence[Mapping[str, Any]], gateways: Sequence[str]) -> list[Shard]:
    heap: list[tuple[int, int]] = [(0, i) for i in range(len(gateways))]
    keys: list[list[str]] = [[] for _ in gateways]
    sizes = [0] * len(gateways)
    for obj in sorted(objects, key=lambda o: (-int(o["size"]), str(o["key"]))):
        _, index = heapq.heappop(heap)
        keys[index].append(str(obj["key"]))
        sizes[index] += int(obj["size"])
        heapq.heappush(heap, (sizes[index], index))
    return [Shard(g, tuple(sorted(k)), b) for g, k, b in zip(gateways, keys, sizes, strict=True)]


def bwlimit_bytes(text: str) -> int | None:
    """rclone's --bwlimit value in bytes/s (None for off)."""
    match = re.fullmatch(r"([0-9.]+)([KMGT]?)", text)
    return None if match is None else int(float(match.group(1)) * _UNITS[match.group(2)])


def rate_bytes(tuning: Tuning, gateways: int) -> float:
    """Aggregate bytes/s: the link, or the gateways' summed limits when lower."""
    link = tuning.link_gbps * 1e9 / 8
    limit = bwlimit_bytes(tuning.bandwidth_limit)
    return link if limit is None else min(link, limit * gateways)


def estimate(objects: Sequence[Mapping[str, Any]], gateways: Sequence[str],
             tuning: Tuning) -> tuple[dict[str, Any], list[Shard]]:
    shards = shard(objects, gateways)
    rate = rate_bytes(tuning, len(gateways))
    total = sum(s.bytes for s in shards)
    # The slowest shard sets the end: each gateway gets its share of the aggregate rate.
    per_gateway = rate / len(gateways)
    return {
        "gateways": list(gateways),
        "link_gbps": tuning.link_gbps,
        "bandwidth_limit": tuning.bandwidth_limit,
        "aggregate_bytes_per_second": rate,
        "objects": len(objects),
        "bytes": total,
        "duration_seconds": max((s.bytes / per_gateway for s in shards), default=0.0),
        "shards": [{"gateway": s.gateway, "objects": len(s.keys), "bytes": s.bytes}
                   for s in shards],
        "projection": {label: {"bytes": size, "duration_seconds": size / rate,
                               "duration_days": size / rate / 86400}
                       for label, size in (("1 PB", PB), ("10 PB", 10 * PB))},
    }, shards


def human_duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
