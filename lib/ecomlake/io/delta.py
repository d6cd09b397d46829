"""Delta Lake tables: names `<layer>.<table>` map to <lake.root>/<layer>/<table>. Every read and
write of the lake goes through here."""
from __future__ import annotations

import json
import logging
import re

from delta.tables import DeltaTable
from pyspark.sql import functions as F
from pyspark.sql import types as T

from ecomlake.config import Config

log = logging.getLogger(__name__)


def path(cfg: Config, name: str) -> str:
    layer, table = name.split(".", 1)
    return f"{cfg.lake_root.rstrip('/')}/{layer}/{table}"


def exists(spark, cfg: Config, name: str) -> bool:
    return DeltaTable.isDeltaTable(spark, path(cfg, name))


def read(spark, cfg: Config, name: str):
    return spark.read.format("delta").load(path(cfg, name))


def version(spark, cfg: Config, name: str) -> int:
    return DeltaTable.forPath(spark, path(cfg, name)).history(1).collect()[0]["version"]


COMMIT_FILE = re.compile(r"^(\d{20})\.json$")


def _fs(spark, location: str):
    p = spark._jvm.org.apache.hadoop.fs.Path(location)
    return p.getFileSystem(spark._jsc.hadoopConfiguration()), p


def latest_version(spark, cfg: Config, name: str) -> int | None:
    """The latest committed version of table `name` (None: no table), from the commit files'
    names in its _delta_log: a directory listing, no replay of the log (version() costs
    0.3-1 s a table on this machine, this a few milliseconds)."""
    latest = latest_commit(spark, cfg, name)
    return latest[0] if latest else None


def latest_commit(spark, cfg: Config, name: str) -> tuple[int, int] | None:
    """(version, modification time in ms) of table `name`'s latest commit file, or None: the
    same listing as latest_version. The time tells a table rebuilt from scratch up to the same
    version from the one it replaced."""
    fs, log_dir = _fs(spark, f"{path(cfg, name)}/_delta_log")
    if not fs.exists(log_dir):
        return None
    commits = [(int(m.group(1)), s.getModificationTime()) for s in fs.listStatus(log_dir)
               if (m := COMMIT_FILE.match(s.getPath().getName()))]
    return max(commits) if commits else None


def read_text(spark, location: str) -> str | None:
    """The text of a file beside the lake's tables (local disk or HDFS), or None if absent."""
    fs, p = _fs(spark, location)
    if not fs.exists(p):
        return None
    stream = fs.open(p)
    try:
        return spark._jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8")
    finally:
        stream.close()


def write_text(spark, location: str, text: str) -> None:
    """Replace a small file beside the lake's tables: written to a temporary file, then renamed
    (rename does not replace on HDFS, so the old file goes first: a crash in between leaves
    no file, never a half-written one)."""
    fs, p = _fs(spark, location)
    tmp = spark._jvm.org.apache.hadoop.fs.Path(f"{location}.tmp")
    out = fs.create(tmp, True)
    try:
        out.write(bytearray(text.encode()))
    finally:
        out.close()
    fs.delete(p, False)
    fs.rename(tmp, p)


def delete_file(spark, location: str) -> None:
    """Remove a small file beside the lake's tables, if it is there."""
    fs, p = _fs(spark, location)
    fs.delete(p, False)


def file_status(spark, location: str) -> str:
    """A file's or folder's total size and modification time, or "missing"."""
    fs, p = _fs(spark, location)
    if not fs.exists(p):
        return "missing"
    return (f"{fs.getContentSummary(p).getLength()} bytes, "
            f"modified {fs.getFileStatus(p).getModificationTime()}")


def commit_action(spark, cfg: Config, name: str, version: int, action: str) -> dict | None:
    """The `action` (metaData, commitInfo, ...) of commit `version` of table `name`, read from
    that commit's file in the Delta log (no replay of the log); None when the file or the
    action is not there (log clean-up removes old commits)."""
    text = read_text(spark, f"{path(cfg, name)}/_delta_log/{version:020d}.json")
    for line in (text or "").splitlines():
        found = json.loads(line).get(action) if line.strip() else None
        if found is not None:
            return found
    return None


