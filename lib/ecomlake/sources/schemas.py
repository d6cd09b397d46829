"""Explicit schemas of the MongoDB sources as Spark reads them (no inference, no sampling).
MySQL tables need none: JDBC carries their types."""
from pyspark.sql.types import (DoubleType, IntegerType, StringType, StructField, StructType,
                               TimestampType)

# catalog.electronics: the course's fields plus the generator's. `_id` (an ObjectId) is read as
# its hex string; `price` as text because bad documents carry non-numbers ("twelve") there —
# silver casts it and quarantines what does not parse; `attributes` (a nested, per-type
# document) as its JSON text, so every nested field is kept whatever the product type.
ELECTRONICS = StructType([
    StructField("_id", StringType()),
    StructField("product_id", IntegerType()),
    StructField("type", StringType()),
    StructField("model", StringType()),
    StructField("screen size", DoubleType()),
    StructField("category", StringType()),
    StructField("brand", StringType()),
    StructField("price", StringType()),
    StructField("attributes", StringType()),
    StructField("updated_at", TimestampType()),
])

MONGO = {"electronics": ELECTRONICS}

# Source names that Delta rejects (spaces, among others) and the names they get in the lake.
DELTA_NAMES = {"screen size": "screen_size"}
