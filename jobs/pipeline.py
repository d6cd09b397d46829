"""The daily pipeline, every stage in one Spark session: bronze (MySQL over JDBC, MongoDB
through the Spark connector) -> silver (validated, merged, quarantined) -> gold -> publish to
the PostgreSQL and DB2 warehouses (with the search-term and forecast tables in gold). This is
the job `make demo` runs."""
import sys

from ecomlake.runner import main

if __name__ == "__main__":
    sys.exit(main("pipeline", __doc__, ["bronze", "silver", "gold", "analytics", "publish"]))
