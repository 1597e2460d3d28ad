"""Every check of the cloud audit cites SecNumCloud 3.2 sections that exist in the reference."""

from __future__ import annotations

import pytest

from citadelle.audit import conformance, drift
from citadelle.audit.model import snc_section_ids
from citadelle.evidence.findings import Rule

pytestmark = pytest.mark.unit

ALL_CHECKS = (*conformance.CHECKS, *drift.CHECKS)


@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda c: c.id)
def test_check_cites_existing_snc_sections(check: Rule) -> None:
    assert check.snc, f"{check.id} cites no SecNumCloud section"
    unknown = [i for i in check.snc if i not in snc_section_ids()]
    assert unknown == []


def test_check_ids_are_unique() -> None:
    ids = [c.id for c in ALL_CHECKS]
    assert len(ids) == len(set(ids))
