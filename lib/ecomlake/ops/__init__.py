"""Operations tooling: the local stack, Hadoop/YARN, Superset, the course and generated source data,
and the `ecomlake` command. It imports the runtime (ecomlake.*); the runtime never imports it, and
the zip shipped to Spark's executors leaves it out (ecomlake.ops.pyzip)."""
