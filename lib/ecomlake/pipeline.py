"""The stages of the daily pipeline and what each needs. Jobs under jobs/ run one stage or all
of them in one Spark session (`pipeline`)."""
from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field

from pyspark.sql import functions as F

from ecomlake import bronze, builds, gold, quality, reconcile, schemas, silver
from ecomlake.config import Config, load_tables
from ecomlake.io import delta, mongo, mysql
from ecomlake.io.warehouse import WAREHOUSES, warehouse
from ecomlake.publish import publish_tables, read_gold
from ecomlake.spark import in_parallel

log = logging.getLogger(__name__)

# A release that changes how silver or gold is computed rebuilds them (see ecomlake.builds).
SILVER_CODE = builds.code_hash(silver, quality, schemas)
GOLD_CODE = builds.code_hash(gold)


def gold_shape() -> dict:
    """What shapes gold beside silver: its code and the reference lists (conf/reference)."""
    from ecomlake.config import REFERENCE_DIR
    files = sorted(REFERENCE_DIR.glob("*"))
    return {"code": GOLD_CODE,
            "reference": builds.text_hash("".join(f.name + f.read_text() for f in files))}


@dataclass(frozen=True)
class Run:
    """One run of the pipeline: the data interval it covers and how its batches are named.
    `ingested_at` is audit only; no stage uses the clock to decide what data it covers."""
    run_date: dt.date
    ingested_at: dt.datetime
    targets: tuple[str, ...] = tuple(WAREHOUSES)
    tables: tuple[str, ...] = ()          # gold tables to publish; empty = all
    sources: tuple[str, ...] = ("mysql", "mongo")   # source systems bronze reads
    full_refresh: bool = False
    backfill: tuple[dt.date, dt.date] | None = None  # re-read rows changed on these days
    allow_mass_delete: bool = False       # let deletions past max_delete_fraction through
    republish: bool = False               # publish gold tables even if already published
    summary: dict = field(default_factory=dict)
    fingerprints: dict = field(default_factory=dict)   # collection -> fingerprint (quickcheck)

    @property
    def batch_id(self) -> str:
        return self.run_date.isoformat()


def stage_bronze(spark, cfg: Config, run: Run) -> None:
    """Each source table into bronze, then its reconciliation: the source's key set against the
    lake's (missing keys re-read, deletions recorded, a mass deletion stopped), and the batch's
    mark and counts kept in bronze._batches."""
    tables = [(n, s) for n, s in load_tables().items() if s.source in run.sources]
    # One high-water mark for every MySQL table of the batch, taken before any of them is read
    # (a mark holds for any read that starts after it): one settle wait per run, not per table,
    # and one cut across the tables.
    upper = mysql.high_water_mark(cfg) if any(
        s.source == "mysql" and s.incremental for _, s in tables) else None

    def ingest(item) -> reconcile.Reconciliation:
        name, spec = item
        recover = None
        if spec.source == "mysql":
            n, mark = bronze.ingest_mysql(spark, cfg, name, spec, run.batch_id, run.run_date,
                                          run.ingested_at, full_refresh=run.full_refresh,
                                          backfill=run.backfill, mark=upper)
            source_keys = reconcile.MysqlKeys(spark, cfg, name, spec)
            recover = bronze.recover_mysql(spark, cfg, name, spec, run.batch_id, run.run_date,
                                           run.ingested_at)
        else:
            n, run.fingerprints[name] = bronze.ingest_mongo(spark, cfg, name, run.batch_id,
                                                            run.run_date, run.ingested_at)
            mark = None
            # a MongoDB batch is a full snapshot: its keys, typed as silver types them, are
            # the source's key set
            source_keys = delta.read(spark, cfg, f"bronze.{name}").filter(
                F.col("_batch_id") == run.batch_id).transform(silver.TYPED[name]).select(*spec.key)
        run.summary[f"bronze.{name}"] = n
        result, gone = reconcile.reconcile(spark, cfg, name, spec, run.batch_id, source_keys,
                                           recover=recover,
                                           allow_mass_delete=run.allow_mass_delete)
        result.watermark = mark
        if result.recovered:
            run.summary[f"bronze.{name} (recovered)"] = result.recovered
        if gone is not None:
            run.summary[f"bronze.{name}_deletes"] = bronze.record_deletes(
                spark, cfg, name, run.batch_id, run.run_date, run.ingested_at, gone,
                result.deleted)
            gone.unpersist()
        return result

    # independent tables: two at a time (see ecomlake.spark.in_parallel)
    results = in_parallel(ingest, tables)
    reconcile.record(spark, cfg, results)


