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
import json
import logging
import os
import pwd
import shutil
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from ecomlake.config import PROJECT_ROOT, Config, load_config
from ecomlake.ops.stack import ensure_os_user, give_to, run
from ecomlake.ops.supervise import Supervised, port_open, stop_all, wait_all

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
USER = "ecomlake-hadoop"        # the system user every daemon (and so every container) runs as
FS_DEFAULT = f"hdfs://{HOST}:9000"
NN_HTTP, DN_HTTP, RM_HTTP, NM_HTTP = 9870, 9864, 8088, 8042
QUEUES = {"ecomlake": 80, "default": 20}          # CapacityScheduler queues under root, in %
NM_MEMORY_MB, NM_VCORES = 8192, 4                 # what YARN may hand out on this machine
START_TIMEOUT_S = 120
STOP_TIMEOUT_S = 30
POM = PROJECT_ROOT / "stack" / "hadoop" / "pom.xml"

# Hadoop 3.5 on Java 17: the reflective accesses its own launcher scripts open up.
JAVA_OPENS = [f"--add-opens=java.base/{p}=ALL-UNNAMED" for p in (
    "java.lang", "java.lang.reflect", "java.lang.invoke", "java.io", "java.net", "java.nio",
    "java.util", "java.util.concurrent", "java.util.concurrent.atomic", "sun.nio.ch",
    "sun.nio.cs", "sun.security.action", "sun.util.calendar")] + [
    "--add-opens=java.security.jgss/sun.security.krb5=ALL-UNNAMED"]


@dataclass(frozen=True)
class Daemon:
    name: str
    main: str
    port: int           # the RPC/IPC port that says "it is up"
    heap: str

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"


DAEMONS = [
    Daemon("namenode", "org.apache.hadoop.hdfs.server.namenode.NameNode", 9000, "1g"),
    Daemon("datanode", "org.apache.hadoop.hdfs.server.datanode.DataNode", 9867, "512m"),
    Daemon("resourcemanager", "org.apache.hadoop.yarn.server.resourcemanager.ResourceManager",
           8032, "1g"),
    Daemon("nodemanager", "org.apache.hadoop.yarn.server.nodemanager.NodeManager", 8041, "768m"),
]


class Layout:
    """Where a Hadoop of `cfg` keeps its files: <stack.dir>/hadoop/{conf,data,log,run}."""

    def __init__(self, cfg: Config):
        self.home = cfg.stack_dir / "hadoop"
        self.jars = cfg.stack_dir / "jars" / "hadoop"
        self.conf = self.home / "conf"
        self.data = self.home / "data"
        self.log = self.home / "log"
        self.run = self.home / "run"

    def pid_file(self, d: Daemon) -> Path:
        return self.run / f"{d.name}.pid"

    def log_file(self, d: Daemon) -> Path:
        return self.log / f"{d.name}.log"

    def process(self, d: Daemon) -> Supervised:
        return Supervised(d.name, self.pid_file(d), self.log_file(d), USER)

    @property
    def python(self) -> Path:
        """The Python of the YARN containers (conf/yarn.yaml's PYSPARK_PYTHON)."""
        return self.home / "python" / "bin" / "python"

    @property
    def webroot(self) -> Path:
        return self.home / "webroot"

    @property
    def classpath(self) -> str:
        return f"{self.conf}:{self.webroot}:{self.jars}/*"


def conf_dir(cfg: Config) -> Path:
    """The HADOOP_CONF_DIR to give spark-submit for `--env yarn`."""
    return Layout(cfg).conf


# -- configuration files ------------------------------------------------------------------------

def _site(props: dict[str, object]) -> str:
    body = "".join(f"  <property><name>{escape(k)}</name><value>{escape(str(v))}</value></property>\n"
                   for k, v in props.items())
    return f'<?xml version="1.0"?>\n<!-- generated by ecomlake.ops.hadoop; edits are overwritten -->\n' \
           f"<configuration>\n{body}</configuration>\n"


