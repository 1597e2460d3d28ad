"""`citadelle` console script: each subcommand lives in its own module with ``register``."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from citadelle.errors import CitadelleError

# Modules that add subcommands; each exposes ``register(subparsers)`` and sets ``func`` on its
# parser to a callable taking the parsed namespace and returning the exit code.
COMMAND_MODULES: tuple[str, ...] = (
    "citadelle.plan",
    "citadelle.render",
    "citadelle.gate",
    "citadelle.parity",
    "citadelle.pulumi_env",
    "citadelle.sovereignty",
    "citadelle.secretscan",
    "citadelle.lab.commands",
    "citadelle.lab.source_command",
    "citadelle.cloudlab.command",
    "citadelle.audit.command",
    "citadelle.harden",
    "citadelle.inventory",
    "citadelle.checks_runner",
    "citadelle.deploy",
    "citadelle.report",
    "citadelle.migrate.command",
)

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="citadelle",
        description="Operate the Citadelle sovereign health-data platform.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
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