def silver_build(name: str, spec) -> tuple[str, list[str], list[str], dict]:
    """(build name, tables read, tables written, what else shapes it) of silver.<name>."""
    reads = [f"bronze.{name}", f"bronze.{name}_deletes"]
    writes = [f"silver.{name}", f"silver.{name}_quarantine"] + \
        ([f"silver.{name}_history"] if spec.history else [])
    return f"silver.{name}", reads, writes, {"spec": repr(spec), "code": SILVER_CODE}


def stage_silver(spark, cfg: Config, run: Run) -> None:
    records = reconcile.batch_records(spark, cfg, run.batch_id)   # bronze's counts, read once

    def build(item):
        name, spec = item
        if not delta.exists(spark, cfg, f"bronze.{name}"):
            log.warning("silver.%s: no bronze table yet, skipped", name)
            return
        what, reads, writes, shape = silver_build(name, spec)
        if builds.up_to_date(spark, cfg, what, reads, writes, force=run.full_refresh,
                             batch=run.batch_id, **shape):
            run.summary[f"silver.{name} (unchanged: skipped)"] = "-"
        elif empty_batch(spark, cfg, name, run, writes):
            log.info("silver.%s: batch %s brought no rows and no deletions: nothing to merge "
                     "(no commit)", name, run.batch_id)
            run.summary[f"silver.{name} (empty batch: skipped)"] = "-"
        else:
            counts = silver.build_table(spark, cfg, name, spec, run.batch_id, run.run_date)
            builds.record(spark, cfg, what, reads, writes, batch=run.batch_id, **shape)
            run.summary[f"silver.{name}_quarantine (this batch)"] = counts.quarantined
        n_silver = delta.read(spark, cfg, f"silver.{name}").count()
        run.summary[f"silver.{name}"] = n_silver
        # every run proves its completeness, a skipped build too
        reconcile.verify_silver(spark, cfg, name, spec, run.batch_id, n_silver, records)

    # independent tables: two at a time (see ecomlake.spark.in_parallel)
    in_parallel(build, list(load_tables().items()))


def empty_batch(spark, cfg: Config, name: str, run: Run, writes: list[str]) -> bool:
    """Whether this run's bronze batch of `name` holds no row and no deletion, and silver's
    tables exist already (a first run creates them, empty or not)."""
    partition = ("_ingest_date", run.run_date)
    return (not run.full_refresh and all(delta.exists(spark, cfg, t) for t in writes)
            and not delta.has_batch(spark, cfg, f"bronze.{name}", run.batch_id, partition)
            and not delta.has_batch(spark, cfg, f"bronze.{name}_deletes", run.batch_id,
                                    partition))


# What gold reads; it writes every gold table.
GOLD_READS = ["silver.sales_data", "silver.electronics", "silver.customers_history",
              "silver.electronics_history", "silver.inventory"]


def stage_gold(spark, cfg: Config, run: Run) -> None:
    writes = [f"gold.{name}" for name in gold.GOLD_TABLES]
    shape = gold_shape()
    if builds.up_to_date(spark, cfg, "gold", GOLD_READS, writes, force=run.full_refresh,
                         **shape):
        run.summary["gold (unchanged: skipped)"] = "-"
        return
    for name, n in gold.build(spark, cfg).items():
        run.summary[f"gold.{name}"] = n
    builds.record(spark, cfg, "gold", GOLD_READS, writes, **shape)


