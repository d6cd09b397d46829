"""ecomlake.spark.in_parallel: results in order; a failure is raised only after every other
item has finished (no table left half-way through a commit)."""
import threading
import time

import pytest

from ecomlake.spark import in_parallel


def test_results_come_back_in_item_order():
    assert in_parallel(lambda x: x * x, [3, 1, 2]) == [9, 1, 4]


def test_a_failure_waits_for_the_others_then_is_raised():
    finished = []
    lock = threading.Lock()

    def work(x):
        if x == "bad":
            raise ValueError("silver.customers: too many bad rows")
        time.sleep(0.2)
        with lock:
            finished.append(x)

    with pytest.raises(ValueError, match="too many bad rows"):
        in_parallel(work, ["a", "bad", "b", "c"])
    assert sorted(finished) == ["a", "b", "c"]
