"""Process supervision for every server the project starts (MariaDB, PostgreSQL, FerretDB,
Derby, the Hadoop daemons, Superset): one pid file, one log file, an optional system user, a
readiness probe with a deadline, and a stop that escalates from SIGTERM to SIGKILL.

Servers are detached (own session, stdin closed) so they outlive the `ecomlake` command that
started them; the pid file is how a later `ecomlake ... down` or `status` finds them.
"""
from __future__ import annotations

import logging
import os
import pwd
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

log = logging.getLogger(__name__)


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:     # exists, owned by another user
        return True
    # A zombie (exited, not yet reaped) still answers kill(0); look at its state.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


@dataclass
class Supervised:
    """One long-running process: where its pid and log live, and which system user runs it
    (None: the caller's user)."""
    name: str
    pid_file: Path
    log_file: Path
    user: str | None = None

    def pid(self) -> int | None:
        """The pid of the running process, or None (no pid file, or the process is gone)."""
        try:
            pid = int(self.pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if alive(pid) else None

    def spawn(self, cmd: list[str], *, env: dict[str, str] | None = None,
              cwd: Path | None = None) -> int:
        """Start the process detached, output appended to the log file, and record its pid. The
        user is switched in the child (no runuser in between), so the pid is the server's own."""
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        as_user = {}
        if self.user is not None:     # its own primary group, and no other group
            as_user = {"user": self.user, "group": pwd.getpwnam(self.user).pw_gid,
                       "extra_groups": []}
        with open(self.log_file, "ab") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=cwd,
                                    stdin=subprocess.DEVNULL, start_new_session=True,
                                    env=env if env is not None else dict(os.environ), **as_user)
        self.pid_file.write_text(str(proc.pid))
        return proc.pid

    def wait(self, ready: Callable[[], bool], *, timeout: float, what: str = "start",
             where: str = "") -> None:
        """Poll `ready` until it is true; past the deadline (or if the process died while
        starting), raise with the log's tail, which is where the reason is."""
        wait_all([self], ready, timeout=timeout, what=what, where=where)

    def stop(self, timeout: float = 30.0) -> bool:
        """SIGTERM, then SIGKILL after `timeout` seconds. True if a process was running."""
        return stop_all([self], timeout)[0]

    def tail(self, chars: int = 1500) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def wait_all(procs: Iterable[Supervised], ready: Callable[[], bool], *, timeout: float,
             what: str = "start", where: str = "") -> None:
    """Poll `ready` (e.g. a cluster's health, which several processes make together) until it
    is true. While starting, a process of `procs` that has a pid file but no longer runs fails
    the wait at once; past the deadline it fails too. Either way the error carries the log's
    tail (of the process that died, or of the first one)."""
    procs = list(procs)
    deadline = time.monotonic() + timeout
    where = where and f" ({where})"
    while time.monotonic() < deadline:
        if ready():
            return
        if what == "start":
            for p in procs:
                if p.pid_file.exists() and p.pid() is None:
                    raise RuntimeError(f"{p.name} exited while starting{where}; "
                                       f"log {p.log_file}:\n{p.tail()}")
        time.sleep(0.3)
    names = " + ".join(p.name for p in procs)
    first = procs[0]
    raise RuntimeError(f"{names} did not {what} within {timeout:.0f}s{where}; "
                       f"log {first.log_file}:\n{first.tail()}")


def stop_all(procs: Iterable[Supervised], timeout: float = 30.0) -> list[bool]:
    """SIGTERM every running process of `procs` at once, wait for them together, SIGKILL what
    is left after `timeout` seconds. For each, in order: whether a process was running."""
    procs = list(procs)
    pids: dict[int, Supervised] = {}
    was = []
    for p in procs:
        pid = p.pid()
        p.pid_file.unlink(missing_ok=True)
        was.append(pid is not None)
        if pid is None:
            continue
        try:
            os.kill(pid, signal.SIGTERM)
            pids[pid] = p
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid, p in pids.items():
        if alive(pid):
            log.warning("%s (pid %d) ignored SIGTERM for %.0fs: killing it", p.name, pid, timeout)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    # SIGKILL is not instant either: return once the processes are gone (their ports free).
    deadline = time.monotonic() + 5
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return was
