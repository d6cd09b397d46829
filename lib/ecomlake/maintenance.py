"""Lake maintenance: OPTIMIZE (compact small files) and VACUUM (remove files older than the
configured retention) on every Delta table of the lake."""
from __future__ import annotations

import logging

from delta.tables import DeltaTable

from ecomlake.config import Config
from ecomlake.io import delta

log = logging.getLogger(__name__)
LAYERS = ("bronze", "silver", "gold")


def tables(spark, cfg: Config) -> list[str]:
    jvm = spark._jvm
    root = jvm.org.apache.hadoop.fs.Path(cfg.lake_root)
    fs = root.getFileSystem(spark._jsc.hadoopConfiguration())
    names = []
    for layer in LAYERS:
        layer_path = jvm.org.apache.hadoop.fs.Path(f"{cfg.lake_root}/{layer}")
        if not fs.exists(layer_path):
            continue
        for status in fs.listStatus(layer_path):
            name = f"{layer}.{status.getPath().getName()}"
            if delta.exists(spark, cfg, name):
                names.append(name)
    return sorted(names)


def run(spark, cfg: Config) -> dict:
    hours = cfg.lake.vacuum_retention_hours
    done = {}
    for name in tables(spark, cfg):
        table = DeltaTable.forPath(spark, delta.path(cfg, name))
        metrics = table.optimize().executeCompaction().collect()[0]["metrics"]
        table.vacuum(hours)
        done[name] = metrics["numFilesRemoved"]
        log.info("%s: OPTIMIZE compacted %s files into %s; VACUUM kept %dh of history", name,
                 metrics["numFilesRemoved"], metrics["numFilesAdded"], hours)
    return done
