"""Explicit schemas of the sources as Spark reads them (no inference, no sampling)."""
from pyspark.sql.types import DoubleType, StringType, StructField, StructType

# catalog.electronics as the course ships it. `_id` is an ObjectId, read as its hex string.
ELECTRONICS = StructType([
    StructField("_id", StringType()),
    StructField("type", StringType()),
    StructField("model", StringType()),
    StructField("screen size", DoubleType()),
])

# Source names that Delta rejects (spaces, among others) and the names they get in the lake.
DELTA_NAMES = {"screen size": "screen_size"}
