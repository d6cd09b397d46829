"""The local stack: real servers on 127.0.0.1, installed and started by the project itself.

    MariaDB    the MySQL OLTP source (database `sales`)
    FerretDB   the MongoDB catalog source (database `catalog`), SQLite backend
    PostgreSQL the staging warehouse
    Derby      the DRDA stand-in for the DB2 production warehouse (see README, "The DB2 path")

Each server keeps its data, log and pid under <stack.dir> (.local/ by default, git-ignored),
and runs as an unprivileged system user of its own (created if missing) that owns its data.
`up` installs what is missing, starts what is not answering and (re)applies users, databases
and grants, so running it twice is harmless. Passwords are generated once into
<stack.dir>/stack.env (forced to mode 600 at every `up`) and read back by the config loader;
they are never printed and never passed in a command's arguments.
"""
from __future__ import annotations

import os

# The modules: base (the Server base class and the setup helpers every server uses), and one
# per server: mariadb, ferretdb, postgres, derby. Every name the former single module defined
# is importable from here as before. (The docstring above is `ecomlake stack --help`.)
from ecomlake.config import Config
from ecomlake.ops.stack.base import (  # noqa: F401  (re-exported)
    START_TIMEOUT_S, Server, apt_install, ensure_os_user, ensure_secrets, give_to, log, run,
    write_private)
from ecomlake.ops.stack.derby import Derby, properties_value  # noqa: F401
from ecomlake.ops.stack.ferretdb import FerretDB  # noqa: F401
from ecomlake.ops.stack.mariadb import MariaDB, sql_string  # noqa: F401
from ecomlake.ops.stack.postgres import PostgreSQL, pg_string  # noqa: F401


def servers(cfg: Config) -> list[Server]:
    return [MariaDB(cfg), FerretDB(cfg), PostgreSQL(cfg), Derby(cfg)]


def password_vars(cfg: Config) -> list[str]:
    return [cfg.mysql.password_env, cfg.mysql.loader_password_env, cfg.postgres.password_env,
            cfg.db2.password_env]


def up(cfg: Config) -> list[tuple[Server, str]]:
    secrets_ = ensure_secrets(cfg.stack_dir, password_vars(cfg))
    # The config reads passwords from the environment first: keep them consistent.
    secrets_ = {k: os.environ.get(k, v) for k, v in secrets_.items()}
    return [(s, s.up(secrets_)) for s in servers(cfg)]


def down(cfg: Config) -> list[Server]:
    stopped = []
    for s in reversed(servers(cfg)):
        s.stop()
        stopped.append(s)
    return stopped


def status(cfg: Config) -> list[tuple[Server, bool]]:
    return [(s, s.answers()) for s in servers(cfg)]
