"""One validated configuration object, loaded once from conf/<env>.yaml.

A bad or missing key fails at start with the key's dotted name. Secrets are never in the
YAML: each server names the environment variable that holds its password (`password_env`);
for the local stack those variables default to the values `ecomlake stack up` generated into
.local/stack.env, so a newcomer never has to set them by hand.
"""
from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

# ECOMLAKE_HOME is set by spark-submit.sh: there the package is imported from the --py-files zip,
# whose location says nothing about where conf/ is.
PROJECT_ROOT = Path(os.environ.get("ECOMLAKE_HOME") or Path(__file__).resolve().parents[2])
CONF_DIR = PROJECT_ROOT / "conf"
STACK_ENV_FILE = "stack.env"
# A 600 file of VAR=value lines that holds the passwords instead of the environment (a job on
# YARN gets its passwords this way, never through Spark conf or argv); default <stack.dir>/stack.env.
SECRETS_FILE_VAR = "ECOMLAKE_SECRETS_FILE"


class ConfigError(ValueError):
    """The configuration is invalid; the message names the file and the key."""


@dataclass(frozen=True)
class SparkSettings:
    master: str
    driver_memory: str = "4g"
    shuffle_partitions: int = 4
    # Extra JVM options for the driver and the executors, after the project's own. The test
    # suite sets C1-only JIT and the serial GC here (tests/conftest.py): on the course data a
    # job is mostly JVM warm-up, which they cut; on real volumes C2 wins (README, "Tests").
    java_options: str = ""
    conf: dict = field(default_factory=dict)


@dataclass(frozen=True)
class LakeSettings:
    root: str
    vacuum_retention_hours: int = 168   # VACUUM keeps a week of history for time travel


@dataclass(frozen=True)
class WeblogSettings:
    input: str = "data/capstone/accesslog.txt"   # a file or a folder of access logs
    drop_ip: str = "198.46.149.143"                    # the course's address to leave out
    archive: str = ".local/archive/weblog"             # the daily job's archived IP lists


@dataclass(frozen=True)
class AnalyticsSettings:
    searchterms: str = "data/capstone/searchterms.csv"
    pretrained_model: str = "data/capstone/sales_prediction.model"
    forecast_years: int = 2                            # years after the last one in gold


@dataclass(frozen=True)
class MySQLSettings:
    host: str
    port: int
    database: str
    user: str
    password_env: str
    # The account that loads the sources (generate, changes, load-capstone): it creates,
    # truncates and writes tables; `user` (the pipeline's) may only read them.
    loader_user: str = "ecomlake_loader"
    loader_password_env: str = "ECOMLAKE_MYSQL_LOADER_PASSWORD"
    # The high-water mark of an incremental read is the server's clock, lowered to the start of
    # the oldest InnoDB transaction still open this long after the clock reading: a statement
    # stamped before the reading has registered its transaction by then (or committed), so a
    # row committed after the read can never sit behind the mark.
    mark_settle_seconds: float = 1.0

    @property
    def jdbc_url(self) -> str:
        # jdbc:mysql:// (not jdbc:mariadb://) so that Spark picks its MySQL dialect (backticks).
        return (f"jdbc:mysql://{self.host}:{self.port}/{self.database}"
                "?zeroDateTimeBehavior=CONVERT_TO_NULL&rewriteBatchedStatements=true"
                "&useCursorFetch=true&connectTimeout=5000")

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class MongoSettings:
    host: str
    port: int
    database: str

    @property
    def uri(self) -> str:
        return f"mongodb://{self.host}:{self.port}/"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class PostgresSettings:
    host: str
    port: int
    database: str
    schema: str
    user: str
    password_env: str
    # How publish moves rows into the staging table: `copy` streams each Spark partition into
    # COPY FROM STDIN (psycopg2, Arrow batches rendered as CSV); `jdbc` is Spark's JDBC writer
    # (batched INSERTs). COPY is ~4x faster; both end in the same reconcile and swap.
    bulk_write: str = "copy"
    # Publish a gold table of at least this many rows as its changes since the version this
    # warehouse holds (ecomlake.publish.changed_rows); 0: every changed table is copied whole.
    # Off by default: on loopback, copying FactSales whole measured no slower than comparing
    # it with its last version (README, Benchmarks). Worth it for a distant warehouse.
    changes_min_rows: int = 0

    @property
    def jdbc_url(self) -> str:
        return (f"jdbc:postgresql://{self.host}:{self.port}/{self.database}"
                "?reWriteBatchedInserts=true&connectTimeout=5")

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class DB2Settings:
    host: str
    port: int
    database: str
    schema: str
    user: str
    password_env: str
    jcc_properties: str = ""
    # As postgres.changes_min_rows. A real DB2 logs every row it writes: a changes table
    # writes only the changed rows.
    changes_min_rows: int = 0

    @property
    def is_real_db2(self) -> bool:
        return bool(os.environ.get("DB2_URL"))

    @property
    def jdbc_url(self) -> str:
        # A real DB2 is given whole by DB2_URL; otherwise the local DRDA server.
        if self.is_real_db2:
            return os.environ["DB2_URL"]
        props = f":{self.jcc_properties}" if self.jcc_properties else ""
        return f"jdbc:db2://{self.host}:{self.port}/{self.database}{props}"

    @property
    def address(self) -> str:
        return self.jdbc_url.split("//", 1)[-1].split("/", 1)[0]