def stage_publish(spark, cfg: Config, run: Run) -> None:
    """Each warehouse gets the gold tables that changed since its last publish, in one
    transaction (see ecomlake.publish); unchanged ones are skipped, --republish forces them.
    The warehouses are independent: both are published at the same time, and a failure of one
    stops the job once the other is done."""
    names = run.tables or tuple(gold.GOLD_TABLES)
    tables = [read_gold(spark, cfg, name, gold.GOLD_TABLES.get(name, [])) for name in names]

    def publish_to(target):
        wh = warehouse(target, cfg)
        results = publish_tables(spark, wh, tables, run.batch_id,
                                 republish=run.republish or run.full_refresh)
        out = {f"{target}: {wh.qualified(result.table)}": result.rows for result in results}
        for obj in (results[0].derived if results else ()):
            out[f"{target}: {wh.qualified(obj)} (refreshed)"] = "-"
        if not results:
            out[f"{target}: (gold unchanged, nothing published)"] = 0
        return out

    for out in in_parallel(publish_to, list(run.targets)):
        run.summary.update(out)


def stage_analytics(spark, cfg: Config, run: Run) -> None:
    from ecomlake import analytics
    reads, writes = analytics.READS, [f"gold.{name}" for name in analytics.WRITES]
    shape = {"inputs": analytics.input_files(spark, cfg),
             "code": builds.code_hash(analytics)}
    if builds.up_to_date(spark, cfg, "analytics", reads, writes, force=run.full_refresh,
                         **shape):
        run.summary["analytics (unchanged: skipped)"] = "-"
        return
    for name, n in analytics.run(spark, cfg).items():
        run.summary[f"gold.{name}"] = n
    builds.record(spark, cfg, "analytics", reads, writes, **shape)


def stage_weblog(spark, cfg: Config, run: Run) -> None:
    from ecomlake import weblog
    for what, n in weblog.run(spark, cfg, run.batch_id, run.run_date, run.ingested_at).items():
        run.summary[f"access log: {what}"] = n


def stage_maintenance(spark, cfg: Config, run: Run) -> None:
    from ecomlake import maintenance
    for name, n in maintenance.run(spark, cfg).items():
        run.summary[f"{name} (files compacted)"] = n


STAGES = {"bronze": stage_bronze, "silver": stage_silver, "gold": stage_gold,
          "analytics": stage_analytics, "publish": stage_publish, "weblog": stage_weblog,
          "maintenance": stage_maintenance}


def preflight(spark_free_cfg: Config, stages: list[str], targets: tuple[str, ...],
              sources: tuple[str, ...] = ("mysql", "mongo")) -> None:
    """Check every server the stages will touch before anything is written, so a server that
    is down or a wrong password stops the run with every table as it was."""
    if "bronze" in stages:
        if "mysql" in sources:
            mysql.check(spark_free_cfg)
        if "mongo" in sources:
            mongo.check(spark_free_cfg)
    if "publish" in stages:
        for target in targets:
            if target == "postgres":   # DB2 is checked in the JVM once Spark is up
                warehouse(target, spark_free_cfg).connect().close()


def check_db2(spark, cfg: Config, stages: list[str], targets: tuple[str, ...]) -> None:
    if "publish" in stages and "db2" in targets:
        warehouse("db2", cfg).connect(spark).close()


def run_stages(spark, cfg: Config, run: Run, stages: list[str]) -> dict:
    check_db2(spark, cfg, stages, run.targets)
    for name in stages:
        t0 = time.monotonic()
        log.info("stage %s: starting (run date %s)", name, run.run_date)
        STAGES[name](spark, cfg, run)
        log.info("stage %s: done in %.1fs", name, time.monotonic() - t0)
    return run.summary
