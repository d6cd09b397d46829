"""Daily web-log job: parse the access log, drop the configured client address, archive the
day's client IPs, and rebuild gold.hits_per_ip_day (the course's process_web_log, as Spark)."""
import sys

from ecomlake.runner import main

if __name__ == "__main__":
    sys.exit(main("weblog", __doc__, ["weblog"]))
