"""Silver stage: type, validate (conf/tables.yaml rules), quarantine and MERGE the run date's
bronze batch into one-row-per-key silver Delta tables."""
import sys

from ecomlake.runner import main

if __name__ == "__main__":
    sys.exit(main("silver", __doc__, ["silver"]))
