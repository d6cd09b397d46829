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

import logging
import os
import pwd
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from ecomlake.config import PROJECT_ROOT, STACK_ENV_FILE, Config, read_env_file
from ecomlake.ops.supervise import Supervised, port_open

log = logging.getLogger(__name__)

START_TIMEOUT_S = 60


def run(cmd: list[str], *, input: str | None = None, user: str | None = None,
        cwd: Path | None = None, env: dict | None = None) -> str:
    """Run a setup command; on failure raise with its output (which never holds a password:
    passwords go through stdin, not argv)."""
    if user:
        cmd = ["runuser", "-u", user, "--", *cmd]
    proc = subprocess.run(cmd, input=input, text=True, capture_output=True, cwd=cwd,
                          env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        raise RuntimeError(f"`{' '.join(cmd[:6])} ...` failed ({proc.returncode}):\n"
                           f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return proc.stdout


def apt_install(*packages: str) -> None:
    log.info("installing Debian packages: %s", " ".join(packages))
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    try:
        run(["apt-get", "install", "-y", "-q", *packages], env=env)
    except RuntimeError:
        run(["apt-get", "update", "-q"], env=env)
        run(["apt-get", "install", "-y", "-q", *packages], env=env)


def ensure_secrets(stack_dir: Path, names: list[str]) -> dict[str, str]:
    """Generate each missing local password once; keep them in stack.env, made mode 600 every
    time (whatever a copy or an editor left it as)."""
    stack_dir.mkdir(parents=True, exist_ok=True)
    path = stack_dir / STACK_ENV_FILE
    values = read_env_file(path)
    missing = [name for name in names if name not in values]
    for name in missing:
        values[name] = secrets.token_hex(12)
    if missing:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("".join(f"{k}={v}\n" for k, v in sorted(values.items())))
        os.replace(tmp, path)
    os.chmod(path, 0o600)
    return values


def sql_string(value: str) -> str:
    """A MariaDB string literal: backslash escapes are on by default there, so `\\` is doubled
    as well as `'`."""
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def pg_string(value: str) -> str:
    """A PostgreSQL string literal (standard_conforming_strings on: backslashes are literal)."""
    return "'" + value.replace("'", "''") + "'"


def properties_value(value: str) -> str:
    """A value for a Java .properties file (Derby's), escaped so it reads back unchanged."""
    out = value.replace("\\", "\\\\")
    for ch in "=:#!":
        out = out.replace(ch, "\\" + ch)
    out = out.replace("\n", "\\n").replace("\r", "\\r")
    return "\\ " + out[1:] if out.startswith(" ") else out


def ensure_os_user(name: str) -> None:
    """An unprivileged system user (no login shell, no home) to run a server as; idempotent."""
    try:
        pwd.getpwnam(name)
    except KeyError:
        log.info("creating system user %s", name)
        run(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
             "--shell", "/usr/sbin/nologin", name])


def give_to(user: str, *paths: Path) -> None:
    """Make `user` own the folders `paths` (recursively), and check it can reach them: every
    parent folder must let others through (`.ci/run` makes its temporary folder 755 for this)."""
    for path in paths:
        path.mkdir(parents=True, exist_ok=True)
        run(["chown", "-R", f"{user}:{user}", str(path)])
        try:
            run(["test", "-w", str(path)], user=user)
        except RuntimeError:
            raise RuntimeError(
                f"the `{user}` OS user cannot reach {path}: give it execute permission on the "
                f"parent folders, or set stack.dir in conf/ to a folder it can reach") from None


def write_private(path: Path, text: str, owner: str) -> bool:
    """Write `text` to `path`, mode 600, owned by `owner`; False if it already held it."""
    unchanged = path.exists() and path.read_text() == text
    if not unchanged:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
    os.chmod(path, 0o600)
    shutil.chown(path, owner, owner)
    return not unchanged


@dataclass
class Server:
    """A server of the local stack. Subclasses say how to install, init, start and provision."""
    name: str
    role: str
    host: str
    port: int
    home: Path          # <stack.dir>
    OS_USER = "nobody"  # the unprivileged system user the server runs as (subclasses say which)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.home / "data" / self.name

    @property
    def log_file(self) -> Path:
        return self.home / "log" / f"{self.name}.log"

    @property
    def pid_file(self) -> Path:
        return self.home / "run" / f"{self.name}.pid"

    @property
    def process(self) -> Supervised:
        """The server's process: pid file, log and OS user (ecomlake.ops.supervise)."""
        return Supervised(self.name, self.pid_file, self.log_file, self.OS_USER)

    def answers(self) -> bool:
        return port_open(self.host, self.port)

    # -- steps, overridden per server ------------------------------------------------------
    def install(self) -> None: ...
    def init(self) -> None: ...
    def start(self) -> None: ...
    def provision(self, secrets_: dict[str, str]) -> None: ...

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if the server is still there after START_TIMEOUT_S."""
        self.process.stop(START_TIMEOUT_S)

    # -- shared helpers --------------------------------------------------------------------
    def up(self, secrets_: dict[str, str]) -> str:
        for d in (self.home / "log", self.home / "run", self.home / "data"):
            d.mkdir(parents=True, exist_ok=True)
        started = "already running"
        if not self.answers():
            t0 = time.monotonic()
            self.install()
            self.prepare()
            self.init()
            self.start()
            self.process.wait(self.answers, timeout=START_TIMEOUT_S,
                              where=f"address {self.address}")
            started = f"started in {time.monotonic() - t0:.1f}s"
        self.provision(secrets_)
        return started

    def prepare(self) -> None:
        """The server's OS user exists and owns its data folder and log."""
        ensure_os_user(self.OS_USER)
        give_to(self.OS_USER, self.data_dir)
        self.log_file.touch()
        shutil.chown(self.log_file, self.OS_USER, self.OS_USER)

    def spawn(self, cmd: list[str], *, cwd: Path | None = None) -> None:
        """Start a long-running server process as its OS user, detached from us (see
        ecomlake.ops.supervise: the pid recorded is the server's own)."""
        self.process.spawn(cmd, cwd=cwd, env={**os.environ, "HOME": str(self.data_dir)})


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


class FerretDB(Server):
    """FerretDB 1.24 built from the Go module proxy by stack/ferretdb (our own tiny main).
    Runs as the `ecomlake-ferretdb` OS user; on SQLite it has no authentication (loopback only)."""
    OS_USER = "ecomlake-ferretdb"

    def __init__(self, cfg: Config):
        super().__init__("ferretdb", "MongoDB catalog source", cfg.mongo.host, cfg.mongo.port,
                         cfg.stack_dir)
        self.cfg = cfg

    @property
    def binary(self) -> Path:
        return self.home / "bin" / "ferretdb"

    def install(self) -> None:
        if self.binary.exists():
            return
        log.info("building FerretDB with Go (first time only)")
        run(["go", "build", "-trimpath", "-o", str(self.binary), "."], cwd=PROJECT_ROOT / "stack" / "ferretdb",
            env={"CGO_ENABLED": "0"})

    def start(self) -> None:
        self.spawn([str(self.binary), f"--listen-addr={self.address}",
                    f"--sqlite-dir={self.data_dir}", "--log-level=warn"])


class Derby(Server):
    """Apache Derby 10.8 network server: the DRDA stand-in for DB2 (stack/derby/pom.xml).
    Runs as the `ecomlake-derby` OS user, with authentication on: the DB2 user and its password
    (from stack.env) are in derby.properties, mode 600, readable by that user only."""
    OS_USER = "ecomlake-derby"

    def __init__(self, cfg: Config):
        super().__init__("derby", "DB2 production warehouse (DRDA stand-in)", cfg.db2.host,
                         cfg.db2.port, cfg.stack_dir)
        self.cfg = cfg

    @property
    def jar_dir(self) -> Path:
        return self.home / "jars" / "derby"

    def install(self) -> None:
        if not list(self.jar_dir.glob("derbynet-*.jar")):
            run(["mvn", "-q", "-f", str(PROJECT_ROOT / "stack" / "derby" / "pom.xml"),
                 "dependency:copy-dependencies", f"-DoutputDirectory={self.jar_dir}"])

    @property
    def classpath(self) -> str:
        return ":".join(str(p) for p in sorted(self.jar_dir.glob("derby*.jar")))

    @property
    def properties_file(self) -> Path:
        return self.data_dir / "derby.properties"    # read by the server when it starts

    def write_properties(self, password: str) -> bool:
        """derby.properties with authentication on and the one user; True if it changed."""
        d = self.cfg.db2
        return write_private(self.properties_file, (
            "derby.connection.requireAuthentication=true\n"
            "derby.authentication.provider=BUILTIN\n"
            f"derby.user.{d.user}={properties_value(password)}\n"
            # users other than the database owner may not read or write it
            "derby.database.defaultConnectionMode=noAccess\n"
            f"derby.database.fullAccessUsers={d.user}\n"), self.OS_USER)

    def init(self) -> None:
        # Create the database with Derby's own embedded driver: JCC cannot pass `create=true`.
        # ij reads the URL, user and password from stdin, never from its arguments.
        d = self.cfg.db2
        if (self.data_dir / d.database / "service.properties").exists():
            return
        self.write_properties(self._password)
        quoted = self._password.replace("'", "''")
        run(["java", f"-Dderby.system.home={self.data_dir}", "-cp", self.classpath,
             "org.apache.derby.tools.ij"], user=self.OS_USER, cwd=self.data_dir,
            input=f"connect 'jdbc:derby:{d.database};create=true' user '{d.user}' "
                  f"password '{quoted}';\nexit;\n")

    def up(self, secrets_: dict[str, str]) -> str:
        self._password = secrets_[self.cfg.db2.password_env]
        return super().up(secrets_)

    def provision(self, secrets_: dict[str, str]) -> None:
        ensure_os_user(self.OS_USER)
        if self.write_properties(secrets_[self.cfg.db2.password_env]):
            log.warning("derby: its users (derby.properties) changed; Derby reads them when it "
                        "starts (`ecomlake stack down` then `up`)")

    def start(self) -> None:
        self.write_properties(self._password)
        # -noSecurityManager: the default policy looks for a jar named exactly derbynet.jar.
        # bootAll: open the database when the server starts, not on the first client's login
        # (booting it then can outlast the client's login timeout on a busy machine).
        self.spawn(["java", "-Xmx512m", f"-Dderby.system.home={self.data_dir}",
                    "-Dderby.system.bootAll=true",
                    "-cp", self.classpath, "org.apache.derby.drda.NetworkServerControl",
                    "start", "-h", self.host, "-p", str(self.port), "-noSecurityManager"],
                   cwd=self.data_dir)


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
