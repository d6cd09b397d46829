"""The local stack: real servers on 127.0.0.1, installed and started by the project itself.

    MariaDB    the MySQL OLTP source (database `sales`)
    FerretDB   the MongoDB catalog source (database `catalog`), SQLite backend
    PostgreSQL the staging warehouse
    Derby      the DRDA stand-in for the DB2 production warehouse (see README, "The DB2 path")

Each server keeps its data, log and pid under <stack.dir> (.local/ by default, git-ignored).
`up` installs what is missing, starts what is not answering and (re)applies users and
databases, so running it twice is harmless. Passwords are generated once into
<stack.dir>/stack.env and read back by the config loader; they are never printed.
"""
from __future__ import annotations

import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from ecomlake.config import PROJECT_ROOT, STACK_ENV_FILE, Config

log = logging.getLogger(__name__)

START_TIMEOUT_S = 60


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


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
    """Generate each missing local password once; keep them in stack.env (mode 600)."""
    stack_dir.mkdir(parents=True, exist_ok=True)
    path = stack_dir / STACK_ENV_FILE
    values: dict[str, str] = {}
    if path.exists():
        values = dict(l.split("=", 1) for l in path.read_text().splitlines() if "=" in l)
    changed = False
    for name in names:
        if name not in values:
            values[name] = secrets.token_hex(12)
            changed = True
    if changed:
        path.touch(mode=0o600)
        path.write_text("".join(f"{k}={v}\n" for k, v in sorted(values.items())))
    return values


