"""MongoDB (FerretDB locally): the product catalog. pymongo for checks and loads, the MongoDB
Spark Connector for extraction. Everything that talks to MongoDB is here."""
from __future__ import annotations

import hashlib
import json
import logging

import pymongo
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from pymongo.errors import OperationFailure, PyMongoError
from pyspark.sql import functions as F
from pyspark.sql import types as T

from ecomlake.config import Config
from ecomlake.errors import refused, unavailable

log = logging.getLogger(__name__)

# FerretDB 1.x has no $sample (SamplePartitioner) nor $bucketAuto: read with one partition.
# The catalog is small next to sales; a bigger one would use PaginateIntoPartitionsPartitioner.
PARTITIONER = "com.mongodb.spark.sql.connector.read.partitioner.SinglePartitionPartitioner"


def client(cfg: Config) -> pymongo.MongoClient:
    return pymongo.MongoClient(cfg.mongo.uri, serverSelectionTimeoutMS=5000,
                               connectTimeoutMS=5000)


def check(cfg: Config) -> None:
    m = cfg.mongo
    try:
        with client(cfg) as c:
            c[m.database].command("ping")
    except OperationFailure as exc:
        raise refused("MongoDB", m.address, "-", "(none)", str(exc)) from None
    except PyMongoError as exc:
        reason = str(exc).split(",")[0].split(" (configured")[0]
        raise unavailable("MongoDB", "catalog source", m.address, reason, "mongo.host/port",
                          cfg.source_file) from None


# Prefix of the fields the read adds to each document, one per source field: its BSON type.
TYPE_FIELD_PREFIX = "__ecomlake_bson_type_"


def typeable(fields: list[str]) -> list[tuple[int, str]]:
    """(position, name) of the fields a `$type` expression can name: not those with a dot (a
    path into a nested document) or a leading $ (a variable)."""
    return [(i, f) for i, f in enumerate(fields) if "." not in f and not f.startswith("$")]


def type_pipeline(fields: list[str]) -> list[dict]:
    """An aggregation stage adding the BSON type name (`$type`: "string", "int", "double",
    "array", "object", "date", "null", "missing", ...) of each field. FerretDB 1.x evaluates
    `$type` only at the top level of `$addFields`, so one flat field per source field."""
    return [{"$addFields": {f"{TYPE_FIELD_PREFIX}{i}": {"$type": f"${name}"}
                            for i, name in typeable(fields)}}]


def read_as_text(spark, cfg: Config, collection: str, fields: list[str],
                 types_column: str):
    """Read the top-level `fields` of every document as text, with their BSON types, so that
    no value can fail the read. A column per field holds what the connector gives for a string
    schema: a string as itself, a number as its digits (15, 15.6, 1.0E300), a date as ISO 8601
    UTC, an ObjectId as its hex, an array or document as relaxed JSON. That text cannot tell
    the string "15" from the number 15, nor the string "[1]" from an array: the map column
    `types_column` (field -> BSON type, for the fields the document has) can.
    (`outputExtendedJson` tells numbers and dates from strings, but not always arrays,
    documents or booleans — ["a"] and true read the same as the strings '["a"]' and "true" —
    and it rewrites every nested value: {"ram_gb": {"$numberInt": "16"}}.)"""
    schema = T.StructType([T.StructField(f, T.StringType()) for f in fields]
                          + [T.StructField(f"{TYPE_FIELD_PREFIX}{i}", T.StringType())
                             for i, _ in typeable(fields)])
    log.info("mongo: reading %s.%s (%d fields as text)", cfg.mongo.database, collection,
             len(fields))
    docs = (spark.read.format("mongodb").schema(schema)
            .option("connection.uri", cfg.mongo.uri)
            .option("database", cfg.mongo.database)
            .option("collection", collection)
            .option("partitioner", PARTITIONER)
            .option("aggregation.pipeline", json.dumps(type_pipeline(fields)))
            .load())
    pairs = [x for i, name in typeable(fields)
             for x in (F.lit(name), F.col(f"`{TYPE_FIELD_PREFIX}{i}`"))]
    types = F.map_filter(F.create_map(*pairs), lambda k, v: v != F.lit("missing"))
    return docs.select(*[F.col(f"`{f}`") for f in fields], types.alias(types_column))


def scan(cfg: Config, collection: str, *, fields: bool = True) -> tuple[list[str], str]:
    """(every top-level field name used in the collection, a fingerprint of its documents).
    FerretDB 1.x has no $objectToArray nor $$ROOT, so the driver scans the documents; the
    catalog is small. The fingerprint is the count and the sum of each document's SHA-256 over
    its BSON bytes as the server returns them: equal for the same documents in any order, and
    different after any change to any document (ecomlake.quickcheck). `fields=False`: only
    the fingerprint (no document is decoded; field names [])."""
    names: set[str] = set()
    n, total = 0, 0
    raw = CodecOptions(document_class=RawBSONDocument)
    with client(cfg) as c:
        docs = c[cfg.mongo.database].get_collection(collection, codec_options=raw)
        for doc in docs.find({}, batch_size=5000):
            if fields:
                names.update(doc.keys())
            total += int.from_bytes(hashlib.sha256(doc.raw).digest(), "big")
            n += 1
    return sorted(names), f"{n}:{total % 2**256:064x}"
