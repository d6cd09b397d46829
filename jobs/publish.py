"""Publish stage: copy every gold table to the PostgreSQL staging warehouse and/or the DB2
production warehouse, atomically (staging table, reconciliation, one swap transaction)."""
import sys

from ecomlake.runner import main

if __name__ == "__main__":
    sys.exit(main("publish", __doc__, ["publish"]))
