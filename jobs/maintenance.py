"""Lake maintenance: OPTIMIZE and VACUUM (retention from lake.vacuum_retention_hours) on every
Delta table."""
import sys

from ecomlake.runner import main

if __name__ == "__main__":
    sys.exit(main("maintenance", __doc__, ["maintenance"]))
