"""The daemons as processes: the server jars (Maven Central), the `java` command line and
environment, the daemons' OS user, formatting the NameNode, start, stop, and who a process
runs as."""
from __future__ import annotations

import logging
import os
import pwd
import shutil
import subprocess
import time
from pathlib import Path

from ecomlake.ops.hadoop.layout import (DAEMONS, HOST, JAVA_OPENS, POM, STOP_TIMEOUT_S, USER,
                                        Daemon, Layout)
from ecomlake.ops.stack import ensure_os_user, give_to, run
from ecomlake.ops.supervise import port_open, stop_all

# the package's logger, named as before the split: log lines still say ecomlake.ops.hadoop
log = logging.getLogger(__package__)


# -- jars, format, processes --------------------------------------------------------------------

def ensure_jars(lay: Layout) -> None:
    """Resolve the server jars from Maven Central, again whenever stack/hadoop/pom.xml changes."""
    stamp = lay.jars / ".pom.xml"
    if stamp.exists() and stamp.read_text() == POM.read_text() and any(lay.jars.glob("*.jar")):
        return
    log.info("resolving the Hadoop jars from Maven Central (first time only)")
    t0 = time.monotonic()
    shutil.rmtree(lay.jars, ignore_errors=True)
    run(["mvn", "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
         f"-DoutputDirectory={lay.jars}"])
    stamp.write_text(POM.read_text())
    log.info("Hadoop jars resolved in %.1fs", time.monotonic() - t0)


def java_home() -> str:
    if os.environ.get("JAVA_HOME"):
        return os.environ["JAVA_HOME"]
    java = shutil.which("java")
    if not java:
        raise RuntimeError("no `java` on PATH: install a JDK 17 (Debian: openjdk-17-jdk-headless)")
    return str(Path(java).resolve().parents[1])


def _java(lay: Layout, heap: str, main: str, *args: str, name: str = "client",
          user: str = USER) -> list[str]:
    return [str(Path(java_home()) / "bin" / "java"), f"-Xmx{heap}", *JAVA_OPENS,
            f"-Dproc_{name}", "-Djava.net.preferIPv4Stack=true",
            f"-Dhadoop.log.dir={lay.log}", f"-Dhadoop.log.file={name}.log",
            f"-Dyarn.log.dir={lay.log}", f"-Dhadoop.home.dir={lay.home}",
            f"-Dhadoop.id.str={user}", "-Dhadoop.root.logger=INFO,console",
            "-Dhadoop.security.logger=INFO,NullAppender",
            "-cp", lay.classpath, main, *args]


def _env(lay: Layout, *, daemon: bool = True) -> dict[str, str]:
    """The environment of a daemon (or, daemon=False, of a client run as the caller). A daemon is
    who its OS user is: no $HADOOP_USER_NAME (which would make it someone else to HDFS), and
    HOME in its own data folder."""
    env = {**os.environ, "JAVA_HOME": java_home(), "HADOOP_CONF_DIR": str(lay.conf),
           "HADOOP_HOME": str(lay.home), "TZ": "UTC"}
    if daemon:
        env.pop("HADOOP_USER_NAME", None)
        env.update(HOME=str(lay.data), USER=USER, LOGNAME=USER)
    return env


def prepare(lay: Layout) -> None:
    """The daemons' OS user exists and owns data/, log/ and run/ (files an older, root-run
    Hadoop left there included); it can read the config, the web apps and the jars."""
    ensure_os_user(USER)
    give_to(USER, lay.data, lay.log, lay.run)
    for path in (lay.conf / "core-site.xml", lay.webroot / "webapps" / "hdfs" / "WEB-INF",
                 next(lay.jars.glob("*.jar"))):
        try:
            run(["test", "-r", str(path)], user=USER)
        except RuntimeError:
            raise RuntimeError(f"the `{USER}` OS user cannot read {path}: give it read and "
                               "execute permission on the parent folders, or set stack.dir "
                               "in conf/ to a folder it can reach") from None


def format_namenode(lay: Layout) -> bool:
    """Format HDFS once: only when the NameNode has no metadata yet (as the daemons' user, who
    owns the metadata)."""
    if (lay.data / "name" / "current" / "VERSION").exists():
        return False
    log.info("formatting the NameNode (first time only)")
    # A DataNode directory from an earlier namespace would refuse the new cluster id.
    shutil.rmtree(lay.data / "datanode", ignore_errors=True)
    proc = subprocess.run(_java(lay, "512m", DAEMONS[0].main, "-format", "-nonInteractive",
                                "-clusterId", "ecomlake", name="namenode-format"),
                          capture_output=True, text=True, env=_env(lay), cwd=lay.data,
                          user=USER, group=USER, extra_groups=[])
    if proc.returncode != 0:
        raise RuntimeError(f"formatting the NameNode failed ({proc.returncode}):\n"
                           f"{proc.stderr[-2000:]}")
    return True


def running(lay: Layout, d: Daemon) -> bool:
    return lay.process(d).pid() is not None or port_open(HOST, d.port)


def start(lay: Layout, d: Daemon) -> None:
    lay.process(d).spawn(_java(lay, d.heap, d.main, name=d.name), env=_env(lay), cwd=lay.data)


def stop(lay: Layout, daemons: list[Daemon]) -> list[tuple[Daemon, bool]]:
    """SIGTERM the given daemons together (a dev cluster need not drain in order), wait for
    them, SIGKILL what is left after STOP_TIMEOUT_S."""
    return list(zip(daemons, stop_all([lay.process(d) for d in daemons], STOP_TIMEOUT_S)))


def _process_owner(pid: int) -> str:
    try:
        return pwd.getpwuid(os.stat(f"/proc/{pid}").st_uid).pw_name
    except (OSError, KeyError):
        return "?"
