"""What every server of the local stack shares: the Server base class and the setup helpers
(commands, Debian packages, OS users, folders, private files, stack.env). The package docstring
(ecomlake.ops.stack) describes the stack."""
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

from ecomlake.config import STACK_ENV_FILE, read_env_file
from ecomlake.ops.supervise import Supervised, port_open

# the package's logger, named as before the split: log lines still say ecomlake.ops.stack
log = logging.getLogger(__package__)

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
