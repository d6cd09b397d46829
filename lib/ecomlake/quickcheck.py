"""The quick check: a rerun of the last pipeline run's date, with nothing changed since that run
ended, is decided before Spark starts, in seconds, with no Delta commit and no warehouse write.

Without it such a rerun still costs a Spark session and a pass over every table: bronze's
reconciliation, silver's and gold's build records, publish's publish_log (52.9 s at scale 1,
0.42 of a full run; issue 15). Every figure the quick check compares comes from a server or
from the lake's file listings; none needs Spark.

At the end of a successful `pipeline` run, `record` writes <lake>/_state/pipeline.json:
- the batch (run date) and what shapes the outputs: the code, the table rules, the reference
  lists, the source and warehouse addresses, analytics' input files;
- the latest version of every Delta table in the lake, with its commit file's modification
  time (a table rebuilt from scratch to the same version differs), taken before the figures
  below and checked again after them: a lake that moved meanwhile gets no record; and gold's
  table ids (publish_log names them);
- per MySQL table: the lake's key set (silver + quarantine-only keys) as the count, CRC32 sum
  and MD5 xor that reconcile's key ranges use, and the high-water mark the batch read up to;
- per MongoDB collection: the documents' fingerprint, taken just before and just after bronze
  read them (none when the two differ).

`check` finds the rerun unchanged only when all of these hold:
- same batch, same shape;
- every Delta table at its recorded version and commit time (a listing of each _delta_log);
- per MySQL table, the source's key figures (one aggregate inside MySQL) equal the lake's: the
  source holds exactly the lake's keys, so nothing is missing and nothing was deleted (the run's
  completeness, proven again); and no row is stamped after the mark: every INSERT and UPDATE
  stamps `updated_at` with the server's clock, and no transaction open at the mark can stamp
  at or before it (mysql.high_water_mark), so every row's content is what the lake read;
- per MongoDB collection, the fingerprint of its documents now equals the recorded one;
- per target warehouse, every gold table to publish exists, publish_log's last row for it names
  the gold version (and table id) the lake holds, and no staging table is left over.
Anything else, or any doubt (a record missing or unreadable, a figure that cannot be had), runs
the pipeline the full way, whose stages skip what did not change by their own records. A hash
collision aside (the same assumption as the key ranges), the quick check says "unchanged" only
where the full way would have made no commit and no write. `--full-check` takes the full way.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

from ecomlake.config import Config, load_tables

log = logging.getLogger(__name__)

STATE_FILE = "pipeline.json"
STAGES = ["bronze", "silver", "gold", "analytics", "publish"]   # the `pipeline` job's
LAYERS = ("bronze", "silver", "gold")


class JvmOnly:
    """What ecomlake.io.delta's file helpers and the DB2 connection use of a SparkSession (the
    JVM and its Hadoop configuration), without starting Spark: under spark-submit the driver
    JVM is already running; elsewhere pyspark starts one. The Hadoop configuration is Spark's
    (spark.hadoop.* from the job's --conf), so a lake on HDFS is listed as the jobs see it."""

    def __init__(self):
        from pyspark import SparkContext

        SparkContext._ensure_initialized()
        self._jvm = SparkContext._jvm
        util = self._jvm.org.apache.spark.deploy.SparkHadoopUtil.get()
        self._hadoop = util.newConfiguration(self._jvm.org.apache.spark.SparkConf())
        self._jsc = self

    def hadoopConfiguration(self):
        return self._hadoop


def _state_file(cfg: Config) -> str:
    from ecomlake.builds import STATE_DIR

    return f"{cfg.lake_root.rstrip('/')}/{STATE_DIR}/{STATE_FILE}"


def shape(jvm, cfg: Config) -> str:
    """A hash of what shapes the pipeline's outputs besides the data (see the module doc)."""
    from ecomlake import analytics, bronze, builds, pipeline, publish, reconcile
    from ecomlake.io import delta
    from ecomlake.io.warehouse import base, db2, postgres

    parts = {
        "silver": pipeline.SILVER_CODE, "gold": pipeline.gold_shape(),
        "tables": repr(load_tables()),
        "analytics": [builds.code_hash(analytics), analytics.input_files(jvm, cfg)],
        "stages": builds.code_hash(bronze, reconcile, pipeline, publish, delta, base, db2,
                                   postgres),
    }
    # No server address: the check compares the sources and warehouses the config names now
    # with the lake, whatever the record was taken against.
    return builds.text_hash(json.dumps(parts, sort_keys=True, default=repr))


def lake_versions(jvm, cfg: Config) -> dict[str, list[int]]:
    """Every Delta table under the lake's layers -> [its latest version, that commit file's
    modification time] (directory listings)."""
    from ecomlake.io import delta

    out = {}
    for layer in LAYERS:
        fs, folder = delta._fs(jvm, f"{cfg.lake_root.rstrip('/')}/{layer}")
        if not fs.exists(folder):
            continue
        for status in fs.listStatus(folder):
            name = f"{layer}.{status.getPath().getName()}"
            if status.isDirectory() and (latest := delta.latest_commit(jvm, cfg, name)):
                out[name] = list(latest)
    return out


def record(spark, cfg: Config, run) -> bool:
    """After a successful `pipeline` run: write the record `check` compares a rerun with.
    Returns whether it was written (not when the lake moved while the figures were taken)."""
    from ecomlake import gold, reconcile
    from ecomlake.io import delta
    from ecomlake.spark import in_parallel

    versions = lake_versions(spark, cfg)
    records = reconcile.batch_records(spark, cfg, run.batch_id)
    # gold's table ids, as publish_log names them (from the first commit, or the table's
    # detail once log clean-up removed it): the check needs no Spark to know them
    ids = {name: delta.table_id(spark, cfg, f"gold.{name}") for name in gold.GOLD_TABLES
           if f"gold.{name}" in versions}
    state = {"batch": run.batch_id, "shape": shape(spark, cfg), "lake": versions,
             "gold_ids": ids, "mysql": {}, "mongo": dict(run.fingerprints)}

    def figures(item):
        name, spec = item
        mark = records[name]["watermark"] if name in records else None
        if not spec.incremental or mark is None:
            log.info("quick check: %s has no high-water mark for batch %s: a rerun takes the "
                     "full check", name, run.batch_id)
            return
        state["mysql"][name] = {**reconcile.lake_key_figures(spark, cfg, name, spec),
                                "mark": mark.isoformat(sep=" ")}

    in_parallel(figures, [(n, s) for n, s in load_tables().items() if s.source == "mysql"])
    if lake_versions(spark, cfg) != versions:
        log.warning("quick check: the lake changed while the record was taken (another job?): "
                    "no record; a rerun takes the full check")
        delta.delete_file(spark, _state_file(cfg))
        return False
    delta.write_text(spark, _state_file(cfg), json.dumps(state, sort_keys=True))
    log.info("quick check: recorded batch %s (%d lake tables, %d MySQL key sets, %d MongoDB "
             "fingerprints) in %s", run.batch_id, len(versions), len(state["mysql"]),
             len(state["mongo"]), _state_file(cfg))
    return True


@dataclass
class Verdict:
    unchanged: bool
    why: str = ""                                    # why not, when not
    proven: list[str] = field(default_factory=list)  # what was checked, when unchanged


def check(jvm, cfg: Config, run) -> Verdict:
    """Whether rerunning `run` would change nothing (see the module doc); logs what it found."""
    from ecomlake.io import delta
    from ecomlake.spark import in_parallel

    text = delta.read_text(jvm, _state_file(cfg))
    try:
        state = json.loads(text) if text is not None else None
    except ValueError:
        state = None
    if state is None:
        return Verdict(False, "no record of an earlier complete run")
    if state.get("batch") != run.batch_id:
        return Verdict(False, f"the last complete run was batch {state.get('batch')}, "
                              f"not {run.batch_id}")
    if state.get("shape") != shape(jvm, cfg):
        return Verdict(False, "the code, the rules or the configuration changed")
    now = lake_versions(jvm, cfg)
    if now != state.get("lake"):
        moved = sorted(t for t in set(now) | set(state.get("lake", {}))
                       if now.get(t) != state.get("lake", {}).get(t))
        return Verdict(False, f"lake tables changed since: {', '.join(moved[:5])}"
                              + (f" and {len(moved) - 5} more" if len(moved) > 5 else ""))
    proven = [f"{len(now)} lake tables at the versions the run left"]

    def source(item) -> tuple[str, str]:   # (why not, or "", what was proven)
        name, spec = item
        if spec.source == "mysql":
            return _mysql_unchanged(cfg, name, spec, state["mysql"].get(name))
        return _mongo_unchanged(cfg, name, state["mongo"].get(name))

    # Each figure is computed by its server (MySQL's aggregates, FerretDB's scan): asked all
    # at once, the check costs the slowest of them, not their sum (scale 10: ~10 s each).
    found = in_parallel(source, list(load_tables().items()), workers=4)
    for why, what in found:
        if why:
            return Verdict(False, why)
        proven.append(what)
    for target in run.targets:
        why = _published(jvm, cfg, target, run, state, proven)
        if why:
            return Verdict(False, why)
    return Verdict(True, proven=proven)


def _mysql_unchanged(cfg: Config, name: str, spec, lake: dict | None) -> tuple[str, str]:
    import datetime as dt

    from ecomlake.io import mysql

    if lake is None:
        return f"{name}: no key figures recorded", ""
    source = list(mysql.key_summary(cfg, name, spec.key))
    if source != lake["keys"]:
        return (f"{name}: the source's keys differ from the lake's ({source[0]} keys against "
                f"silver {lake['silver']} + quarantine-only {lake['quarantine_only']})"), ""
    mark = dt.datetime.fromisoformat(lake["mark"])
    later = mysql.stamped_after(cfg, name, spec.watermark, mark)
    if later:
        return f"{name}: {later} rows stamped after the mark {mark}", ""
    return "", (f"{name}: source keys {source[0]} = silver {lake['silver']} + quarantine-only "
                f"{lake['quarantine_only']} (equal key figures); no row stamped after the "
                f"mark {mark}")


def _mongo_unchanged(cfg: Config, name: str, fingerprint: str | None) -> tuple[str, str]:
    from ecomlake.io import mongo

    if fingerprint is None:
        return f"{name}: no fingerprint of the documents bronze read", ""
    if mongo.scan(cfg, name, fields=False)[1] != fingerprint:
        return f"{name}: documents changed since bronze read them", ""
    return "", f"{name}: the {fingerprint.split(':')[0]} documents bronze read, unchanged"


def _published(jvm, cfg: Config, target: str, run, state: dict, proven: list) -> str:
    """Whether `target` holds every gold table to publish at the version the lake holds (the
    lake is as recorded: the record's versions and table ids are the lake's)."""
    from ecomlake import gold
    from ecomlake.io.warehouse import warehouse
    from ecomlake.publish import leftover_staging, published

    names = list(run.tables or gold.GOLD_TABLES)
    held = {}
    for name in names:
        if f"gold.{name}" not in state["lake"] or name not in state.get("gold_ids", {}):
            return f"gold.{name}: not in the record"
        held[name] = (state["lake"][f"gold.{name}"][0], state["gold_ids"][name])
    wh = warehouse(target, cfg)
    conn = wh.connect(jvm)
    try:
        last = wh.last_published(conn, names)
        for name in names:
            if not published(wh, conn, last, name, *held[name]):
                return (f"{target}: gold.{name} v{held[name][0]} is not what publish_log says was "
                        "last published, or its table is missing")
        leftovers = leftover_staging(wh, conn, names)
        if leftovers:
            return f"{target}: staging table {leftovers[0]} was left by an earlier run"
    finally:
        conn.close()
    proven.append(f"{target}: {len(names)} gold tables published at the versions the lake holds")
    return ""
