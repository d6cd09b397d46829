"""Data-quality rules: named SQL predicates (conf/tables.yaml) split a batch into clean rows and
quarantined rows. The failing set is computed once and both outputs are derived from it, so
the clean and quarantine predicates can never drift apart."""
from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

FAILED_RULES = "_failed_rules"


def with_failed_rules(rules: dict[str, str]):
    """Add `_failed_rules` (array of rule names, empty when the row is clean). A predicate that
    is NULL counts as failed: a rule holds only when it is TRUE."""
    def transform(df: DataFrame) -> DataFrame:
        checks = [F.when(~F.coalesce(F.expr(sql), F.lit(False)), F.lit(name))
                  for name, sql in rules.items()]
        failed = F.filter(F.array(*checks), lambda x: x.isNotNull()) if checks else F.array()
        return df.withColumn(FAILED_RULES, failed.cast("array<string>"))
    return transform


def is_bad():
    """True for a checked row that broke at least one rule."""
    return F.size(F.col(FAILED_RULES)) > 0


def split_valid(checked: DataFrame) -> tuple[DataFrame, DataFrame]:
    """(clean rows without the rules column, quarantined rows with it)."""
    bad = is_bad()
    return checked.filter(~bad).drop(FAILED_RULES), checked.filter(bad)
