"""A local single-node Hadoop 3.5.0: HDFS (NameNode + DataNode) and YARN (ResourceManager +
NodeManager), for running the same jobs with `--env yarn` (Delta tables on HDFS).

    ecomlake hadoop up       resolve the jars (first time), write the config, format HDFS
                             (first time), start the four daemons, wait until HDFS has left
                             safe mode and YARN has an active NodeManager
    ecomlake hadoop status   which daemons answer; HDFS safe mode; YARN's active NodeManagers
    ecomlake hadoop down     stop the daemons (the data stays)
    ecomlake hadoop dfs ...  the HDFS shell, e.g. `ecomlake hadoop dfs -ls -R /ecomlake`

No Hadoop tarball is reachable here: the server jars come from Maven Central
(stack/hadoop/pom.xml -> <stack.dir>/jars/hadoop) and each daemon is a plain `java -cp` process,
supervised by ecomlake.ops.supervise. Everything lives under <stack.dir>/hadoop (.local/hadoop):
conf/ (the HADOOP_CONF_DIR to give spark-submit), data/, log/<daemon>.log, run/<daemon>.pid,
python/ (the interpreter of the YARN containers, see `ensure_container_python`). Everything
binds to 127.0.0.1:

    NameNode         hdfs://127.0.0.1:9000   web http://127.0.0.1:9870
    DataNode         127.0.0.1:9866          web http://127.0.0.1:9864
    ResourceManager  127.0.0.1:8032          web http://127.0.0.1:8088
    NodeManager      127.0.0.1:8041          web http://127.0.0.1:8042

YARN offers one NodeManager of 8 GiB and 4 vcores (this machine: 2 cores, 24 GiB) and two
CapacityScheduler queues: `ecomlake` (80%, the jobs') and `default` (20%). `up` is idempotent:
it starts only what is not running, and formats the NameNode only when it has no metadata.

Who is who. The four daemons run as the unprivileged system user `ecomlake-hadoop` (created if
missing, no login, no home), which owns data/, log/ and run/; conf/, webroot/ and the jars stay
root's, read-only to it. That user is therefore HDFS's superuser, and HDFS checks permissions
(authentication is Hadoop's `simple`: a client is who its OS user is, or $HADOOP_USER_NAME).
`up` gives the user who runs it (the one who submits the jobs, root here) its HDFS home
/user/<name> (Spark's .sparkStaging goes there) and the lake root of conf/yarn.yaml
(/ecomlake), and makes /tmp world-writable with the sticky bit; nothing else of HDFS is theirs.
YARN runs containers with the DefaultContainerExecutor, i.e. as `ecomlake-hadoop` too (the
LinuxContainerExecutor, which would run them as the submitter, needs a setuid binary that the
Maven jars do not have); inside, Spark still reads and writes HDFS as the submitter.
"""
from __future__ import annotations

import argparse
import logging
import subprocess
import time

# The modules: layout (addresses, sizes, the daemons, where the files are), config_files (the
# generated conf/ and webroot/), processes (jars, java, the daemons' OS user, format, start,
# stop), container_python (the YARN containers' interpreter), health (/jmx: ready or not) and
# hdfs (HDFS folders and owners). Every name the former single module defined is importable
# from here as before. (The docstring above is `ecomlake hadoop --help`.)
from ecomlake.config import PROJECT_ROOT, Config, load_config  # noqa: F401  (re-exported)
from ecomlake.ops.hadoop.config_files import (  # noqa: F401
    HDFS_WEBAPPS, WEB_XML, _site, site_files, write_conf)
from ecomlake.ops.hadoop.container_python import ensure_container_python  # noqa: F401
from ecomlake.ops.hadoop.health import (  # noqa: F401
    _NO_PROXY, _jmx, _ready, _wait_ready, hdfs_state, yarn_active_nodes)
from ecomlake.ops.hadoop.hdfs import _webhdfs, hdfs_layout, hdfs_path, submitter  # noqa: F401
from ecomlake.ops.hadoop.layout import (  # noqa: F401
    DAEMONS, DN_HTTP, FS_DEFAULT, HOST, JAVA_OPENS, NM_HTTP, NM_MEMORY_MB, NM_VCORES, NN_HTTP, POM,
    QUEUES, RM_HTTP, START_TIMEOUT_S, STOP_TIMEOUT_S, USER, Daemon, Layout, conf_dir)
from ecomlake.ops.hadoop.processes import (  # noqa: F401
    _env, _java, _process_owner, ensure_jars, format_namenode, java_home, prepare, running, start,
    stop)
from ecomlake.ops.stack import ensure_os_user, give_to, run  # noqa: F401
from ecomlake.ops.supervise import Supervised, port_open, stop_all, wait_all  # noqa: F401

