"""The command-line parser itself."""

from __future__ import annotations

import gc

import pytest

from citadelle.cli import build_parser

pytestmark = pytest.mark.unit


def test_parser_builds_again_after_earlier_ones_are_collected() -> None:
    # Each build registers the `lab` subcommands of several modules on that parser's own group;
    # a new parser must never be handed a collected parser's group (same id, same memory).
    for _ in range(50):
        parser = build_parser()
        assert parser.parse_args(["lab", "collector", "status"]).action == "status"
        del parser
        gc.collect()
