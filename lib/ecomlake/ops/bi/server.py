"""Superset's process lifecycle: its virtualenv and metadata database, the admin user, and the
gunicorn server under ecomlake.ops.supervise (pid file, log file, readiness deadline, stop)."""
from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from ecomlake.config import PROJECT_ROOT, Config
from ecomlake.ops.stack import ensure_secrets
from ecomlake.ops.supervise import Supervised

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
PORT = 18089                    # not 8088: YARN's ResourceManager web UI is there
ADMIN = "admin"
PASSWORD_VAR = "ECOMLAKE_SUPERSET_PASSWORD"
SECRET_KEY_VAR = "ECOMLAKE_SUPERSET_SECRET_KEY"
STACK_DIR = PROJECT_ROOT / "stack" / "superset"
CONFIG_FILE = STACK_DIR / "superset_config.py"
START_TIMEOUT_S = 180
STOP_TIMEOUT_S = 30


@dataclass(frozen=True)
class Paths:
    home: Path          # .local/superset

    @property
    def venv(self) -> Path:
        return self.home / "venv"

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    @property
    def log_file(self) -> Path:
        return self.home.parent / "log" / "superset.log"

    @property
    def pid_file(self) -> Path:
        return self.home.parent / "run" / "superset.pid"

    @property
    def init_stamp(self) -> Path:
        return self.home / "metadata-initialized"


def paths(cfg: Config) -> Paths:
    return Paths(cfg.stack_dir / "superset")


def base_url() -> str:
    return f"http://{HOST}:{PORT}"


def supervisor(cfg: Config) -> Supervised:
    p = paths(cfg)
    return Supervised("superset", p.pid_file, p.log_file)


def credentials(cfg: Config) -> tuple[str, str]:
    """(user, password) of Superset's admin; the password from the environment, else generated
    once into .local/stack.env."""
    values = ensure_secrets(cfg.stack_dir, [PASSWORD_VAR, SECRET_KEY_VAR])
    return ADMIN, os.environ.get(PASSWORD_VAR) or values[PASSWORD_VAR]


def _superset_env(cfg: Config) -> dict[str, str]:
    p = paths(cfg)
    values = ensure_secrets(cfg.stack_dir, [PASSWORD_VAR, SECRET_KEY_VAR])
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECOMLAKE_")}
    env.update({
        "SUPERSET_CONFIG_PATH": str(CONFIG_FILE),
        "SUPERSET_HOME": str(p.home / "home"),
        "ECOMLAKE_SUPERSET_HOME": str(p.home),
        "ECOMLAKE_SUPERSET_PORT": str(PORT),
        "SUPERSET_SECRET_KEY": os.environ.get(SECRET_KEY_VAR) or values[SECRET_KEY_VAR],
        "FLASK_APP": "superset",
        "PATH": f"{p.bin}:{env.get('PATH', '')}",
        "PYTHONUNBUFFERED": "1",
    })
    return env


def _run_superset(cfg: Config, args: list[str], *, input: str | None = None,
                  extra_env: dict | None = None, what: str = "") -> str:
    """One command in Superset's virtualenv (to completion), its output appended to the log."""
    p = paths(cfg)
    p.log_file.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(args, input=input, text=True, capture_output=True,
                          env={**_superset_env(cfg), **(extra_env or {})}, cwd=p.home)
    with open(p.log_file, "a") as f:
        f.write(f"--- {what or args[0]} (rc {proc.returncode})\n{proc.stdout}{proc.stderr}")
    if proc.returncode != 0:
        raise RuntimeError(f"superset: {what or ' '.join(args[:3])} failed ({proc.returncode}); "
                           f"see {p.log_file}:\n{proc.stderr[-1500:]}")
    return proc.stdout


def healthy(timeout: float = 2.0) -> bool:
    try:
        return requests.get(f"{base_url()}/health", timeout=timeout).status_code == 200
    except requests.RequestException:
        return False


def _installed_version(cfg: Config) -> str:
    p = paths(cfg)
    if not (p.bin / "superset").exists():
        raise RuntimeError(f"Superset is not installed at {p.venv}: run stack/superset/install.sh "
                           "(`make bi` does it)")
    meta = sorted((p.venv / "lib").glob("python3*/site-packages/apache_superset-*.dist-info"))
    return meta[-1].name.split("-")[1] if meta else "unknown"


def _init_metadata(cfg: Config) -> None:
    """`superset db upgrade` + `superset init` when the metadata DB is new or Superset changed
    (a stamp remembers the version); then make sure the admin user has the current password."""
    p = paths(cfg)
    want = f"{_installed_version(cfg)} {hashlib.sha256(CONFIG_FILE.read_bytes()).hexdigest()}"
    if p.init_stamp.exists() and p.init_stamp.read_text().strip() == want \
            and (p.home / "superset.db").exists():
        return
    t0 = time.monotonic()
    log.info("superset: initializing the metadata database %s", p.home / "superset.db")
    _run_superset(cfg, [str(p.bin / "superset"), "db", "upgrade"], what="superset db upgrade")
    _run_superset(cfg, [str(p.bin / "superset"), "init"], what="superset init")
    ensure_admin(cfg)
    p.init_stamp.write_text(want + "\n")
    log.info("superset: metadata database ready in %.1fs", time.monotonic() - t0)


_ADMIN_SCRIPT = """
import os, sys
from superset.app import create_app
app = create_app()
with app.app_context():
    from superset.extensions import security_manager as sm
    user, pw = os.environ["BI_ADMIN_USER"], sys.stdin.read()
    found = sm.find_user(username=user)
    if found is None:
        if not sm.add_user(user, "ecomlake", "admin", f"{user}@localhost",
                           sm.find_role("Admin"), password=pw):
            sys.exit("could not create the admin user")
        print("created")
    else:
        sm.reset_password(found.id, pw)
        print("password set")
"""


def ensure_admin(cfg: Config) -> None:
    """Create the admin user, or set its password to the current one (stdin: never argv)."""
    user, pw = credentials(cfg)
    out = _run_superset(cfg, [str(paths(cfg).bin / "python"), "-c", _ADMIN_SCRIPT], input=pw,
                        extra_env={"BI_ADMIN_USER": user}, what="admin user")
    log.info("superset: admin user `%s`: %s", user, out.strip().splitlines()[-1] if out else "")


def start(cfg: Config) -> str:
    """Start Superset (gunicorn, one worker with threads: 2 cores) unless it answers already;
    return once /health answers."""
    p = paths(cfg)
    if healthy():
        return "already running"
    (p.home / "home").mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    _init_metadata(cfg)
    proc = supervisor(cfg)
    if proc.pid():
        log.info("superset: pid %s is starting already; waiting for it", proc.pid())
    else:
        proc.spawn([str(p.bin / "gunicorn"), "--bind", f"{HOST}:{PORT}", "--workers", "1",
                    "--worker-class", "gthread", "--threads", "8", "--timeout", "120",
                    "--limit-request-line", "0", "--limit-request-field_size", "0",
                    "superset.app:create_app()"], env=_superset_env(cfg), cwd=p.home)
    proc.wait(healthy, timeout=START_TIMEOUT_S, where=f"{base_url()}/health")
    return f"started in {time.monotonic() - t0:.1f}s"


def stop(cfg: Config) -> bool:
    """Stop Superset: SIGTERM to gunicorn's master (it stops its worker), SIGKILL after
    STOP_TIMEOUT_S. True if it was running."""
    return supervisor(cfg).stop(STOP_TIMEOUT_S)
