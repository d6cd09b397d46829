"""What every part of the local Hadoop shares: its addresses and sizes, the four daemons and
the Layout of its files under <stack.dir>/hadoop. The package docstring (ecomlake.ops.hadoop)
describes the cluster."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ecomlake.config import PROJECT_ROOT, Config
from ecomlake.ops.supervise import Supervised

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