@dataclass(frozen=True)
class StackSettings:
    dir: str


@dataclass(frozen=True)
class Config:
    env: str
    spark: SparkSettings
    lake: LakeSettings
    mysql: MySQLSettings
    mongo: MongoSettings
    postgres: PostgresSettings
    db2: DB2Settings
    stack: StackSettings
    weblog: WeblogSettings = field(default_factory=WeblogSettings)
    analytics: AnalyticsSettings = field(default_factory=AnalyticsSettings)
    source_file: str = ""

    def path(self, value: str) -> str:
        """A path from the config, made absolute against the project root (URIs untouched)."""
        if "://" in value or value.startswith("/"):
            return value
        return str(PROJECT_ROOT / value)

    def uri(self, value: str) -> str:
        """A path from the config as a URI for Spark: plain paths become file:// URIs, so they
        stay local files when the default filesystem is HDFS (env yarn)."""
        resolved = self.path(value)
        return resolved if "://" in resolved else Path(resolved).resolve().as_uri()

    @property
    def lake_root(self) -> str:
        return self.path(self.lake.root)

    @property
    def stack_dir(self) -> Path:
        return Path(self.path(self.stack.dir))

    def secret(self, server: str, var: str | None = None) -> str:
        """The password of `server` from its environment variable (`password_env`, or `var`),
        else from $ECOMLAKE_SECRETS_FILE or <stack.dir>/stack.env; never logged."""
        var = var or getattr(self, server).password_env
        value = os.environ.get(var)
        if value is None:
            value = read_env_file(Path(os.environ.get(SECRETS_FILE_VAR)
                                       or self.stack_dir / STACK_ENV_FILE)).get(var)
        if value is None:
            raise ConfigError(
                f"{server}: the password variable {var} is not set. Export it, or run "
                "`ecomlake stack up` to create the local stack and its generated credentials.")
        return value


def read_env_file(path: Path) -> dict[str, str]:
    """VAR=value lines of a secrets file (stack.env): the one reader of that format. Blank lines
    and # comments are skipped; a value is taken as is, up to the end of its line."""
    if not path.exists():
        return {}
    values = {}
    for line in path.read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#"):
            values[name.strip()] = value.rstrip("\r")
    return values


def available_envs() -> list[str]:
    return sorted(p.stem for p in CONF_DIR.glob("*.yaml") if p.stem != "tables")


