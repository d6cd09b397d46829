"""Analytics stage: search-term counts and top terms, and yearly-sales forecasts from the
course's pretrained model and from the same kind of model retrained on gold sales."""
import sys

from ecomlake.runner import main

if __name__ == "__main__":
    sys.exit(main("analytics", __doc__, ["analytics"]))