def site_files(lay: Layout) -> dict[str, str]:
    data = lay.data
    core = {
        "fs.defaultFS": FS_DEFAULT,
        "hadoop.tmp.dir": data / "tmp",
        # No proxy users, no Kerberos: a single-user development cluster.
        "hadoop.security.authentication": "simple",
    }
    hdfs = {
        "dfs.replication": 1,
        "dfs.namenode.name.dir": f"file://{data / 'name'}",
        "dfs.datanode.data.dir": f"file://{data / 'datanode'}",
        "dfs.namenode.rpc-address": f"{HOST}:9000",
        "dfs.namenode.rpc-bind-host": HOST,
        "dfs.namenode.servicerpc-bind-host": HOST,
        "dfs.namenode.lifeline.rpc-bind-host": HOST,
        "dfs.namenode.http-address": f"{HOST}:{NN_HTTP}",
        "dfs.namenode.http-bind-host": HOST,
        "dfs.namenode.https-address": f"{HOST}:9871",
        "dfs.namenode.secondary.http-address": f"{HOST}:9868",
        "dfs.namenode.secondary.https-address": f"{HOST}:9869",
        "dfs.namenode.backup.address": f"{HOST}:50100",
        "dfs.namenode.backup.http-address": f"{HOST}:50105",
        "dfs.datanode.address": f"{HOST}:9866",
        "dfs.datanode.http.address": f"{HOST}:{DN_HTTP}",
        "dfs.datanode.https.address": f"{HOST}:9865",
        "dfs.datanode.ipc.address": f"{HOST}:9867",
        "dfs.datanode.hostname": HOST,
        "dfs.client.use.datanode.hostname": "true",
        "dfs.namenode.datanode.registration.ip-hostname-check": "false",
        # One DataNode: leave safe mode as soon as its blocks are reported (default waits 30 s).
        "dfs.namenode.safemode.extension": 0,
        # Permissions on: the daemons' user is the superuser; `up` hands the submitting user
        # its home and the lake root (see hdfs_layout).
        "dfs.permissions.enabled": "true",
        "dfs.webhdfs.enabled": "true",
        "dfs.namenode.audit.log.async": "true",
    }
    yarn = {
        "yarn.resourcemanager.hostname": HOST,
        "yarn.resourcemanager.bind-host": HOST,
        "yarn.resourcemanager.address": f"{HOST}:8032",
        "yarn.resourcemanager.scheduler.address": f"{HOST}:8030",
        "yarn.resourcemanager.resource-tracker.address": f"{HOST}:8031",
        "yarn.resourcemanager.admin.address": f"{HOST}:8033",
        "yarn.resourcemanager.webapp.address": f"{HOST}:{RM_HTTP}",
        "yarn.resourcemanager.webapp.https.address": f"{HOST}:8090",
        "yarn.resourcemanager.scheduler.class":
            "org.apache.hadoop.yarn.server.resourcemanager.scheduler.capacity.CapacityScheduler",
        "yarn.nodemanager.hostname": HOST,
        "yarn.nodemanager.bind-host": HOST,
        "yarn.nodemanager.address": f"{HOST}:8041",
        "yarn.nodemanager.localizer.address": f"{HOST}:8040",
        "yarn.nodemanager.webapp.address": f"{HOST}:{NM_HTTP}",
        "yarn.nodemanager.webapp.https.address": f"{HOST}:8044",
        "yarn.nodemanager.collector-service.address": f"{HOST}:8048",
        "yarn.nodemanager.amrmproxy.address": f"{HOST}:8049",
        "yarn.nodemanager.local-dirs": data / "nm-local",
        "yarn.nodemanager.log-dirs": lay.log / "containers",
        "yarn.log-aggregation-enable": "false",
        # Keep finished containers' files a while (for debugging a failed run).
        "yarn.nodemanager.delete.debug-delay-sec": 600,
        # Size: 2 cores / 24 GiB, shared with the local stack and the Spark driver.
        "yarn.nodemanager.resource.memory-mb": NM_MEMORY_MB,
        "yarn.nodemanager.resource.cpu-vcores": NM_VCORES,
        "yarn.scheduler.minimum-allocation-mb": 512,
        "yarn.scheduler.maximum-allocation-mb": NM_MEMORY_MB,
        "yarn.scheduler.minimum-allocation-vcores": 1,
        "yarn.scheduler.maximum-allocation-vcores": NM_VCORES,
        # Java reserves far more virtual memory than it uses: the vmem check kills healthy JVMs.
        "yarn.nodemanager.vmem-check-enabled": "false",
        "yarn.nodemanager.pmem-check-enabled": "true",
        "yarn.nodemanager.disk-health-checker.max-disk-utilization-per-disk-percentage": 98,
        "yarn.nodemanager.env-whitelist":
            "JAVA_HOME,HADOOP_COMMON_HOME,HADOOP_HDFS_HOME,HADOOP_CONF_DIR,CLASSPATH_PREPEND_DISTCACHE,"
            "HADOOP_YARN_HOME,HADOOP_HOME,PATH,LANG,TZ",
        "yarn.resourcemanager.nodemanager-connect-retries": 10,
        "yarn.timeline-service.enabled": "false",
    }
    cap = {
        "yarn.scheduler.capacity.root.queues": ",".join(QUEUES),
        # The ApplicationMaster of a Spark job needs ~1 GiB: the default 10% would keep a
        # second concurrent job ACCEPTED forever on an 8 GiB node.
        "yarn.scheduler.capacity.maximum-am-resource-percent": 0.5,
        "yarn.scheduler.capacity.resource-calculator":
            "org.apache.hadoop.yarn.util.resource.DefaultResourceCalculator",
        "yarn.scheduler.capacity.root.acl_submit_applications": "*",
        "yarn.scheduler.capacity.root.acl_administer_queue": "*",
    }
    for q, pct in QUEUES.items():
        p = f"yarn.scheduler.capacity.root.{q}"
        cap.update({f"{p}.capacity": pct, f"{p}.maximum-capacity": 100, f"{p}.state": "RUNNING",
                    f"{p}.user-limit-factor": round(100 / pct, 2),
                    f"{p}.acl_submit_applications": "*", f"{p}.acl_administer_queue": "*"})
    log4j = "\n".join([
        "# generated by ecomlake.ops.hadoop: the daemons log to stderr (-> <daemon>.log)",
        "log4j.rootLogger=INFO,console",
        "log4j.appender.console=org.apache.log4j.ConsoleAppender",
        "log4j.appender.console.target=System.err",
        "log4j.appender.console.layout=org.apache.log4j.PatternLayout",
        "log4j.appender.console.layout.ConversionPattern=%d{ISO8601} %p %c{2}: %m%n",
        "log4j.appender.NullAppender=org.apache.log4j.varia.NullAppender",
        "log4j.logger.org.apache.hadoop.hdfs.server.namenode.FSNamesystem.audit=WARN",
        "log4j.logger.org.apache.hadoop.hdfs.server.datanode.DataNode.clienttrace=WARN",
        "log4j.logger.org.apache.hadoop.yarn.server.resourcemanager.RMAuditLogger=WARN",
        "log4j.logger.org.apache.hadoop.yarn.server.nodemanager.NMAuditLogger=WARN",
        "log4j.logger.org.apache.hadoop.util.NativeCodeLoader=ERROR",
        "log4j.logger.org.apache.hadoop.metrics2=WARN", ""])
    return {"core-site.xml": _site(core), "hdfs-site.xml": _site(hdfs),
            "yarn-site.xml": _site(yarn), "capacity-scheduler.xml": _site(cap),
            "log4j.properties": log4j}