def table_id(spark, cfg: Config, name: str) -> str:
    """The table's id (set when it was created; a table rebuilt from scratch gets a new one),
    from the metaData action of its first commit, or from DESCRIBE DETAIL once log clean-up
    has removed that commit."""
    meta = commit_action(spark, cfg, name, 0, "metaData")
    if meta is not None:
        return meta["id"]
    return DeltaTable.forPath(spark, path(cfg, name)).detail().select("id").collect()[0][0]


def written(spark, cfg: Config, name: str) -> tuple[int, int]:
    """(version, rows written) of the table's last commit: the row count of a write without
    reading the table again, from that commit's commitInfo (a file read; history(1) replays
    the log, 0.15 s a table)."""
    version = latest_version(spark, cfg, name)
    info = commit_action(spark, cfg, name, version, "commitInfo") or {}
    return version, int((info.get("operationMetrics") or {}).get("numOutputRows", 0))


def replace_batch(df, cfg: Config, name: str, batch_id: str, partition_by: str,
                  partition_value) -> int | None:
    """Append one batch to an append-only table partitioned by `partition_by`, where every row
    of the batch has `partition_value` (bronze: the run date, which a run's batch id is;
    quarantine: the batch id). Rerunning the same batch replaces it (replaceWhere on _batch_id),
    so a retried run never duplicates rows, and a rerun that brings exactly the rows already
    there (audit columns aside) makes no commit at all: it returns that batch's row count then,
    and None when it committed. Only a rerun pays for replaceWhere: it checks every written row
    against the predicate and looks for the batch's old files, which measured 1.3-1.5 s more
    than a plain append for 1M rows (benchmarks/)."""
    spark = df.sparkSession
    if not has_batch(spark, cfg, name, batch_id, (partition_by, partition_value)):
        df.write.format("delta").partitionBy(partition_by).mode("append").save(path(cfg, name))
        return None
    df = df.persist()   # read once (a JDBC or MongoDB read), compared, then perhaps written
    try:
        old = read(spark, cfg, name).filter((F.col(partition_by) == F.lit(partition_value))
                                            & (F.col("_batch_id") == batch_id))
        new = content_hash(df)
        if new == content_hash(old):
            log.info("%s: batch %s is there from an earlier attempt with exactly these %d rows: "
                     "kept (no commit)", name, batch_id, new[0])
            return new[0]
        log.info("%s: batch %s is there from an earlier attempt: replacing it", name, batch_id)
        (df.write.format("delta").partitionBy(partition_by).mode("overwrite")
         .option("replaceWhere", f"_batch_id = '{batch_id}'").save(path(cfg, name)))
        return None
    finally:
        df.unpersist()


# Audit columns differ between two reads of the same rows; they are no change of content.
NOT_CONTENT = ("_ingested_at", "_source")


def content_hash(df) -> tuple:
    """(rows, sum and xor of a 64-bit hash of each row's content): equal for two frames with the
    same multiset of rows, whatever their order, audit columns aside."""
    # xxhash64 takes plain columns as they are; maps (which it refuses) and other nested
    # values go in as their JSON text. It skips NULLs, so which columns are NULL goes in too:
    # (NULL, 1) and (1, NULL) must not hash alike.
    fields = [f for f in df.schema.fields if f.name not in NOT_CONTENT]
    nulls = F.concat(*[F.col(f"`{f.name}`").isNull().cast("int").cast("string") for f in fields])
    row = F.xxhash64(nulls, *[F.to_json(F.col(f"`{f.name}`")) if isinstance(
        f.dataType, (T.MapType, T.ArrayType, T.StructType)) else F.col(f"`{f.name}`")
        for f in fields])
    r = df.agg(F.count(F.lit(1)), F.sum(row.cast("decimal(38,0)")), F.bit_xor(row)).collect()[0]
    return tuple(r)


