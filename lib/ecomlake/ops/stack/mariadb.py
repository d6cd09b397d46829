"""MariaDB, the MySQL OLTP source (database `sales`)."""
from __future__ import annotations

import shutil
from pathlib import Path

from ecomlake.config import Config
from ecomlake.ops.stack.base import Server, apt_install, give_to, run


def sql_string(value: str) -> str:
    """A MariaDB string literal: backslash escapes are on by default there, so `\\` is doubled
    as well as `'`."""
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


class MariaDB(Server):
    """Runs as the `mysql` OS user (Debian's). No account holds FILE, and `secure_file_priv`
    confines server-side file access to one empty folder of the stack anyway."""
    OS_USER = "mysql"

    # Database privileges of each account: the pipeline reads; the loader (generate, changes,
    # load-capstone, tests and benchmarks that write) creates, truncates and writes tables.
    PIPELINE_GRANTS = ("SELECT",)
    LOADER_GRANTS = ("SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "INDEX", "ALTER",
                     "CREATE TEMPORARY TABLES")   # changes.update_from_rows joins a temp table
    # Everything else a database grant can hold, revoked so a re-provisioned older stack (which
    # gave ALL PRIVILEGES) ends up with exactly the grants above.
    DB_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "INDEX", "ALTER",
                     "REFERENCES", "CREATE TEMPORARY TABLES", "LOCK TABLES", "EXECUTE",
                     "CREATE VIEW", "SHOW VIEW", "CREATE ROUTINE", "ALTER ROUTINE", "EVENT",
                     "TRIGGER", "DELETE HISTORY", "GRANT OPTION")

    def __init__(self, cfg: Config):
        super().__init__("mariadb", "MySQL OLTP source", cfg.mysql.host, cfg.mysql.port,
                         cfg.stack_dir)
        self.cfg = cfg

    @property
    def socket_path(self) -> Path:
        return self.home / "run" / "mariadb" / "mariadb.sock"

    @property
    def admin_socket(self) -> Path:
        # A server started before the servers ran as their own users has its socket in run/.
        legacy = self.home / "run" / "mariadb.sock"
        return legacy if legacy.exists() and not self.socket_path.exists() else self.socket_path

    @property
    def files_dir(self) -> Path:
        """secure_file_priv: the only folder INTO OUTFILE / LOAD DATA INFILE / LOAD_FILE could
        touch, for an account with FILE (none has it)."""
        return self.home / "data" / "mariadb-files"

    def install(self) -> None:
        if not shutil.which("mariadbd"):
            apt_install("mariadb-server", "mariadb-client")

    def prepare(self) -> None:
        super().prepare()
        give_to(self.OS_USER, self.socket_path.parent, self.files_dir)
        self.files_dir.chmod(0o700)

    def init(self) -> None:
        if not (self.data_dir / "mysql").exists():
            run(["mariadb-install-db", f"--datadir={self.data_dir}", f"--user={self.OS_USER}",
                 "--auth-root-authentication-method=socket", "--skip-test-db"])

    def start(self) -> None:
        self.spawn(["mariadbd", "--no-defaults", f"--datadir={self.data_dir}",
                    f"--port={self.port}", f"--bind-address={self.host}",
                    f"--socket={self.socket_path}", "--skip-name-resolve",
                    f"--secure-file-priv={self.files_dir}",
                    "--local-infile=1",                    # LOAD DATA LOCAL INFILE for bulk loads
                    "--innodb-buffer-pool-size=1G",
                    "--innodb-flush-log-at-trx-commit=2",  # a dev server: speed over fsync
                    "--max-allowed-packet=256M",
                    f"--log-error={self.log_file}"])

    def _sql(self, sql: str) -> str:
        return run(["mariadb", f"--socket={self.admin_socket}", "-uroot", "--batch",
                    "--skip-column-names"], input=sql)

    def databases(self, accounts: tuple[str, ...]) -> list[str]:
        """The configured database and its `_bench` scratch copy, plus every database these
        accounts already hold grants on (another developer's, from ECOMLAKE_OVERRIDES), so
        that each of them gets the least-privilege grants too."""
        names = ", ".join(sql_string(a) for a in accounts)
        held = self._sql(f"SELECT DISTINCT Db FROM mysql.db WHERE Host = '127.0.0.1' "
                         f"AND User IN ({names});").split()
        db = self.cfg.mysql.database
        return [db, f"{db}_bench", *sorted(set(held) - {db, f"{db}_bench"})]

    def provision(self, secrets_: dict[str, str]) -> None:
        m = self.cfg.mysql
        accounts = {m.user: (secrets_[m.password_env], self.PIPELINE_GRANTS),
                    m.loader_user: (secrets_[m.loader_password_env], self.LOADER_GRANTS)}
        sql = []
        for user, (password, _) in accounts.items():
            pw = sql_string(password)
            sql += [f"CREATE USER IF NOT EXISTS '{user}'@'127.0.0.1' IDENTIFIED BY {pw};",
                    f"ALTER USER '{user}'@'127.0.0.1' IDENTIFIED BY {pw};",
                    f"REVOKE ALL PRIVILEGES ON *.* FROM '{user}'@'127.0.0.1';"]
        # The pipeline's bronze high-water mark reads information_schema.innodb_trx: PROCESS.
        sql.append(f"GRANT PROCESS ON *.* TO '{m.user}'@'127.0.0.1';")
        for db in self.databases(tuple(accounts)):
            sql.append(f"CREATE DATABASE IF NOT EXISTS `{db}`;")
            for user, (_, grants) in accounts.items():
                revoke = [p for p in self.DB_PRIVILEGES if p not in grants]
                sql += [f"GRANT {', '.join(grants)} ON `{db}`.* TO '{user}'@'127.0.0.1';",
                        f"REVOKE {', '.join(revoke)} ON `{db}`.* FROM '{user}'@'127.0.0.1';"]
        self._sql("\n".join(sql) + "\n")

    def stop(self) -> None:
        if self.answers() and self.admin_socket.exists():
            run(["mariadb-admin", f"--socket={self.admin_socket}", "-uroot", "shutdown"])
        super().stop()
