"""What every spark-submit job shares: arguments, logging, config, pre-flight checks, the Spark
session, exit codes. A job file only names its stages."""
from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
import time

from ecomlake import quickcheck
from ecomlake.config import ConfigError, available_envs, load_config
from ecomlake.errors import EcomlakeError
from ecomlake.io.warehouse import WAREHOUSES

log = logging.getLogger("ecomlake")

EXIT_OK, EXIT_FAILED, EXIT_STOPPED = 0, 1, 2


def parse_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def parser(job: str, doc: str, stages: list[str]) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"spark-submit.sh {job}", description=doc,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="local", choices=available_envs(),
                   help="conf/<env>.yaml to run with (default: local)")
    p.add_argument("--run-date", type=parse_date, default=None,
                   help="the data interval's date, YYYY-MM-DD (Airflow passes {{ ds }}); names "
                        "the batch, so rerunning a date replaces that date's batch. "
                        "Default: today (UTC)")
    if "bronze" in stages:
        p.add_argument("--source", choices=["mysql", "mongo", "all"], default="all",
                       help="which source system to ingest (default: all); Airflow runs MySQL "
                            "and MongoDB ingestion as two tasks in parallel")
        p.add_argument("--backfill", nargs=2, type=parse_date, metavar=("FROM", "TO"),
                       help="re-read the MySQL rows changed on the days FROM..TO (by their "
                            "watermark column) into this run date's batch, e.g. after a fix in "
                            "the source; silver then merges them as usual")
        p.add_argument("--allow-mass-delete", action="store_true",
                       help="let this run apply deletions that remove more than a table's "
                            "max_delete_fraction (conf/tables.yaml) of silver, or empty it from an "
                            "empty source; without it such a run stops with exit 2 before silver "
                            "is written")
        p.add_argument("--full-refresh", action="store_true",
                       help="read every source row again instead of only what changed since "
                            "the stored watermark (and apply deletions by comparing snapshots)")
    if "publish" in stages:
        p.add_argument("--target", choices=[*WAREHOUSES, "all"], default="all",
                       help="warehouse(s) to publish gold to (default: all)")
        p.add_argument("--tables", nargs="+", default=[], metavar="TABLE",
                       help="gold tables to publish (default: every gold table)")
        p.add_argument("--republish", action="store_true",
                       help="publish every gold table again, even one whose Delta version is "
                            "the one the warehouse's publish_log says was last published "
                            "(default: those are skipped); --full-refresh implies it")
    if stages == quickcheck.STAGES:
        p.add_argument("--full-check", action="store_true",
                       help="run every stage even when the quick check finds that nothing "
                            "changed since the last complete run of this date (the stages still "
                            "skip what did not change, by their own records; README, 'Running jobs')")
    return p


def quick_check(cfg, run) -> "quickcheck.Verdict":
    """quickcheck.check before Spark starts; a check that cannot be completed (anything but a
    server that refuses, which stops the job as the stages would) runs every stage."""
    try:
        return quickcheck.check(quickcheck.JvmOnly(), cfg, run)
    except EcomlakeError:
        raise
    except Exception as exc:
        log.warning("quick check: could not be completed (%s)", exc)
        return quickcheck.Verdict(False, "the check could not be completed")


def main(job: str, doc: str, stages: list[str], argv: list[str] | None = None) -> int:
    args = parser(job, doc, stages).parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("py4j", "mysql.connector", "pymongo"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from ecomlake import pipeline

    t0 = time.monotonic()
    now = dt.datetime.now(dt.timezone.utc)
    run_date = args.run_date or now.date()
    if args.run_date is None:
        log.info("no --run-date given: using today (UTC) %s", run_date)
    targets = tuple(WAREHOUSES) if getattr(args, "target", "all") == "all" else (args.target,)
    source = getattr(args, "source", "all")
    sources = ("mysql", "mongo") if source == "all" else (source,)
    run = pipeline.Run(run_date=run_date, ingested_at=now.replace(tzinfo=None), targets=targets,
                       full_refresh=getattr(args, "full_refresh", False),
                       allow_mass_delete=getattr(args, "allow_mass_delete", False),
                       republish=getattr(args, "republish", False),
                       tables=tuple(getattr(args, "tables", [])), sources=sources,
                       backfill=tuple(args.backfill) if getattr(args, "backfill", None) else None)
    try:
        cfg = load_config(args.env)
        log.info("%s: env %s (%s), run date %s, stages %s", job, cfg.env, cfg.source_file,
                 run_date, " -> ".join(stages))
        pipeline.preflight(cfg, stages, targets, sources)
        quick = stages == quickcheck.STAGES
        if quick and not (run.full_refresh or run.backfill or run.republish or args.full_check):
            verdict = quick_check(cfg, run)
            if verdict.unchanged:
                for what in verdict.proven:
                    log.info("quick check: %s", what)
                log.info("%s: nothing changed since the last complete run of %s: no stage runs, "
                         "no Delta commit, no warehouse write (%.1fs; --full-check runs every "
                         "stage)", job, run_date, time.monotonic() - t0)
                return EXIT_OK
            log.info("quick check: %s: running every stage", verdict.why)
        from ecomlake.spark import session

        spark = session(cfg, f"ecomlake-{job}")
        summary = pipeline.run_stages(spark, cfg, run, stages)
        if quick:
            try:
                quickcheck.record(spark, cfg, run)
            except Exception as exc:   # the record only saves time; without it a rerun checks fully
                log.warning("quick check: no record written (%s): a rerun of %s runs every "
                            "stage", exc, run_date)
    except (EcomlakeError, ConfigError) as exc:
        log.error("%s stopped: %s", job, exc)
        return EXIT_STOPPED
    except Exception:
        log.exception("%s failed", job)
        return EXIT_FAILED
    log.info("%s finished in %.1fs. Written:", job, time.monotonic() - t0)
    for where, n in summary.items():
        log.info("  %-60s %10s rows", where, n)
    return EXIT_OK
