"""`ecomlake`: the non-Spark commands (the local stack, loading source data).

Spark work is started with ./spark-submit.sh; see README.md.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time

from ecomlake.ops import bi, hadoop, stack
from ecomlake.config import load_config
from ecomlake.errors import EcomlakeError


def cmd_stack(args, cfg) -> int:
    if args.action == "up":
        for server, what in stack.up(cfg):
            print(f"{server.name:<9} {server.role:<44} {server.address:<16} {what}")
    elif args.action == "down":
        for server in stack.down(cfg):
            print(f"{server.name:<9} stopped")
    else:
        results = stack.status(cfg)
        for server, ok in results:
            print(f"{server.name:<9} {server.role:<44} {server.address:<16} "
                  f"{'answers' if ok else 'NOT ANSWERING'}")
        return 0 if all(ok for _, ok in results) else 1
    return 0


def cmd_load_capstone(args, cfg) -> int:
    from ecomlake.ops.sources import capstone

    for where, n in capstone.load(cfg, args.dir).items():
        print(f"{n:>8} rows  {where}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ecomlake", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default=None, help="conf/<env>.yaml to use (default: local)")
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("stack", help="install, start, stop or check the local servers",
                       description=stack.__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("action", choices=["up", "down", "status"])
    s.set_defaults(func=cmd_stack)

    hadoop.add_cli(sub)
    bi.add_cli(sub)

    from ecomlake.ops.sources.capstone import CAPSTONE_DIR
    c = sub.add_parser("load-capstone",
                       help="load the course data into MySQL sales_data and MongoDB electronics")
    c.add_argument("--dir", type=__import__("pathlib").Path, default=CAPSTONE_DIR,
                   help=f"folder of the course files (default {CAPSTONE_DIR})")
    c.set_defaults(func=cmd_load_capstone)

    from ecomlake.ops.sources.cli_commands import add_commands
    add_commands(sub)      # generate, changes, generate-logs
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("mysql.connector").setLevel(logging.WARNING)  # chatty at INFO
    t0 = time.monotonic()
    try:
        rc = args.func(args, load_config(args.env))
    except (EcomlakeError, ValueError, RuntimeError) as exc:
        print(f"ecomlake {args.command}: error: {exc}", file=sys.stderr)
        return 2
    logging.getLogger("ecomlake").info("%s done in %.1fs", args.command, time.monotonic() - t0)
    return rc


if __name__ == "__main__":
    sys.exit(main())