def has_batch(spark, cfg: Config, name: str, batch_id: str, partition=None) -> bool:
    """Whether table `name` holds rows of `batch_id`. With `partition` = (column, value) that
    all of the batch's rows have, a table with no directory for that value is known not to:
    Delta writes a partition's files under <table>/<column>=<value>/. That file-system check
    needs no replay of the Delta log (0.6-1 s per table after a commit, on this machine); when
    the directory is there (perhaps only with files of older versions), the table answers."""
    if not exists(spark, cfg, name):
        return False
    if partition is not None:
        column, value = partition
        if re.fullmatch(r"[\w.-]+", str(value)):   # a name Hive-style partitioning does not escape
            folder = spark._jvm.org.apache.hadoop.fs.Path(f"{path(cfg, name)}/{column}={value}")
            if not folder.getFileSystem(spark._jsc.hadoopConfiguration()).exists(folder):
                return False
    return not read(spark, cfg, name).filter(F.col("_batch_id") == batch_id).isEmpty()


def holds_no_rows(spark, cfg: Config, name: str) -> bool:
    """True when table `name` surely holds no row: its folder has nothing beside _delta_log
    (every data file, of any version, lies under the table's folder until VACUUM removes it).
    A directory listing, no Spark job; False means "perhaps rows": ask the table."""
    fs, p = _fs(spark, path(cfg, name))
    return fs.exists(p) and all(s.getPath().getName() == "_delta_log" for s in fs.listStatus(p))


def overwrite(df, cfg: Config, name: str) -> None:
    """Replace a table's content in one commit (readers see the old or the new version)."""
    (df.write.format("delta").mode("overwrite").option("overwriteSchema", "true")
     .save(path(cfg, name)))


def merge(spark, cfg: Config, name: str, source, keys: list[str], *, deleted_keys=None,
          newer: str | None = None, checks: dict[str, str] | None = None) -> dict[str, int]:
    """Upsert `source` (already one row per key) into table `name` and delete the rows whose key
    is in `deleted_keys`, in one MERGE (one scan of the table, one commit). With `newer` (a
    column such as updated_at), a row is never replaced by one whose `newer` is older.
    A table that does not exist yet is created with the CHECK constraints `checks` (name ->
    SQL) in its first commit; an existing one gets those it lacks (ensure_checks). Source rows
    the MERGE would leave as they are (equal to the table's row, audit columns aside, or older
    by `newer`) are dropped before it, so a MERGE that changes nothing makes no commit.
    Returns the rows inserted, updated and deleted."""
    if not exists(spark, cfg, name):
        # The constraints go into the creating commit's metadata (Delta checks the first rows
        # against them too): adding them afterwards costs a commit and a scan each, ~1.4 s a
        # constraint on this machine, 10 s for a silver table with 7 rules.
        (source.write.format("delta")
         .options(**{f"delta.constraints.{c.lower()}": sql for c, sql in (checks or {}).items()})
         .save(path(cfg, name)))
        n = source.count()
        return {"inserted": n, "updated": 0, "deleted": 0}
    if checks:
        ensure_checks(spark, cfg, name, checks)
    columns = source.columns
    flagged = source.select("*", F.lit(False).alias("_delete"))
    if deleted_keys is not None:
        # a key both deleted and in the batch: the key set was read after the batch, so the
        # deletion wins (and a target row must not match two source rows)
        gone = deleted_keys.select(*keys).distinct()
        flagged = flagged.join(gone, keys, "left_anti").unionByName(gone.select(
            *[F.col(c) if c in keys else F.lit(None).cast(source.schema[c].dataType).alias(c)
              for c in columns], F.lit(True).alias("_delete")))
    on = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in keys)
    changed = " OR ".join(f"NOT (t.`{c}` <=> s.`{c}`)" for c in columns
                       if c not in keys and not c.startswith("_"))  # audit columns alone are no change
    values = {f"`{c}`": f"s.`{c}`" for c in columns}
    update = f"NOT s._delete AND ({changed})" if changed else "NOT s._delete"
    if newer:
        update += f" AND coalesce(s.`{newer}` >= t.`{newer}`, true)"
    # Drop the source rows the MERGE would leave as they are (a row equal to silver's, or older
    # than it). Without deletion vectors a MERGE rewrites every file holding a matched row,
    # changed or not, and commits; with only changing rows left, a MERGE that changes nothing
    # matches nothing and makes no commit (a rerun is no new version).
    target = read(spark, cfg, name).select(*columns)
    idle = (flagged.alias("s").join(target.alias("t"), F.expr(on), "inner")
            .filter(F.expr(f"NOT s._delete AND NOT ({update})"))
            .select(*[F.col(f"s.`{k}`").alias(k) for k in keys]))
    flagged = flagged.alias("s").join(idle.alias("i"), F.expr(
        " AND ".join(f"s.`{k}` <=> i.`{k}`" for k in keys)), "left_anti")
    m = (DeltaTable.forPath(spark, path(cfg, name)).alias("t")
         .merge(flagged.alias("s"), on)
         .whenMatchedDelete(condition="s._delete")
         .whenMatchedUpdate(condition=update, set=values)
         .whenNotMatchedInsert(condition="NOT s._delete", values=values))
    # execute() returns the counts of this MERGE; a MERGE that changes nothing makes no commit,
    # so the table's last commit may belong to an earlier run.
    done = m.execute().collect()[0]
    return {"inserted": int(done["num_inserted_rows"]), "updated": int(done["num_updated_rows"]),
            "deleted": int(done["num_deleted_rows"])}