# The hadoop-hdfs 3.5.0 jar on Maven Central lacks the webapps/ folder of the tarball, and the
# NameNode and DataNode refuse to start without webapps/<name> on the classpath. An empty web
# app is enough: /jmx, WebHDFS and the other servlets are registered in code (only the HTML UI
# pages are missing).
HDFS_WEBAPPS = ("hdfs", "datanode", "secondary", "journal", "router")
WEB_XML = ('<?xml version="1.0" encoding="UTF-8"?>\n<web-app xmlns="http://xmlns.jcp.org/xml/ns/javaee" '
           'version="3.1"/>\n')


def write_conf(lay: Layout) -> None:
    lay.conf.mkdir(parents=True, exist_ok=True)
    for name, text in site_files(lay).items():
        path = lay.conf / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
    for app in HDFS_WEBAPPS:
        web_inf = lay.webroot / "webapps" / app / "WEB-INF"
        web_inf.mkdir(parents=True, exist_ok=True)
        (web_inf / "web.xml").write_text(WEB_XML)


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


def ensure_container_python(lay: Layout) -> Path:
    """The Python of the YARN containers, which run as USER: a virtualenv at <hadoop>/python
    whose one .pth line adds the project's site-packages, so that executors import exactly the
    packages the driver does. Its interpreter is one USER can run: the project's own when it is
    reachable, else the system's python3.X of the same minor version (Spark wants driver and
    workers to agree on major.minor). The project's interpreter often is not reachable: pyenv
    keeps it under /root, mode 700, and making /root traversable is not ours to do."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    home = lay.python.parent.parent
    pth = home / "lib" / f"python{version}" / "site-packages" / "ecomlake-venv.pth"
    line = f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n"
    if lay.python.exists() and pth.exists() and pth.read_text() == line:
        return lay.python
    candidates = [os.path.realpath(getattr(sys, "_base_executable", sys.executable)),
                  shutil.which(f"python{version}"), f"/usr/bin/python{version}",
                  f"/usr/local/bin/python{version}"]
    probe = "import sys; print('%d.%d' % sys.version_info[:2])"
    for python in dict.fromkeys(c for c in candidates if c and os.path.exists(c)):
        try:
            if run([python, "-c", probe], user=USER).strip() == version:
                break
        except RuntimeError:
            continue
    else:
        raise RuntimeError(f"no Python {version} that the `{USER}` OS user can run (tried "
                           f"{', '.join(c for c in candidates if c)}): YARN containers run as "
                           f"that user. Install Debian's python{version}, or make the project's "
                           "interpreter reachable")
    log.info("container Python: a virtualenv over %s with the project's packages", python)
    shutil.rmtree(home, ignore_errors=True)
    run([python, "-m", "venv", "--without-pip", str(home)])
    pth.write_text(line)
    return lay.python


def running(lay: Layout, d: Daemon) -> bool:
    return lay.process(d).pid() is not None or port_open(HOST, d.port)


def start(lay: Layout, d: Daemon) -> None:
    lay.process(d).spawn(_java(lay, d.heap, d.main, name=d.name), env=_env(lay), cwd=lay.data)


def stop(lay: Layout, daemons: list[Daemon]) -> list[tuple[Daemon, bool]]:
    """SIGTERM the given daemons together (a dev cluster need not drain in order), wait for
    them, SIGKILL what is left after STOP_TIMEOUT_S."""
    return list(zip(daemons, stop_all([lay.process(d) for d in daemons], STOP_TIMEOUT_S)))


# -- health ---------------------------------------------------------------------------------------

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _jmx(port: int, query: str) -> dict:
    """One bean of a daemon's /jmx servlet ({} if the daemon does not answer yet)."""
    try:
        with _NO_PROXY.open(f"http://{HOST}:{port}/jmx?qry={query}", timeout=3) as r:
            beans = json.load(r).get("beans", [])
    except (OSError, ValueError):
        return {}
    return beans[0] if beans else {}


