"""Bronze stage: extract MySQL tables over JDBC and MongoDB collections through the Spark
connector into append-only bronze Delta tables, one batch per run date."""
import sys

from ecomlake.runner import main

if __name__ == "__main__":
    sys.exit(main("bronze", __doc__, ["bronze"]))