def _deep_merge(base: dict, overrides: Mapping) -> dict:
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _build(cls, data: Any, where: str, source: str):
    """Instantiate dataclass `cls` from `data`, rejecting unknown and missing keys by name."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: `{where}` must be a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "source_file"}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{source}: unknown key `{where}.{unknown[0]}` "
                          f"(valid keys under `{where}`: {', '.join(sorted(fields))})")
    kwargs = {}
    for name, f in fields.items():
        key = f"{where}.{name}" if where else name
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{source}: missing required key `{key}`")
            continue
        value = data[name]
        # Annotations are strings here (from __future__ import annotations).
        if f.type in _SECTIONS:
            kwargs[name] = _build(_SECTIONS[f.type], value, key, source)
        else:
            kwargs[name] = _coerce(f.type, value, key, source)
        allowed = _CHOICES.get(key)
        if allowed and kwargs[name] not in allowed:
            raise ConfigError(f"{source}: `{key}` must be one of {', '.join(allowed)}, "
                              f"got {kwargs[name]!r}")
        if key in _IDENTIFIER_KEYS:
            check_identifier(kwargs[name], key, source)
    return cls(**kwargs)


_CHOICES = {"postgres.bulk_write": ("copy", "jdbc")}

# Names that reach SQL, provisioning or Delta constraint names: letters, digits and underscore
# only, so that no quoting can be got wrong anywhere they are used.
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_IDENTIFIER_KEYS = {f"{server}.{name}" for server, names in {
    "mysql": ("database", "user", "password_env", "loader_user", "loader_password_env"),
    "mongo": ("database",),
    "postgres": ("database", "schema", "user", "password_env"),
    "db2": ("database", "schema", "user", "password_env"),
}.items() for name in names}


def check_identifier(value: Any, key: str, source: str) -> str:
    """`value` if it is a plain identifier, else a ConfigError naming `key`."""
    if not isinstance(value, str) or not _IDENTIFIER.fullmatch(value):
        raise ConfigError(f"{source}: `{key}` must be an identifier (letters, digits and "
                          f"underscore, not starting with a digit), got {value!r}")
    return value


def _coerce(type_name: str, value: Any, key: str, source: str):
    expected = {"int": int, "str": str, "dict": dict, "list": list, "float": (int, float),
                "bool": bool}[type_name]
    if (isinstance(value, bool) and expected is not bool) or not isinstance(value, expected):
        expected = expected[-1] if isinstance(expected, tuple) else expected
        raise ConfigError(f"{source}: `{key}` must be {expected.__name__}, got {value!r}")
    if expected is float:
        return float(value)
    if expected is dict and key.endswith("conf"):
        # Spark conf values are strings; YAML may have parsed "false" or 2 as bool/int.
        return {str(k): str(v) for k, v in value.items()}
    return value


_SECTIONS = {c.__name__: c for c in (SparkSettings, LakeSettings, MySQLSettings, MongoSettings,
                                  PostgresSettings, DB2Settings, StackSettings, WeblogSettings,
                                  AnalyticsSettings)}


OVERRIDES_VAR = "ECOMLAKE_OVERRIDES"


def load_config(env: str | None = None, overrides: Mapping | None = None) -> Config:
    """Load and validate conf/<env>.yaml (env defaults to $ECOMLAKE_ENV or `local`).

    $ECOMLAKE_OVERRIDES may hold a YAML/JSON mapping merged over the file (validated the same
    way), e.g. '{lake: {root: /tmp/lake}}' for a throwaway lake; `overrides` wins over both."""
    env = env or os.environ.get("ECOMLAKE_ENV", "local")
    path = CONF_DIR / f"{env}.yaml"
    if not path.exists():
        raise ConfigError(f"unknown env `{env}`: no {path.relative_to(PROJECT_ROOT)} "
                          f"(valid envs: {', '.join(available_envs())})")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    env_overrides = os.environ.get(OVERRIDES_VAR)
    if env_overrides:
        try:
            parsed = yaml.safe_load(env_overrides)
        except yaml.YAMLError as exc:
            raise ConfigError(f"${OVERRIDES_VAR} is not valid YAML: {exc}") from None
        if not isinstance(parsed, Mapping):
            raise ConfigError(f"${OVERRIDES_VAR} must be a mapping, got {env_overrides!r}")
        data = _deep_merge(data, parsed)
    data = _deep_merge(data, overrides or {})
    source = str(path.relative_to(PROJECT_ROOT))
    config = _build(Config, data, "", source)
    if config.env != env:
        raise ConfigError(f"{source}: `env` is {config.env!r} but the file is for {env!r}")
    return dataclasses.replace(config, source_file=source)


@dataclass(frozen=True)
class TableSpec:
    source: str
    key: list
    rules: dict
    max_bad_fraction: float = 0.05
    # A run whose deletions would remove a larger share of silver.<table> stops (exit 2) before
    # anything is written; `--allow-mass-delete` lets one run through.
    max_delete_fraction: float = 0.05
    watermark: str = ""
    partition_column: str = ""
    detect_deletes: bool = False
    history: list = field(default_factory=list)

    @property
    def incremental(self) -> bool:
        return bool(self.watermark)

    @property
    def split_column(self) -> str:
        """The integer column parallel JDBC reads split on: `partition_column`, else the key."""
        return self.partition_column or self.key[0]


REFERENCE_DIR = CONF_DIR / "reference"


def reference_names(kind: str) -> list[str]:
    """The names of conf/reference/dim_<kind>.csv (second column), in file order."""
    import csv

    with open(REFERENCE_DIR / f"dim_{kind}.csv", newline="", encoding="utf-8-sig") as f:
        return [row[1] for row in list(csv.reader(f))[1:] if row]


def _expand_references(sql: str) -> str:
    for kind in ("country", "category"):
        token = "{ref_" + kind + "}"
        if token in sql:
            names = ", ".join("'" + n.replace("'", "''") + "'" for n in reference_names(kind))
            sql = sql.replace(token, f"({names})")
    return sql


def _check_table_identifiers(name: str, table: TableSpec, source: str) -> None:
    """Table, column and rule names reach SQL and Delta constraint names: identifiers only."""
    for i, column in enumerate(table.key):
        check_identifier(column, f"{name}.key[{i}]", source)
    for i, column in enumerate(table.history):
        check_identifier(column, f"{name}.history[{i}]", source)
    for field_name in ("watermark", "partition_column"):
        if getattr(table, field_name):
            check_identifier(getattr(table, field_name), f"{name}.{field_name}", source)
    for rule in table.rules:
        check_identifier(rule, f"{name}.rules.{rule}", source)


def load_tables(path: Path | None = None) -> dict[str, TableSpec]:
    """The source tables of conf/tables.yaml, validated like the config."""
    path = path or CONF_DIR / "tables.yaml"
    source = path.name
    data = yaml.safe_load(path.read_text()) or {}
    tables = {}
    for name, spec in data.items():
        check_identifier(name, name, source)
        table = _build(TableSpec, spec, name, source)
        if table.source not in ("mysql", "mongo"):
            raise ConfigError(f"{source}: `{name}.source` must be mysql or mongo, got {table.source!r}")
        if not table.key or not all(isinstance(k, str) for k in table.key):
            raise ConfigError(f"{source}: `{name}.key` must be a non-empty list of column names")
        _check_table_identifiers(name, table, source)
        for share in ("max_bad_fraction", "max_delete_fraction"):
            if not 0 <= getattr(table, share) <= 1:
                raise ConfigError(f"{source}: `{name}.{share}` must be within [0, 1]")
        rules = {rule: _expand_references(str(sql)) for rule, sql in table.rules.items()}
        tables[name] = dataclasses.replace(table, rules=rules)
    return tables
