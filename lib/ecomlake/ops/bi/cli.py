"""`ecomlake bi up|down|status|provision|screenshots` (see ecomlake.ops.bi for each)."""
from __future__ import annotations

import argparse
from pathlib import Path

from ecomlake.config import Config
from ecomlake.ops import bi
from ecomlake.ops.bi.assets import load_assets
from ecomlake.ops.bi.client import Client
from ecomlake.ops.bi.provision import counts, provision, up
from ecomlake.ops.bi.server import ADMIN, PASSWORD_VAR, base_url, healthy, stop


def _provisioned(n: dict[str, int]) -> str:
    return (f"provisioned: {n['database']} database(s), {n['dataset']} datasets, "
            f"{n['chart']} charts, {n['dashboard']} dashboards")


def cmd_bi(args, cfg: Config) -> int:
    if args.action == "up":
        started, n = up(cfg)
        print(f"superset  {base_url()}  {started}")
        print(_provisioned(n))
        for d in load_assets()["dashboards"].values():
            print(f"  {d['title']:<14} {base_url()}/superset/dashboard/{d['slug']}/")
        print(f"login: user {ADMIN}, password {PASSWORD_VAR} in "
              f"{cfg.stack_dir / 'stack.env'}")
    elif args.action == "provision":
        print(_provisioned(provision(cfg)))
    elif args.action == "down":
        print("superset  stopped" if stop(cfg) else "superset  was not running")
    elif args.action == "status":
        if not healthy():
            print(f"superset  {base_url()}  NOT ANSWERING")
            return 1
        n = counts(Client(cfg))
        print(f"superset  {base_url()}  answers; {n['database']} database(s), "
              f"{n['dataset']} datasets, {n['chart']} charts, {n['dashboard']} dashboards")
    elif args.action == "screenshots":
        from ecomlake.ops.bi.browser import screenshots   # Selenium: only here
        bad = 0
        for r in screenshots(cfg, args.out):
            errors = [c["title"] for c in r["charts"] if c["error"]]
            warnings = [c["title"] for c in r["charts"] if c["warning"]]
            bad += len(errors) + len(warnings)
            print(f"{r['dashboard']:<14} {len(r['charts'])} charts, {len(errors)} with errors, "
                  f"{len(warnings)} with warnings ({r['seconds']}s)  {r['screenshot']}"
                  + (f"  ERRORS: {', '.join(errors)}" if errors else "")
                  + (f"  WARNINGS: {', '.join(warnings)}" if warnings else ""))
        return 1 if bad else 0
    return 0


def add_cli(subparsers) -> None:
    """Register `ecomlake bi up|down|status|provision|screenshots`."""
    b = subparsers.add_parser("bi", help="Superset dashboards on the warehouse (start, stop, "
                              "provision, screenshots)", description=bi.__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    b.add_argument("action", choices=["up", "down", "status", "provision", "screenshots"])
    b.add_argument("--out", type=Path, default=None,
                   help="screenshots: folder for the PNGs (default .local/artifacts/bi)")
    b.set_defaults(func=cmd_bi)
