"""Gold stage: rebuild the gold Delta tables from silver."""
import sys

from ecomlake.runner import main

if __name__ == "__main__":
    sys.exit(main("gold", __doc__, ["gold"]))
