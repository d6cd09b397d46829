"""The MongoDB sources as bronze reads them. MySQL tables need no schema here: JDBC carries their
types.

A document's content can never fail the read: bronze reads each known top-level field as text
(ecomlake.io.mongo.read_as_text) with its BSON type beside it, and silver types the fields with
try_cast, sending a document whose field has the wrong type to quarantine under a named rule
(conf/tables.yaml)."""

# catalog.electronics: the course's fields plus the generator's, in bronze's column order. A
# field no document had before (a new product attribute) is kept too, in bronze's `_extra`.
ELECTRONICS = ["_id", "product_id", "type", "model", "screen size", "category", "brand", "price",
               "attributes", "updated_at"]

MONGO = {"electronics": ELECTRONICS}

# Bronze's map column of each document's BSON types: source field name -> `$type` name
# ("string", "int", "long", "double", "object", "array", "date", "objectId", "null", ...), for
# the fields the document has (known and `_extra` ones).
BSON_TYPES = "_bson_types"

# Source names that Delta rejects (spaces, among others) and the names they get in the lake.
DELTA_NAMES = {"screen size": "screen_size"}
