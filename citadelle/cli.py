"""`citadelle` console script: the explicit registry of every command, grouped by stage."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from citadelle.errors import CitadelleError

# Every command, by stage, in the order `citadelle --help` lists them. Each module exposes
# ``register(subparsers)`` and sets ``func`` on its parsers to a callable taking the parsed
# namespace and returning the exit code; no registration depends on another.
COMMANDS: tuple[tuple[str, str], ...] = (
    ("plan", "citadelle.plan.plan"),
    ("render", "citadelle.plan.render"),
    ("gate, policy-config", "citadelle.plan.gate"),
    ("parity", "citadelle.plan.parity"),
    ("pulumi", "citadelle.deploy.pulumi"),
    ("inventory", "citadelle.deploy.inventory"),
    ("harden", "citadelle.deploy.harden"),
    ("verify", "citadelle.deploy.verify"),
    ("deploy", "citadelle.deploy.pipeline"),
    ("report", "citadelle.evidence.report"),
    ("backend", "citadelle.sovereignty.backend"),
    ("sovereignty", "citadelle.sovereignty.scan"),
    ("secretscan", "citadelle.sovereignty.secretscan"),
    ("audit-cloud", "citadelle.audit.command"),
    ("migrate", "citadelle.migrate.command"),
    ("lab", "citadelle.lab.commands"),
)

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="citadelle",
        description="Operate the Citadelle sovereign health-data platform.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for _, module in COMMANDS:
        importlib.import_module(module).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.func
    try:
        return handler(args)
    except CitadelleError as err:
        print(f"citadelle: error: {err.message}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("citadelle: interrupted", file=sys.stderr)
        return 130
