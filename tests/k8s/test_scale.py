"""Cost of research workspaces: linear in their number (scripts/bench-workspaces for 1000)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from k8s_support import Values, configure

from citadelle.plan.offline import Recording
from citadelle.plan.plan import plan_stack

RESOURCES_PER_WORKSPACE = 10  # 7 Kubernetes objects, key material, Barbican key, container


def _workspaces(count: int) -> Any:
    def mutate(values: Values) -> None:
        template = values["workspaces"][0]
        values["workspaces"] = [
            dict(template, id=f"scale-{i:05d}", membersGroup=f"ws-scale-{i:05d}",
                 approvalRef=f"SCALE-{i:05d}")
            for i in range(count)
        ]

    return mutate


def _cpu_seconds(count: int) -> tuple[float, Recording]:
    config = configure("prod", _workspaces(count))
    start = time.process_time()
    recording = plan_stack(config)
    return time.process_time() - start, recording


def _custom(recording: Recording) -> int:
    return sum(1 for r in recording.resources if r.custom)


@pytest.mark.unit
def test_workspace_cost_grows_linearly() -> None:
    _cpu_seconds(0)  # imports and first-run caches out of the measure
    # Best of two: CPU time is robust to a busy machine, not to a one-off hiccup.
    base = min(_cpu_seconds(0)[0] for _ in range(2))
    # 25, not 10: the small run's marginal cost must stand well above timing noise.
    small_s, small = min((_cpu_seconds(25) for _ in range(2)), key=lambda r: r[0])
    large_s, large = _cpu_seconds(100)
    assert _custom(large) - _custom(small) == 75 * RESOURCES_PER_WORKSPACE
    per_small = (small_s - base) / 25
    per_large = (large_s - base) / 100
    assert per_large > 0
    assert per_large <= 2.0 * per_small, (per_small, per_large)


@pytest.mark.benchmark
def test_benchmark_plan_prod_with_100_workspaces(benchmark: Any) -> None:
    config = configure("prod", _workspaces(100))
    recording = benchmark.pedantic(plan_stack, args=(config,), rounds=1, iterations=1)
    namespaces = [r for r in recording.resources if r.type == "kubernetes:core/v1:Namespace"]
    assert len(namespaces) == 3 + 100
