"""The source-data commands of `ecomlake`: generate, changes, generate-logs.

`add_commands(subparsers)` registers them on the `ecomlake` parser (lib/ecomlake/ops/cli.py); each
sets `func(args, cfg) -> exit code`, prints what it wrote, and rejects bad arguments at parse
time with the argument's name.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ecomlake.ops.sources import changes, generator, weblogs


def _number(kind, lo, hi):
    """An argparse type: `kind` (int or float) within [lo, hi]; argparse names the option."""
    noun = "an integer" if kind is int else "a number"

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be {noun} from {lo} to {hi}, got {text!r}")
        return value
    return parse


def _date(text: str):
    try:
        return weblogs.parse_date(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_generate(args, cfg) -> int:
    counts = generator.generate(cfg, args.scale, args.seed)
    for where, n in counts.items():
        unit = "documents" if where.startswith("mongodb") else "rows"
        print(f"{n:>10} {unit:<9}  {where}")
    return 0


def cmd_changes(args, cfg) -> int:
    counts = changes.apply_batch(cfg, args.batch, bad_fraction=args.bad_fraction)
    print(f"batch {args.batch} ({changes.batch_day(args.batch).date()}) applied; "
          f"every record is listed in {cfg.mysql.database}.change_manifest:")
    for key, n in counts.items():
        entity, kind = key.split(" ")
        where = (f"mongodb {cfg.mongo.database}.{entity}" if entity == generator.COLLECTION
                 else f"mysql {cfg.mysql.database}.{entity}")
        print(f"{n:>10} {kind:<7}  {where}")
    return 0


def cmd_generate_logs(args, cfg) -> int:
    path = weblogs.generate_logs(args.out, args.date, args.lines, args.seed)
    print(f"{args.lines:>10} lines  {path}")
    return 0


def add_commands(sub) -> None:
    """Register generate, changes and generate-logs on the `ecomlake` subparsers."""
    g = sub.add_parser("generate", help="fill MySQL and MongoDB with deterministic generated data",
                       description=generator.__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    g.add_argument("--scale", required=True,
                   type=_number(float, generator.MIN_SCALE, generator.MAX_SCALE),
                   help="1 = 1,000,000 sales lines, 100,000 customers, 10,000 products")
    g.add_argument("--seed", type=_number(int, 0, generator.MAX_SEED), default=1,
                   help="same seed, same data (default 1)")
    g.set_defaults(func=cmd_generate)

    c = sub.add_parser("changes", help="apply change batch K to the generated data, in order, once",
                       description=changes.__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("--batch", required=True, type=_number(int, 1, changes.MAX_BATCH),
                   help="the batch number: 1, 2, ... (batch K is day K of 2022)")
    c.add_argument("--bad-fraction", type=_number(float, 0, changes.MAX_BAD_FRACTION),
                   default=0.01, help="share of new records that break a quality rule (default 0.01)")
    c.set_defaults(func=cmd_changes)

    w = sub.add_parser("generate-logs", help="write a day of web access logs (combined log format)",
                       description=weblogs.__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    w.add_argument("--date", required=True, type=_date, help="the day, YYYY-MM-DD")
    w.add_argument("--lines", type=_number(int, 1, weblogs.MAX_LINES), default=10_000,
                   help="lines to write (default 10000)")
    w.add_argument("--out", type=Path, required=True, help="folder to write access_<date>.log into")
    w.add_argument("--seed", type=_number(int, 0, generator.MAX_SEED), default=1,
                   help="same seed, same file (default 1)")
    w.set_defaults(func=cmd_generate_logs)