@dataclass
class Server:
    """A server of the local stack. Subclasses say how to install, init, start and provision."""
    name: str
    role: str
    host: str
    port: int
    home: Path          # <stack.dir>

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

    def answers(self) -> bool:
        return port_open(self.host, self.port)

    # -- steps, overridden per server ------------------------------------------------------
    def install(self) -> None: ...
    def init(self) -> None: ...
    def start(self) -> None: ...
    def provision(self, secrets_: dict[str, str]) -> None: ...

    def stop(self) -> None:
        if not self.pid_file.exists():
            return
        pid = int(self.pid_file.read_text().split()[0])
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        self._wait(lambda: not _alive(pid), "stop")
        self.pid_file.unlink(missing_ok=True)

    # -- shared helpers --------------------------------------------------------------------
    def up(self, secrets_: dict[str, str]) -> str:
        for d in (self.home / "log", self.home / "run", self.home / "data"):
            d.mkdir(parents=True, exist_ok=True)
        started = "already running"
        if not self.answers():
            t0 = time.monotonic()
            self.install()
            self.init()
            self.start()
            self._wait(self.answers, "start")
            started = f"started in {time.monotonic() - t0:.1f}s"
        self.provision(secrets_)
        return started

    def spawn(self, cmd: list[str], *, cwd: Path | None = None) -> None:
        """Start a long-running server process detached from us; remember its pid."""
        with open(self.log_file, "ab") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=cwd,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        self.pid_file.write_text(str(proc.pid))

    def _wait(self, ready, what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if ready():
                return
            time.sleep(0.3)
        tail = self.log_file.read_text(errors="replace")[-1500:] if self.log_file.exists() else ""
        raise RuntimeError(f"{self.name} did not {what} within {START_TIMEOUT_S}s "
                           f"(address {self.address}, log {self.log_file}):\n{tail}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped) still answers kill(0); look at its state.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


class MariaDB(Server):
    def __init__(self, cfg: Config):
        super().__init__("mariadb", "MySQL OLTP source", cfg.mysql.host, cfg.mysql.port,
                         cfg.stack_dir)
        self.cfg = cfg

    @property
    def socket_path(self) -> Path:
        return self.home / "run" / "mariadb.sock"

    def install(self) -> None:
        if not shutil.which("mariadbd"):
            apt_install("mariadb-server", "mariadb-client")

    def init(self) -> None:
        if not (self.data_dir / "mysql").exists():
            run(["mariadb-install-db", f"--datadir={self.data_dir}", "--user=root",
                 "--auth-root-authentication-method=socket", "--skip-test-db"])

    def start(self) -> None:
        self.spawn(["mariadbd", "--no-defaults", f"--datadir={self.data_dir}", "--user=root",
                    f"--port={self.port}", f"--bind-address={self.host}",
                    f"--socket={self.socket_path}", "--skip-name-resolve",
                    "--local-infile=1",                    # LOAD DATA LOCAL INFILE for bulk loads
                    "--innodb-buffer-pool-size=1G",
                    "--innodb-flush-log-at-trx-commit=2",  # a dev server: speed over fsync
                    "--max-allowed-packet=256M",
                    f"--log-error={self.log_file}"])

    def provision(self, secrets_: dict[str, str]) -> None:
        db, user = self.cfg.mysql.database, self.cfg.mysql.user
        pw = secrets_[self.cfg.mysql.password_env].replace("'", "''")
        sql = (f"CREATE DATABASE IF NOT EXISTS `{db}`;\n"
               f"CREATE USER IF NOT EXISTS '{user}'@'127.0.0.1' IDENTIFIED BY '{pw}';\n"
               f"ALTER USER '{user}'@'127.0.0.1' IDENTIFIED BY '{pw}';\n"
               f"GRANT ALL PRIVILEGES ON `{db}`.* TO '{user}'@'127.0.0.1';\n"
               # a scratch copy of the sources for benchmarks, so they never clobber the
               # data the demo and the tests use
               f"CREATE DATABASE IF NOT EXISTS `{db}_bench`;\n"
               f"GRANT ALL PRIVILEGES ON `{db}_bench`.* TO '{user}'@'127.0.0.1';\n"
               # LOAD DATA INFILE (server-side) for the loader and the benchmark baseline
               f"GRANT FILE ON *.* TO '{user}'@'127.0.0.1';\n")
        run(["mariadb", f"--socket={self.socket_path}", "-uroot"], input=sql)

    def stop(self) -> None:
        if self.answers() and self.socket_path.exists():
            run(["mariadb-admin", f"--socket={self.socket_path}", "-uroot", "shutdown"])
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

    def init(self) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        shutil.chown(self.data_dir, self.OS_USER, self.OS_USER)
        self.log_file.touch()
        shutil.chown(self.log_file, self.OS_USER, self.OS_USER)
        try:
            run(["test", "-w", str(self.data_dir)], user=self.OS_USER)
        except RuntimeError:
            raise RuntimeError(
                f"the `postgres` OS user cannot reach {self.data_dir}: give it execute "
                f"permission on the parent folders, or set stack.dir in conf/ to a folder it "
                f"can reach") from None
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
        p = self.cfg.postgres
        pw = secrets_[p.password_env].replace("'", "''")
        self._psql(f"DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname='{p.user}') "
                   f"THEN CREATE ROLE {p.user} LOGIN; END IF; END$$;\n"
                   f"ALTER ROLE {p.user} WITH LOGIN PASSWORD '{pw}';\n")
        if not self._psql(f"SELECT 1 FROM pg_database WHERE datname='{p.database}'").strip():
            self._psql(f"CREATE DATABASE {p.database} OWNER {p.user};")
        self._psql(f"CREATE SCHEMA IF NOT EXISTS {p.schema} AUTHORIZATION {p.user};", p.database)

    def stop(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            run([self.bin("pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"],
                user=self.OS_USER)


class FerretDB(Server):
    """FerretDB 1.24 built from the Go module proxy by stack/ferretdb (our own tiny main)."""

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
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.spawn([str(self.binary), f"--listen-addr={self.address}",
                    f"--sqlite-dir={self.data_dir}", "--log-level=warn"])


class Derby(Server):
    """Apache Derby 10.8 network server: the DRDA stand-in for DB2 (stack/derby/pom.xml)."""

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

    def init(self) -> None:
        # Create the database with Derby's own embedded driver: JCC cannot pass `create=true`.
        if (self.data_dir / self.cfg.db2.database / "service.properties").exists():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        run(["java", f"-Dderby.system.home={self.data_dir}", "-cp", self.classpath,
             f"-Dij.connection.db=jdbc:derby:{self.cfg.db2.database};create=true",
             "org.apache.derby.tools.ij"], input="exit;\n", cwd=self.data_dir)

    def start(self) -> None:
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
    return [cfg.mysql.password_env, cfg.postgres.password_env, cfg.db2.password_env]


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
