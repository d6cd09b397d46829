"""The lake from a notebook: a Spark session configured like the jobs, and the tables by name.

    from ecomlake.explore import Lake
    lake = Lake()                          # conf/local.yaml (or $ECOMLAKE_ENV), $ECOMLAKE_OVERRIDES
    lake.tables()                          # {"bronze": [...], "silver": [...], "gold": [...]}
    lake.gold("FactSales")                 # a DataFrame (same as lake.table("gold.FactSales"))
    lake.sql("SELECT * FROM FactSales")    # gold tables are temp views under their own names

The configuration is the jobs' own (`ecomlake.config.load_config`, validated the same way) and
the session is the jobs' own (`ecomlake.spark.session`: Delta, jars, UTC, loopback). To look at
another lake, set ECOMLAKE_OVERRIDES='{lake: {root: /path/to/lake}}' before starting Jupyter,
or pass `Lake(overrides={"lake": {"root": "/path/to/lake"}})`.
"""
from __future__ import annotations

from typing import Mapping

from ecomlake.config import Config, load_config
from ecomlake.io import delta

LAYERS = ("bronze", "silver", "gold")


class Lake:
    """The lake of one configuration, opened with a Spark session configured like the jobs."""

    def __init__(self, env: str | None = None, overrides: Mapping | None = None,
                 app_name: str = "ecomlake-notebook", spark=None):
        from ecomlake.spark import session

        self.cfg: Config = load_config(env, overrides)
        self.spark = spark if spark is not None else session(self.cfg, app_name)
        self.views: set[str] = set()      # temp views registered by this object

    def __repr__(self) -> str:
        return f"Lake(env={self.cfg.env!r}, root={self.root!r})"

    @property
    def root(self) -> str:
        return self.cfg.lake_root

    def path(self, name: str) -> str:
        """Where `<layer>.<table>` lives."""
        return delta.path(self.cfg, name)

    def table(self, name: str):
        """The Delta table `<layer>.<table>` (e.g. "gold.FactSales") as a DataFrame."""
        if "." not in name:
            raise ValueError(f"name a table as <layer>.<table>, e.g. gold.{name}")
        if not delta.exists(self.spark, self.cfg, name):
            have = ", ".join(self.tables().get(name.split(".", 1)[0], [])) or "none"
            raise LookupError(f"no Delta table {name} at {self.path(name)} (there: {have}); "
                              "has the pipeline run against this lake?")
        return delta.read(self.spark, self.cfg, name)

    def gold(self, table: str):
        return self.table(f"gold.{table}")

    def tables(self, layer: str | None = None) -> dict[str, list[str]]:
        """The Delta tables present in each layer (or in `layer` only), sorted by name.
        Listed through Hadoop's FileSystem, so an HDFS lake (env yarn) lists too."""
        jvm = self.spark._jvm
        conf = self.spark._jsc.hadoopConfiguration()
        found = {}
        for lay in ([layer] if layer else LAYERS):
            folder = jvm.org.apache.hadoop.fs.Path(f"{self.root.rstrip('/')}/{lay}")
            fs = folder.getFileSystem(conf)
            names = []
            if fs.exists(folder):
                for status in fs.listStatus(folder):
                    if status.isDirectory() and fs.exists(
                            jvm.org.apache.hadoop.fs.Path(status.getPath(), "_delta_log")):
                        names.append(status.getPath().getName())
            found[lay] = sorted(names, key=str.lower)
        return found

    def register(self, layer: str = "gold") -> list[str]:
        """Make every table of `layer` a temp view under its own name (FactSales, DimDate, ...);
        returns the names. Call it again to see what a later pipeline run wrote."""
        names = self.tables(layer)[layer]
        for name in names:
            self.table(f"{layer}.{name}").createOrReplaceTempView(name)
        self.views.update(names)
        return names

    def sql(self, query: str):
        """Spark SQL over the gold tables, named as in the course (registered on first use)."""
        if not self.views:
            self.register("gold")
        return self.spark.sql(query)

    def summary(self, layer: str = "gold"):
        """A pandas table of `layer`: each table's rows, columns and Delta version."""
        import pandas as pd

        rows = []
        for name in self.tables(layer)[layer]:
            full = f"{layer}.{name}"
            df = self.table(full)
            rows.append({"table": name, "rows": df.count(), "columns": len(df.columns),
                         "version": delta.version(self.spark, self.cfg, full)})
        return pd.DataFrame(rows, columns=["table", "rows", "columns", "version"])

    def stop(self) -> None:
        self.spark.stop()
