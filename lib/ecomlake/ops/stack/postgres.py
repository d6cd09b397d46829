"""PostgreSQL, the staging warehouse."""
from __future__ import annotations

from pathlib import Path

from ecomlake.config import Config
from ecomlake.ops.stack.base import Server, apt_install, run


def pg_string(value: str) -> str:
    """A PostgreSQL string literal (standard_conforming_strings on: backslashes are literal)."""
    return "'" + value.replace("'", "''") + "'"


class PostgreSQL(Server):
    """Runs as the `postgres` OS user (PostgreSQL refuses to run as root)."""
    OS_USER = "postgres"

    def __init__(self, cfg: Config):
        super().__init__("postgres", "staging warehouse", cfg.postgres.host, cfg.postgres.port,
                         cfg.stack_dir)
        self.cfg = cfg

    @staticmethod
    def bin(tool: str) -> str:
        found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{tool}"))
        return str(found[-1]) if found else tool

    def install(self) -> None:
        if not Path(self.bin("initdb")).exists():
            apt_install("postgresql")

    def prepare(self) -> None:
        super().prepare()
        self.data_dir.chmod(0o700)      # initdb and the server insist on it

    def init(self) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            return
        run([self.bin("initdb"), "-D", str(self.data_dir), "-U", "postgres", "-E", "UTF8",
             "--no-locale", "--auth-local=trust", "--auth-host=scram-sha-256"], user=self.OS_USER)

    def start(self) -> None:
        opts = (f"-c listen_addresses={self.host} -p {self.port} "
                f"-c unix_socket_directories={self.data_dir} "
                "-c fsync=off -c synchronous_commit=off -c max_connections=100")
        run([self.bin("pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_file),
             "-o", opts, "-w", "start"], user=self.OS_USER)

    def _psql(self, sql: str, db: str = "postgres") -> str:
        return run([self.bin("psql"), "-h", str(self.data_dir), "-p", str(self.port), "-U",
                    "postgres", "-d", db, "-v", "ON_ERROR_STOP=1", "-qAt"],
                   input=sql, user=self.OS_USER)

    def provision(self, secrets_: dict[str, str]) -> None:
        # The warehouse account owns its database and schema (publish creates, swaps and drops
        # tables there) and nothing else: no superuser, no CREATEDB, no CREATEROLE.
        p = self.cfg.postgres
        self._psql("SET standard_conforming_strings = on;\n"
                   f"DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname='{p.user}') "
                   f"THEN CREATE ROLE {p.user} LOGIN; END IF; END$$;\n"
                   f"ALTER ROLE {p.user} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
                   f"PASSWORD {pg_string(secrets_[p.password_env])};\n")
        if not self._psql(f"SELECT 1 FROM pg_database WHERE datname='{p.database}'").strip():
            self._psql(f"CREATE DATABASE {p.database} OWNER {p.user};")
        self._psql(f"CREATE SCHEMA IF NOT EXISTS {p.schema} AUTHORIZATION {p.user};", p.database)

    def stop(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            run([self.bin("pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"],
                user=self.OS_USER)
