"""The daily web-log job (the course's process_web_log, as Spark): read the access-log lines not
read before, extract client IPs and times, drop the configured address, archive the result, and
count hits per IP and day.

Exactly once per line: `bronze.access_log_files` records, per run date, which byte range of each
input file was read (with the SHA-256 of the file's prefix up to the end of that range). A run
reads only the complete lines after the recorded end; a file whose recorded prefix changed is
reported and left alone. Nothing in a line can fail the job: a line keeps its client IP and time
when those parse, whatever follows them; a line with neither stays in bronze as `_raw`.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ecomlake.bronze import with_audit_columns
from ecomlake.config import Config
from ecomlake.io import delta

log = logging.getLogger(__name__)

# Combined log format: ip ident user [time] "method path protocol" status bytes "referrer" "agent".
# STRICT is the whole well-formed line (`_parsed`); LENIENT needs only the head (ip ident user
# [time]) and takes the request and the referrer/agent pair each only when it is whole, so a cut
# or unterminated tail costs those fields, not the line.
STRICT = (r'^(\S+) (\S+) (\S+) \[([^\]]+)\] "(\S+) (\S+) (\S+)" (\d{3}) (\d+|-)'
          r'(?: "([^"]*)" "([^"]*)")?\s*$')
LENIENT = (r'^(\S+) (\S+) (\S+) \[([^\]]*)\](?: "(\S+) (\S+) (\S+)" (\d{3}) (\d+|-))?'
           r'(?: "([^"]*)" "([^"]*)")?')
FIELDS = ["client_ip", "ident", "user", "time_raw", "method", "path", "protocol", "status",
          "bytes", "referrer", "user_agent"]
TIME_FORMAT = "dd/MMM/yyyy:HH:mm:ss Z"
FILES_TABLE = "bronze.access_log_files"


# ---------------------------------------------------------------------------- pure transforms

def parse_access_log(lines: DataFrame) -> DataFrame:
    """`value` lines (other columns pass through) -> `_raw`, `_parsed` (the whole line is
    well-formed) and typed fields, null where absent. ANSI-safe: try_to_timestamp and try_cast
    give null, never an error, on any text."""
    parts = {n: F.regexp_extract("value", LENIENT, i + 1) for i, n in enumerate(FIELDS)}
    field = lambda n: F.when(parts[n] != "", parts[n])  # noqa: E731  ("" = group absent)
    passed = [c for c in lines.columns if c != "value"]
    return lines.select(
        *passed, F.col("value").alias("_raw"), F.col("value").rlike(STRICT).alias("_parsed"),
        field("client_ip").alias("client_ip"), field("ident").alias("ident"),
        field("user").alias("user"),
        F.try_to_timestamp(field("time_raw"), F.lit(TIME_FORMAT)).alias("requested_at"),
        field("method").alias("method"), field("path").alias("path"),
        field("protocol").alias("protocol"), field("status").try_cast("int").alias("status"),
        F.when(parts["bytes"] != "-", field("bytes")).try_cast("long").alias("bytes"),
        field("referrer").alias("referrer"), field("user_agent").alias("user_agent"))


def usable() -> F.Column:
    """A line counts as a hit when its client and time are known, whatever else it holds."""
    return F.col("client_ip").isNotNull() & F.col("requested_at").isNotNull()


def is_kept(drop_ip: str) -> F.Column:
    return usable() & (F.col("client_ip") != F.lit(drop_ip))


def without_ip(ip: str):
    def transform(df: DataFrame) -> DataFrame:
        return df.filter(is_kept(ip))
    return transform


def line_counts(parsed: DataFrame, drop_ip: str) -> dict[str, int]:
    """lines, kept (without_ip's own predicate), dropped_ip, unusable, in one pass; the caller
    checks lines = kept + dropped_ip + unusable (the three predicates partition the lines)."""
    row = parsed.agg(
        F.count(F.lit(1)).alias("lines"), F.count_if(is_kept(drop_ip)).alias("kept"),
        F.count_if(usable() & (F.col("client_ip") == F.lit(drop_ip))).alias("dropped_ip"),
        F.count_if(~usable()).alias("unusable")).collect()[0]
    return row.asDict()


def to_hits_per_ip_day(requests: DataFrame) -> DataFrame:
    return (requests.groupBy(F.to_date("requested_at").alias("day"), "client_ip")
            .agg(F.count(F.lit(1)).alias("hits"), F.sum("bytes").alias("bytes"))
            .select("day", "client_ip", "hits", "bytes"))


@dataclasses.dataclass(frozen=True)
class FileState:
    """One input file as listed now, and what the lake recorded of it (None: never read)."""
    path: str
    size: int
    modified: int                      # ms since the epoch, from the file system
    recorded_to: int | None = None     # end of the bytes already read
    recorded_sha: str | None = None    # SHA-256 of bytes [0, recorded_to) when they were read
    recorded_size: int | None = None
    recorded_modified: int | None = None


def needs_prefix_check(f: FileState) -> bool:
    """Hash the recorded prefix again unless the file is exactly as recorded (same size and
    modification time): a folder of old logs is not re-read every day."""
    return f.recorded_to is not None and (f.size, f.modified) != (f.recorded_size,
                                                                  f.recorded_modified)


def file_status(f: FileState, prefix_sha: str | None) -> tuple[str, int]:
    """(status, first byte to read): new (from 0), grown or unchanged (from the recorded end),
    changed (the recorded prefix is no longer what was read: never read again)."""
    if f.recorded_to is None:
        return "new", 0
    if f.size < f.recorded_to or (prefix_sha is not None and prefix_sha != f.recorded_sha):
        return "changed", f.recorded_to
    return ("grown" if f.size > f.recorded_to else "unchanged"), f.recorded_to


# ---------------------------------------------------------------------------- file system I/O

def _fs(spark, uri: str):
    jpath = spark._jvm.org.apache.hadoop.fs.Path(uri)
    return jpath.getFileSystem(spark._jsc.hadoopConfiguration()), jpath


def list_files(spark, uri: str) -> list[tuple[str, int, int]]:
    """(path, size, modified) of the input file, or of the files in the input folder (not
    recursive; hidden `.`/`_` names skipped, as Spark's readers do)."""
    fs, jpath = _fs(spark, uri)
    out = []
    for st in fs.listStatus(jpath):
        name = st.getPath().getName()
        if st.isFile() and not name.startswith((".", "_")):
            out.append((st.getPath().toString(), st.getLen(), st.getModificationTime()))
    return sorted(out)


def prefix_sha256(spark, path: str, length: int) -> str:
    """SHA-256 of the file's first `length` bytes, computed in the JVM (no bytes through py4j)."""
    jvm = spark._jvm
    fs, jpath = _fs(spark, path)
    digest = jvm.java.security.MessageDigest.getInstance("SHA-256")
    stream = jvm.java.security.DigestInputStream(fs.open(jpath), digest)
    try:
        # IOUtils.skip reads (does not seek), so every skipped byte goes through the digest
        if jvm.org.apache.commons.io.IOUtils.skip(stream, length) != length:
            return ""                           # shorter than that now: cannot match
    finally:
        stream.close()
    return bytes(digest.digest()).hex()


def complete_end(spark, path: str, start: int, size: int, block: int = 1 << 16) -> int:
    """The offset just after the last newline in [start, size): where the complete lines end.
    An unterminated last line may still be being written; it waits for the next run."""
    fs, jpath = _fs(spark, path)
    stream = fs.open(jpath)
    try:
        end = size
        while end > start:
            lo = max(start, end - block)
            stream.seek(lo)
            chunk = bytes(spark._jvm.org.apache.commons.io.IOUtils.toByteArray(stream, end - lo))
            i = chunk.rfind(b"\n")
            if i >= 0:
                return lo + i + 1
            end = lo
        return start
    finally:
        stream.close()


def read_lines(spark, path: str, start: int, end: int) -> DataFrame:
    """The lines starting in [start, end) with their byte offsets (`_file`, `_offset`, `value`).
    Hadoop's TextInputFormat gives each line's offset; invalid UTF-8 becomes U+FFFD."""
    rdd = spark.sparkContext.newAPIHadoopFile(
        path, "org.apache.hadoop.mapreduce.lib.input.TextInputFormat",
        "org.apache.hadoop.io.LongWritable", "org.apache.hadoop.io.Text")
    rows = rdd.filter(lambda kv: start <= kv[0] < end).map(lambda kv: (path, kv[0], kv[1]))
    return spark.createDataFrame(rows, "_file string, _offset long, value string")


# ---------------------------------------------------------------------------- the job

def recorded_files(spark, cfg: Config, batch_id: str) -> dict[str, dict]:
    """Per path, the furthest range read by batches other than `batch_id`."""
    if not delta.exists(spark, cfg, FILES_TABLE):
        return {}
    rows = (delta.read(spark, cfg, FILES_TABLE).filter(F.col("_batch_id") != batch_id)
            .groupBy("path").agg(F.max_by(F.struct("bytes_to", "prefix_sha256", "size",
                                                   "modified"), "bytes_to").alias("r"))
            .collect())
    return {r["path"]: r["r"].asDict() for r in rows}


def plan(spark, cfg: Config, batch_id: str) -> list[dict]:
    """Each input file with its status and the byte range [start, end) this batch reads."""
    seen = recorded_files(spark, cfg, batch_id)
    out = []
    for path, size, modified in list_files(spark, cfg.uri(cfg.weblog.input)):
        r = seen.get(path, {})
        f = FileState(path, size, modified, r.get("bytes_to"), r.get("prefix_sha256"),
                      r.get("size"), r.get("modified"))
        sha = prefix_sha256(spark, path, f.recorded_to) if needs_prefix_check(f) else None
        status, start = file_status(f, sha)
        end = complete_end(spark, path, start, size) if status in ("new", "grown") else start
        if status == "changed":
            log.warning("weblog: %s changed within the %d bytes already read (now %d bytes): "
                        "not read again; give it a new name to have it read as a new file",
                        path, f.recorded_to, size)
        out.append({**dataclasses.asdict(f), "status": status, "start": start, "end": end})
    return out


def ingest(spark, cfg: Config, files: list[dict], batch_id: str, run_date: dt.date,
           ingested_at: dt.datetime) -> None:
    """Bronze first, then the record of the files: a run that dies between the two left a batch
    with no record, which downstream ignores and a retry replaces."""
    audit = with_audit_columns(cfg.uri(cfg.weblog.input), batch_id, run_date, ingested_at)
    todo = [f for f in files if f["end"] > f["start"]]
    lines = None
    for f in todo:
        part = read_lines(spark, f["path"], f["start"], f["end"])
        lines = part if lines is None else lines.unionByName(part)
    if lines is None:
        lines = spark.createDataFrame([], "_file string, _offset long, value string")
    delta.replace_batch(parse_access_log(lines).transform(audit), cfg, "bronze.access_log",
                        batch_id, "_ingest_date", run_date)
    batch = delta.read(spark, cfg, "bronze.access_log").filter(F.col("_batch_id") == batch_id)
    per_file = {r["_file"]: r["n"] for r in batch.groupBy("_file").agg(F.count(F.lit(1)).alias("n"))
                .collect()}
    record = spark.createDataFrame(
        [(f["path"], f["size"], f["modified"], f["start"], f["end"],
          prefix_sha256(spark, f["path"], f["end"]), per_file.get(f["path"], 0)) for f in todo],
        "path string, size long, modified long, bytes_from long, bytes_to long, "
        "prefix_sha256 string, lines long")
    delta.replace_batch(record.transform(audit), cfg, FILES_TABLE, batch_id, "_ingest_date",
                        run_date)


def run(spark, cfg: Config, batch_id: str, run_date: dt.date, ingested_at: dt.datetime) -> dict:
    # A run date already recorded was read completely: its lines are in bronze, so a rerun
    # rebuilds from them (same tables) instead of reading the files again.
    rerun = delta.has_batch(spark, cfg, FILES_TABLE, batch_id, ("_ingest_date", run_date))
    files = []
    if not rerun:
        files = plan(spark, cfg, batch_id)
        ingest(spark, cfg, files, batch_id, run_date, ingested_at)
    batch = delta.read(spark, cfg, "bronze.access_log").filter(F.col("_batch_id") == batch_id)
    counts = line_counts(batch, cfg.weblog.drop_ip)
    if counts["lines"] != counts["kept"] + counts["dropped_ip"] + counts["unusable"]:
        raise RuntimeError(f"weblog: lines not accounted for (a bug, not the input): {counts}")
    kept = batch.transform(without_ip(cfg.weblog.drop_ip)).drop("_raw", "_parsed")
    delta.replace_batch(kept, cfg, "silver.access_log", batch_id, "_ingest_date", run_date)
    # The course's archive: the day's client IPs, one a line, as a compressed text file.
    archive = f"{cfg.uri(cfg.weblog.archive)}/run_date={run_date}"
    kept.select("client_ip").coalesce(1).write.mode("overwrite").option(
        "compression", "gzip").text(archive)
    delta.overwrite(to_hits_per_ip_day(delta.read(spark, cfg, "silver.access_log")), cfg,
                    "gold.hits_per_ip_day")

    for status in ("new", "grown", "unchanged", "changed"):
        counts[f"files_{status}"] = sum(f["status"] == status for f in files)
    counts["bytes_read"] = sum(f["end"] - f["start"] for f in files)
    counts["bytes_pending"] = sum(f["size"] - f["end"] for f in files if f["status"] != "changed")
    if rerun:
        log.info("weblog: run date %s was read before: rebuilt from its bronze batch", run_date)
    log.info("weblog: files new %(files_new)d, grown %(files_grown)d, unchanged "
             "%(files_unchanged)d, changed (not read) %(files_changed)d; %(bytes_read)d bytes "
             "read, %(bytes_pending)d bytes of unfinished last lines wait", counts)
    log.info("weblog: %(lines)d lines = %(kept)d kept + %(dropped_ip)d from the dropped address "
             "+ %(unusable)d unusable (no client or time; kept raw in bronze)", counts)
    log.info("weblog: archived client IPs to %s", archive)
    return counts