def close_and_append_versions(spark, cfg: Config, name: str, versions, keys: list[str]) -> None:
    """Type 2 history in one commit: each row of `versions` (with valid_from, valid_to=NULL,
    is_current, _is_new) closes the current version of its key at its valid_from and is
    appended as the new current version."""
    staged = versions.select("*", *[F.lit(None).cast(versions.schema[k].dataType).alias(f"_mk_{k}")
                                    for k in keys])
    closers = versions.filter(~F.col("_is_new")).select(
        "*", *[F.col(k).alias(f"_mk_{k}") for k in keys])
    source = staged.unionByName(closers).drop("_is_new")
    on = " AND ".join(f"t.`{k}` = s.`_mk_{k}`" for k in keys) + " AND t.is_current"
    columns = [c for c in versions.columns if c != "_is_new"]
    (DeltaTable.forPath(spark, path(cfg, name)).alias("t")
     .merge(source.alias("s"), on)
     .whenMatchedUpdate(set={"valid_to": "s.valid_from", "is_current": "false"})
     .whenNotMatchedInsert(condition=f"s.`_mk_{keys[0]}` IS NULL",
                           values={c: f"s.`{c}`" for c in columns})
     .execute())


def close_versions(spark, cfg: Config, name: str, gone, keys: list[str], at) -> int:
    """Type 2 history: close the current version of every key in `gone` at `at` (the key was
    deleted in the source); returns how many were closed."""
    on = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in keys) + " AND t.is_current"
    done = (DeltaTable.forPath(spark, path(cfg, name)).alias("t")
            .merge(gone.select(*keys).distinct().alias("s"), on)
            .whenMatchedUpdate(set={"valid_to": F.lit(at).cast("timestamp"),
                                    "is_current": F.lit(False)})
            .execute().collect()[0])
    return int(done["num_updated_rows"])


def ensure_checks(spark, cfg: Config, name: str, checks: dict[str, str]) -> list[str]:
    """Add the CHECK constraints that `name` lacks (Delta then rejects any commit that breaks
    one); returns the names added. Existing ones are left as they are."""
    where = f"delta.`{path(cfg, name)}`"
    props = spark.sql(f"DESCRIBE DETAIL {where}").collect()[0]["properties"] or {}
    existing = {k.split(".", 2)[2] for k in props if k.startswith("delta.constraints.")}
    added = []
    for cname, sql in checks.items():
        if cname.lower() not in existing:
            spark.sql(f"ALTER TABLE {where} ADD CONSTRAINT {cname} CHECK ({sql})")
            added.append(cname)
    return added


def append(df, cfg: Config, name: str, partition_by: str) -> None:
    """A plain append to an existing partitioned table (one commit)."""
    df.write.format("delta").mode("append").partitionBy(partition_by).save(path(cfg, name))
