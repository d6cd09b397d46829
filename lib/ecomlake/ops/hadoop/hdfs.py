"""HDFS folders and owners: who the submitting user is to HDFS, which URIs are on this HDFS,
and the folders `up` creates through WebHDFS (/, /user, /tmp, the user's home, the lake roots)."""
from __future__ import annotations

import os
import pwd
import urllib.error
import urllib.parse
import urllib.request

from ecomlake.ops.hadoop.health import _NO_PROXY
from ecomlake.ops.hadoop.layout import FS_DEFAULT, HOST, NN_HTTP, USER


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
