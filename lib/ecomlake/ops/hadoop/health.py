"""Is the cluster up: the daemons' /jmx beans (HDFS safe mode, live DataNodes, active
NodeManagers), and waiting until HDFS and YARN are ready."""
from __future__ import annotations

import json
import urllib.request

from ecomlake.ops.hadoop.layout import DAEMONS, HOST, NN_HTTP, RM_HTTP, START_TIMEOUT_S, Layout
from ecomlake.ops.supervise import wait_all


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
