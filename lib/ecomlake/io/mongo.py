"""MongoDB (FerretDB locally): the product catalog. pymongo for checks and loads, the MongoDB
Spark Connector for extraction. Everything that talks to MongoDB is here."""
from __future__ import annotations

import logging

import pymongo
from pymongo.errors import OperationFailure, PyMongoError

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


def read_collection(spark, cfg: Config, collection: str, schema):
    """Read a collection with an explicit schema: no sampling, no inference surprises."""
    log.info("mongo: reading %s.%s", cfg.mongo.database, collection)
    return (spark.read.format("mongodb").schema(schema)
            .option("connection.uri", cfg.mongo.uri)
            .option("database", cfg.mongo.database)
            .option("collection", collection)
            .option("partitioner", PARTITIONER)
            .load())


def top_level_fields(cfg: Config, collection: str) -> list[str]:
    """Every top-level field name used in the collection. FerretDB 1.x has no $objectToArray
    nor $$ROOT, so the driver scans the documents; the catalog is small."""
    names: set[str] = set()
    with client(cfg) as c:
        for doc in c[cfg.mongo.database][collection].find({}, batch_size=5000):
            names.update(doc.keys())
    return sorted(names)