def hdfs_state() -> tuple[str, int]:
    """(FSState: `Operational` or `safeMode`, live DataNodes); ('down', 0) if no answer."""
    bean = _jmx(NN_HTTP, "Hadoop:service=NameNode,name=FSNamesystemState")
    return bean.get("FSState", "down"), int(bean.get("NumLiveDataNodes", 0))


def yarn_active_nodes() -> int:
    return int(_jmx(RM_HTTP, "Hadoop:service=ResourceManager,name=ClusterMetrics")
               .get("NumActiveNMs", 0))


def _ready() -> bool:
    state, live = hdfs_state()
    return state == "Operational" and live >= 1 and yarn_active_nodes() >= 1


def _wait_ready(lay: Layout) -> None:
    try:
        wait_all([lay.process(d) for d in DAEMONS], _ready, timeout=START_TIMEOUT_S)
    except RuntimeError as exc:
        state, live = hdfs_state()
        raise RuntimeError(f"Hadoop not ready: HDFS {state} with {live} live DataNode(s), "
                           f"YARN {yarn_active_nodes()} active NodeManager(s). Logs: {lay.log}. "
                           f"{exc}") from None


# -- HDFS folders and owners ----------------------------------------------------------------------

def submitter() -> str:
    """Who HDFS takes this user's clients (spark-submit, the tests) for: simple authentication
    trusts $HADOOP_USER_NAME, else the OS user."""
    return os.environ.get("HADOOP_USER_NAME") or pwd.getpwuid(os.getuid()).pw_name


def hdfs_path(uri: str) -> str | None:
    """The path of `uri` if it is on this HDFS (hdfs://127.0.0.1:9000/... or hdfs:///...)."""
    u = urllib.parse.urlsplit(uri)
    if u.scheme == "hdfs" and u.netloc in ("", FS_DEFAULT.split("//")[1]) and u.path.strip("/"):
        return u.path.rstrip("/")
    return None


def _webhdfs(op: str, path: str, **params: str) -> None:
    """One WebHDFS call to the NameNode as the superuser (USER): no JVM to start."""
    query = urllib.parse.urlencode({"op": op, "user.name": USER, **params})
    req = urllib.request.Request(
        f"http://{HOST}:{NN_HTTP}/webhdfs/v1{urllib.parse.quote(path)}?{query}", method="PUT")
    try:
        with _NO_PROXY.open(req, timeout=30) as r:
            r.read()
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"HDFS {op} {path} failed: {exc.read().decode(errors='replace')}") \
            from None


def hdfs_layout(lake_paths: list[str]) -> None:
    """With permissions on, the submitting user gets what it writes and nothing more: its home
    /user/<name> (Spark stages each application's files in .sparkStaging there) and the lake
    roots, which it owns; /tmp is everyone's, with the sticky bit; / and /user are the
    superuser's (an HDFS formatted while the daemons ran as root has them as root's).
    Idempotent."""
    for path in ("/", "/user"):
        _webhdfs("MKDIRS", path, permission="755")
        _webhdfs("SETOWNER", path, owner=USER)
    _webhdfs("MKDIRS", "/tmp")
    _webhdfs("SETPERMISSION", "/tmp", permission="1777")
    who = submitter()
    for path in [f"/user/{who}", *lake_paths]:
        _webhdfs("MKDIRS", path, permission="755")
        _webhdfs("SETOWNER", path, owner=who)


def _process_owner(pid: int) -> str:
    try:
        return pwd.getpwuid(os.stat(f"/proc/{pid}").st_uid).pw_name
    except (OSError, KeyError):
        return "?"


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
