"""Search-term analytics and yearly-sales forecasting (the course's Spark part)."""
from __future__ import annotations

import logging

from pyspark.ml.feature import VectorAssembler
from pyspark.ml.regression import LinearRegression, LinearRegressionModel
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from ecomlake.config import Config
from ecomlake.io import delta

log = logging.getLogger(__name__)
TOP_N = 5
# What run() reads from the lake and writes to it (ecomlake.builds skips it when none changed).
READS = ["gold.FactSales", "gold.DimDate"]
WRITES = ["searchterm_counts", "top_searchterms", "sales_forecast"]


def input_files(spark, cfg: Config) -> dict:
    """The analytics settings and, for each file it reads (search terms, the pretrained model),
    its size and modification time."""
    out = {"settings": repr(cfg.analytics)}
    for uri in (cfg.uri(cfg.analytics.searchterms), cfg.uri(cfg.analytics.pretrained_model)):
        out[uri] = delta.file_status(spark, uri)
    return out


def read_searchterms(spark, path: str) -> DataFrame:
    return (spark.read.option("header", True).option("encoding", "UTF-8")
            .schema("day int, month int, year int, searchterm string").csv(path))


def to_searchterm_counts(terms: DataFrame) -> DataFrame:
    return terms.groupBy("searchterm").agg(F.count(F.lit(1)).alias("searches"))


def to_top_searchterms(terms: DataFrame, n: int = TOP_N) -> DataFrame:
    """The n most searched terms per year and month (ties broken by the term, so stable)."""
    counts = terms.groupBy("year", "month", "searchterm").agg(F.count(F.lit(1)).alias("searches"))
    w = Window.partitionBy("year", "month").orderBy(F.desc("searches"), "searchterm")
    return (counts.withColumn("rank", F.row_number().over(w)).filter(F.col("rank") <= n)
            .select("year", "month", "rank", "searchterm", "searches"))


def to_yearly_sales(fact: DataFrame, dim_date: DataFrame) -> DataFrame:
    return (fact.join(dim_date.select("dateid", "Year"), "dateid", "inner")
            .groupBy(F.col("Year").alias("year"))
            .agg(F.sum("amount").cast("double").alias("sales")))


def with_features(df: DataFrame) -> DataFrame:
    """The course model's input: a one-element vector of the year."""
    return VectorAssembler(inputCols=["year"], outputCol="features").transform(df)


def predict(model, years: list[int], spark, label: str) -> DataFrame:
    frame = spark.createDataFrame([(y,) for y in years], "year int")
    return (model.transform(with_features(frame))
            .select("year", F.lit(label).alias("model"), F.col("prediction").alias("predicted_sales")))


def run(spark, cfg: Config) -> dict:
    counts = {}
    terms = read_searchterms(spark, cfg.uri(cfg.analytics.searchterms))
    for name, df in {"searchterm_counts": to_searchterm_counts(terms),
                     "top_searchterms": to_top_searchterms(terms)}.items():
        delta.overwrite(df, cfg, f"gold.{name}")
        counts[name] = delta.written(spark, cfg, f"gold.{name}")[1]   # no second read

    yearly = to_yearly_sales(delta.read(spark, cfg, "gold.FactSales"),
                             delta.read(spark, cfg, "gold.DimDate")).cache()
    last = yearly.agg(F.max("year")).collect()[0][0] or 2021
    years = [last + i for i in range(1, cfg.analytics.forecast_years + 1)] + [2023]
    years = sorted(set(years))
    # the course's pretrained model (saved by Spark 2.4) ...
    pretrained = LinearRegressionModel.load(cfg.uri(cfg.analytics.pretrained_model))
    forecasts = predict(pretrained, years, spark, "course_pretrained")
    # ... and the same kind of model retrained on our gold sales
    if yearly.count() >= 1:
        retrained = LinearRegression(featuresCol="features", labelCol="sales", maxIter=100,
                                     regParam=0.1).fit(with_features(yearly))
        forecasts = forecasts.unionByName(predict(retrained, years, spark, "retrained_on_gold"))
    yearly.unpersist()
    delta.overwrite(forecasts, cfg, "gold.sales_forecast")
    counts["sales_forecast"] = delta.written(spark, cfg, "gold.sales_forecast")[1]
    for name, n in counts.items():
        log.info("gold.%s: %d rows", name, n)
    return counts
