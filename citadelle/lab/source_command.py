"""`citadelle lab source up|down|status|seed`: the migration source (Azurite) of the lab."""

from __future__ import annotations

import argparse

from citadelle.lab import source

HELP = (f"the migration source: Azurite (Azure Blob API) on https://{source.HOST}:{source.PORT}, "
        f"account {source.ACCOUNT}, lab CA certificate")


def register(parser: argparse.ArgumentParser) -> None:
    """``citadelle lab source ...`` under the lab group's ``source`` parser."""
    actions = parser.add_subparsers(dest="source_action", metavar="ACTION", required=True)
    up = actions.add_parser("up", help="start Azurite (account key generated on first use)")
    up.add_argument("--store", choices=source.STORES, default=None,
                    help="Azurite's blob metadata store: loki (its default; each request scans "
                    "the account's blobs) or sql (a private MariaDB with an index, for datasets "
                    "of 100,000 objects); default: the one used last, else loki")
    up.set_defaults(func=_up)
    actions.add_parser("down", help="stop Azurite (and its MariaDB) by PID; the data stays"
                       ).set_defaults(func=_down)
    actions.add_parser("status", help="is Azurite running").set_defaults(func=_status)
    seed = actions.add_parser("seed", help="write the synthetic SNDS-like dataset (never real "
                              "data): tables by year and month as gzip CSV")
    seed.add_argument("--container", default=source.DEFAULT_CONTAINER,
                      help="container to write (default: %(default)s)")
    seed.add_argument("--size", default="1GiB", help="total size, e.g. 1GiB, 20MiB "
                      "(default: %(default)s)")
    seed.add_argument("--objects", type=int, default=source.DEFAULT_OBJECTS,
                      help="number of objects (default: %(default)s)")
    seed.add_argument("--seed", type=int, default=1, help="the dataset's seed (default: 1)")
    seed.set_defaults(func=_seed)


def _source(args: argparse.Namespace) -> source.Source:
    return source.Source(args.lab_dir)


def _up(args: argparse.Namespace) -> int:
    lab_source = _source(args)
    pid = lab_source.up(store=args.store)
    print(f"lab source up: {lab_source.endpoint} (pid {pid}, {lab_source.store()} metadata "
          f"store), CA {lab_source.ca_cert}")
    return 0


def _down(args: argparse.Namespace) -> int:
    print("lab source stopped" if _source(args).down() else "lab source was not running")
    return 0


def _status(args: argparse.Namespace) -> int:
    lab_source = _source(args)
    pid = lab_source.pid()
    print(f"lab source: running (pid {pid}, {lab_source.store()} metadata store)" if pid
          else "lab source: stopped")
    return 0 if pid else 1


def _seed(args: argparse.Namespace) -> int:
    result = _source(args).seed(args.container, source.parse_size(args.size), args.objects,
                                args.seed)
    print(f"seeded {result.objects} objects ({result.bytes} bytes, {result.block_blobs} in "
          f"blocks) into {args.container} in {result.seconds:.1f} s")
    return 0
