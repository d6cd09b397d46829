"""The daily web-log job (the course's process_web_log, as Spark): parse the access log,
extract client IPs, drop the configured address, archive the result, and count hits per IP and
day. Lines that do not parse are kept with their raw text, never dropped."""
from __future__ import annotations

import datetime as dt
import logging

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ecomlake.bronze import with_audit_columns
from ecomlake.config import Config
from ecomlake.io import delta

log = logging.getLogger(__name__)

# Combined log format: ip ident user [time] "method path protocol" status bytes "referrer" "agent"
COMBINED = (r'^(\S+) (\S+) (\S+) \[([^\]]+)\] "(\S+) (\S+) (\S+)" (\d{3}) (\d+|-)'
            r'(?: "([^"]*)" "([^"]*)")?\s*$')
FIELDS = ["client_ip", "ident", "user", "time_raw", "method", "path", "protocol", "status",
          "bytes", "referrer", "user_agent"]


def parse_access_log(lines: DataFrame) -> DataFrame:
    """`value` lines -> typed columns; `_parsed` says whether the line matched."""
    parts = [F.regexp_extract("value", COMBINED, i + 1) for i in range(len(FIELDS))]
    parsed = lines.select(F.col("value").alias("_raw"), *[p.alias(n) for p, n in zip(parts, FIELDS)])
    ok = F.col("_raw").rlike(COMBINED)
    blank = lambda c: F.when(ok & (F.col(c) != ""), F.col(c))  # noqa: E731
    return parsed.select(
        "_raw", ok.alias("_parsed"),
        blank("client_ip").alias("client_ip"), blank("ident").alias("ident"),
        blank("user").alias("user"),
        F.to_timestamp(blank("time_raw"), "dd/MMM/yyyy:HH:mm:ss Z").alias("requested_at"),
        blank("method").alias("method"), blank("path").alias("path"),
        blank("protocol").alias("protocol"), blank("status").cast("int").alias("status"),
        F.when(F.col("bytes") != "-", blank("bytes")).cast("long").alias("bytes"),
        blank("referrer").alias("referrer"), blank("user_agent").alias("user_agent"))


def without_ip(ip: str):
    def transform(df: DataFrame) -> DataFrame:
        return df.filter(F.col("_parsed") & (F.col("client_ip") != F.lit(ip)))
    return transform


def to_hits_per_ip_day(requests: DataFrame) -> DataFrame:
    return (requests.groupBy(F.to_date("requested_at").alias("day"), "client_ip")
            .agg(F.count(F.lit(1)).alias("hits"), F.sum("bytes").alias("bytes"))
            .select("day", "client_ip", "hits", "bytes"))


def run(spark, cfg: Config, batch_id: str, run_date: dt.date, ingested_at: dt.datetime) -> dict:
    source = cfg.uri(cfg.weblog.input)
    lines = spark.read.text(source)
    raw = (parse_access_log(lines)
           .transform(with_audit_columns(f"file:{source}", batch_id, run_date, ingested_at)))
    delta.replace_batch(raw, cfg, "bronze.access_log", batch_id, "_ingest_date", run_date)
    batch = delta.read(spark, cfg, "bronze.access_log").filter(F.col("_batch_id") == batch_id)
    kept = batch.transform(without_ip(cfg.weblog.drop_ip)).drop("_raw", "_parsed").cache()
    try:
        counts = {"lines": batch.count(),
                  "unparsed": batch.filter(~F.col("_parsed")).count(),
                  "dropped_ip": batch.filter(F.col("client_ip") == cfg.weblog.drop_ip).count(),
                  "kept": kept.count()}
        delta.replace_batch(kept, cfg, "silver.access_log", batch_id, "_ingest_date", run_date)
        # The course's archive: the day's client IPs, one a line, as a compressed text file.
        archive = f"{cfg.uri(cfg.weblog.archive)}/run_date={run_date}"
        kept.select("client_ip").coalesce(1).write.mode("overwrite").option(
            "compression", "gzip").text(archive)
        hits = to_hits_per_ip_day(delta.read(spark, cfg, "silver.access_log"))
        delta.overwrite(hits, cfg, "gold.hits_per_ip_day")
    finally:
        kept.unpersist()
    log.info("weblog: %(lines)d lines, %(unparsed)d unparseable (kept in bronze), "
             "%(dropped_ip)d from the dropped address, %(kept)d kept", counts)
    log.info("weblog: archived client IPs to %s", archive)
    return counts