log = logging.getLogger(__name__)


# -- the commands ---------------------------------------------------------------------------------

def up(cfg: Config) -> list[tuple[Daemon, str]]:
    """Start whatever is not running; return (daemon, what happened) for each."""
    lay = Layout(cfg)
    if cfg.lake_root.startswith("hdfs://") and hdfs_path(cfg.lake_root) is None:
        log.warning("lake.root %s is not on this HDFS (%s)", cfg.lake_root, FS_DEFAULT)
    if any(lay.process(d).pid() for d in DAEMONS) and any(lay.jars.glob("*.jar")):
        pass                  # never swap the jars under running daemons (`down` first)
    else:
        ensure_jars(lay)
    write_conf(lay)
    prepare(lay)
    ensure_container_python(lay)
    results = []
    formatted = False
    for d in DAEMONS:
        if running(lay, d):
            pid = lay.process(d).pid()
            if pid is not None and _process_owner(pid) != USER:
                log.warning("the %s (pid %d) runs as %s, not %s: `ecomlake hadoop down` then "
                            "`up` restarts it as %s", d.name, pid, _process_owner(pid), USER, USER)
            results.append((d, "already running"))
            continue
        if d.name == "namenode":
            formatted = format_namenode(lay)
        start(lay, d)
        results.append((d, "formatted and started" if formatted and d.name == "namenode"
                        else "started"))
    t0 = time.monotonic()
    _wait_ready(lay)
    log.info("HDFS out of safe mode and YARN has an active NodeManager after %.1fs",
             time.monotonic() - t0)
    # The lake roots of this env and of the cluster env (conf/yarn.yaml), if on this HDFS.
    roots = {cfg.lake_root} | ({load_config("yarn").lake_root} if cfg.env != "yarn" else set())
    hdfs_layout(sorted(p for p in map(hdfs_path, roots) if p))
    return results


def down(cfg: Config) -> list[tuple[Daemon, bool]]:
    return stop(Layout(cfg), list(reversed(DAEMONS)))


def status(cfg: Config) -> tuple[list[tuple[Daemon, bool]], str, int, int]:
    """(each daemon and whether it answers, HDFS state, live DataNodes, active NodeManagers)."""
    daemons = [(d, port_open(HOST, d.port)) for d in DAEMONS]
    state, live = hdfs_state()
    return daemons, state, live, yarn_active_nodes()


def dfs(cfg: Config, *args: str) -> int:
    """`hdfs dfs <args>` (org.apache.hadoop.fs.FsShell) against this HDFS; returns its exit code."""
    lay = Layout(cfg)
    return subprocess.call(_java(lay, "256m", "org.apache.hadoop.fs.FsShell", *args,
                                 name="fsshell", user=submitter()), env=_env(lay, daemon=False))


# -- `ecomlake hadoop ...` ------------------------------------------------------------------------

def cmd_hadoop(args, cfg) -> int:
    if args.action == "up":
        for d, what in up(cfg):
            print(f"{d.name:<16} {d.address:<16} {what}")
        print(f"HADOOP_CONF_DIR={conf_dir(cfg)}  fs.defaultFS={FS_DEFAULT}  "
              f"YARN http://{HOST}:{RM_HTTP}")
    elif args.action == "down":
        for d, was_running in down(cfg):
            print(f"{d.name:<16} {'stopped' if was_running else 'not running'}")
    elif args.action == "dfs":
        args_ = args.args[1:] if args.args[:1] == ["--"] else args.args
        return dfs(cfg, *args_)
    else:
        daemons, state, live, nms = status(cfg)
        lay = Layout(cfg)
        for d, ok in daemons:
            pid = lay.process(d).pid()
            who = f" (pid {pid}, user {_process_owner(pid)})" if pid else ""
            print(f"{d.name:<16} {d.address:<16} {'answers' if ok else 'NOT ANSWERING'}{who}")
        print(f"HDFS {state}, {live} live DataNode(s); YARN {nms} active NodeManager(s)")
        return 0 if all(ok for _, ok in daemons) and state == "Operational" and live and nms else 1
    return 0


def add_cli(subparsers) -> None:
    """Register `ecomlake hadoop up|down|status|dfs` on the `ecomlake` subparsers."""
    h = subparsers.add_parser("hadoop", help="start, stop or check the local HDFS + YARN",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    h.add_argument("action", choices=["up", "down", "status", "dfs"])
    h.add_argument("args", nargs=argparse.REMAINDER,
                   help="for `dfs`: the HDFS shell's arguments, e.g. -ls -R /ecomlake")
    h.set_defaults(func=cmd_hadoop)
