"""Each real server of the local stack, through the project's own I/O modules; how a server
that is down or a wrong password is reported; and the one process supervisor they all use."""
import pwd
import time

import pytest

from ecomlake.ops import stack
from ecomlake.ops.supervise import Supervised, alive
from ecomlake.config import load_config
from ecomlake.errors import LoginRefused, ServiceUnavailable
from ecomlake.io import mongo, mysql
from ecomlake.io.warehouse import DB2Warehouse, PostgresWarehouse

CLOSED_PORT = 1  # nothing listens on port 1 on loopback


def test_stack_status_every_server_answers(cfg):
    assert {s.name: ok for s, ok in stack.status(cfg)} == {
        "mariadb": True, "ferretdb": True, "postgres": True, "derby": True}


def test_stack_up_twice_is_harmless(cfg):
    assert all(what == "already running" for _, what in stack.up(cfg))


def test_supervised_runs_as_its_user_and_stops_with_term_then_kill(tmp_path):
    """The supervisor every server starts under: the user is switched in the child (the pid is
    the process's own), a process that ignores SIGTERM is killed after the timeout, and one
    that dies while starting fails the wait with its log."""
    proc = Supervised("deaf", tmp_path / "run" / "deaf.pid", tmp_path / "log" / "deaf.log",
                      user="nobody")
    pid = proc.spawn(["sh", "-c", "trap '' TERM; echo ready; while :; do sleep 0.1; done"])
    proc.wait(lambda: "ready" in proc.tail(), timeout=10)
    assert proc.pid() == pid
    uid = str(pwd.getpwnam("nobody").pw_uid)
    status = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status") if ":" in line)
    assert status["Uid"].split() == [uid] * 4
    t0 = time.monotonic()
    assert proc.stop(timeout=1) is True
    assert 1 <= time.monotonic() - t0 < 10 and not alive(pid)
    assert proc.pid() is None and proc.stop() is False

    dies = Supervised("dies", tmp_path / "run" / "dies.pid", tmp_path / "log" / "dies.log")
    dies.spawn(["sh", "-c", "echo cannot bind; exit 3"])
    with pytest.raises(RuntimeError, match="dies exited while starting(.|\\n)*cannot bind"):
        dies.wait(lambda: False, timeout=10)


def test_mysql_answers_sql(cfg):
    conn = mysql.connect(cfg)
    cur = conn.cursor()
    cur.execute("SELECT VERSION()")
    assert "MariaDB" in cur.fetchone()[0]
    conn.close()


def test_mongo_answers_commands(cfg):
    with mongo.client(cfg) as c:
        db = c[cfg.mongo.database]
        db.drop_collection("it_probe")
        db.it_probe.insert_many([{"k": i, "screen size": i / 2} for i in range(10)])
        assert db.it_probe.count_documents({"screen size": {"$gte": 2}}) == 6
        db.drop_collection("it_probe")


def test_postgres_answers_sql(cfg):
    conn = PostgresWarehouse(cfg).connect()
    assert conn.query("SELECT current_user, current_database()") == [("ecomlake", "warehouse")]
    conn.close()


def test_db2_standin_answers_db2_sql_over_jcc(cfg, spark):
    conn = DB2Warehouse(cfg).connect(spark)
    # SYSIBM.SYSDUMMY1 and FETCH FIRST are DB2 dialect, accepted over DRDA by the stand-in
    assert conn.query("SELECT 1 FROM SYSIBM.SYSDUMMY1 FETCH FIRST 1 ROWS ONLY") == [(1,)]
    conn.close()


@pytest.mark.parametrize("server,check", [
    ("mysql", mysql.check), ("mongo", mongo.check),
    ("postgres", lambda c: PostgresWarehouse(c).connect().close()),
])
def test_server_down_is_named_with_its_address_and_the_fix(server, check):
    cfg = load_config("local", overrides={server: {"port": CLOSED_PORT}})
    t0 = time.monotonic()
    with pytest.raises(ServiceUnavailable) as err:
        check(cfg)
    assert time.monotonic() - t0 < 10
    assert f"127.0.0.1:{CLOSED_PORT}" in str(err.value)
    assert "ecomlake stack up" in str(err.value)


def test_db2_down_is_named(spark):
    cfg = load_config("local", overrides={"db2": {"port": CLOSED_PORT}})
    with pytest.raises(ServiceUnavailable, match=f"DB2 .* at 127.0.0.1:{CLOSED_PORT}"):
        DB2Warehouse(cfg).connect(spark)


@pytest.mark.parametrize("server,check", [
    ("mysql", mysql.check),
    ("postgres", lambda c: PostgresWarehouse(c).connect().close()),
])
def test_wrong_password_is_refused_without_printing_it(monkeypatch, cfg, server, check):
    secret = "Wr0ng-pa55word-xyz"
    monkeypatch.setenv(getattr(cfg, server).password_env, secret)
    with pytest.raises(LoginRefused) as err:
        check(cfg)
    assert "refused the login of user 'ecomlake'" in str(err.value)
    assert secret not in str(err.value)
    assert getattr(cfg, server).password_env in str(err.value)


@pytest.mark.skipif(not __import__("os").environ.get("DB2_URL"),
                    reason="no real DB2 here: set DB2_URL, DB2_USER and DB2_PASSWORD to run it")
def test_real_db2_answers(spark):
    conn = DB2Warehouse(load_config("local")).connect(spark)
    assert conn.query("SELECT 1 FROM SYSIBM.SYSDUMMY1") == [(1,)]
    conn.close()
