"""Offline recordings of the project's own environments, made once per test session."""

from __future__ import annotations

import pytest

from citadelle.plan.offline import Recording
from citadelle.plan.plan import plan_environment

ENVIRONMENTS = ("dev", "mirror", "prod")
_CACHE: dict[str, Recording] = {}


def recording_for(env: str) -> Recording:
    if env not in _CACHE:
        _CACHE[env] = plan_environment(env)
    return _CACHE[env]


@pytest.fixture(params=ENVIRONMENTS)
def recording(request: pytest.FixtureRequest) -> Recording:
    return recording_for(request.param)
