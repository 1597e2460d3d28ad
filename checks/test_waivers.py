"""Waivers: an expired waiver is a failure of its own, naming its owner and date."""

from __future__ import annotations

import datetime as dt

import pytest

from citadelle.deploy.waivers import Waiver


@pytest.mark.snc("18.4")
def test_waiver_is_current(waiver: Waiver, today: dt.date) -> None:
    assert not waiver.expired(today), (
        f"waiver {waiver.key} ({waiver.source}) expired on {waiver.expires.isoformat()}: renew "
        f"it with its owner {waiver.owner} or fix the check")
