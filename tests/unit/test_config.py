import pytest

from ecomlake.config import ConfigError, load_config, load_tables


def test_load_config_local_has_every_server_on_loopback():
    cfg = load_config("local")
    for server in (cfg.mysql, cfg.mongo, cfg.postgres, cfg.db2):
        assert server.host == "127.0.0.1"
    assert cfg.mysql.jdbc_url.startswith("jdbc:mysql://127.0.0.1:")  # MySQL dialect, not mariadb


def test_load_config_unknown_key_is_named():
    with pytest.raises(ConfigError, match=r"unknown key `mysql\.prot`"):
        load_config("local", overrides={"mysql": {"prot": 1}})


def test_load_config_wrong_type_is_named():
    with pytest.raises(ConfigError, match=r"`postgres\.port` must be int"):
        load_config("local", overrides={"postgres": {"port": "5432"}})


def test_load_config_unknown_env_lists_valid_ones():
    with pytest.raises(ConfigError, match=r"unknown env `prod`.*valid envs: .*local"):
        load_config("prod")


def test_load_config_env_overrides(monkeypatch, tmp_path):
    monkeypatch.setenv("ECOMLAKE_OVERRIDES", f"{{lake: {{root: {tmp_path}}}}}")
    assert load_config("local").lake_root == str(tmp_path)
    monkeypatch.setenv("ECOMLAKE_OVERRIDES", "{lake: {rot: x}}")
    with pytest.raises(ConfigError, match=r"lake\.rot"):
        load_config("local")


def test_secret_comes_from_environment_first(monkeypatch):
    cfg = load_config("local")
    monkeypatch.setenv(cfg.mysql.password_env, "from-env")
    assert cfg.secret("mysql") == "from-env"


def test_secret_missing_says_what_to_do(monkeypatch, tmp_path):
    cfg = load_config("local", overrides={"stack": {"dir": str(tmp_path)}})
    monkeypatch.delenv(cfg.mysql.password_env, raising=False)
    with pytest.raises(ConfigError, match=r"ECOMLAKE_MYSQL_PASSWORD is not set.*ecomlake stack up"):
        cfg.secret("mysql")


def test_load_tables_rules_are_named_predicates():
    tables = load_tables()
    assert tables["sales_data"].key == ["id"]
    assert "quantity_positive" in tables["sales_data"].rules


def test_load_tables_rejects_bad_source(tmp_path):
    bad = tmp_path / "tables.yaml"
    bad.write_text("t:\n  source: oracle\n  key: [id]\n  rules: {}\n")
    with pytest.raises(ConfigError, match=r"`t\.source` must be mysql or mongo"):
        load_tables(bad)


def test_backfill_window_covers_whole_days_of_the_watermark():
    import datetime as dt
    from ecomlake.bronze import backfill_window

    spec = load_tables()["sales_data"]
    assert backfill_window(spec, dt.date(2026, 1, 30), dt.date(2026, 2, 1)) == (
        "`updated_at` >= '2026-01-30 00:00:00' AND `updated_at` < '2026-02-02 00:00:00'")


def test_job_arguments_are_explained_and_validated(capsys):
    from ecomlake.runner import parser

    p = parser("pipeline", "doc", ["bronze", "silver", "gold", "publish"])
    args = p.parse_args(["--run-date", "2026-11-25", "--backfill", "2026-11-01", "2026-11-02",
                         "--source", "mysql", "--target", "db2"])
    assert (str(args.run_date), args.source, args.target) == ("2026-11-25", "mysql", "db2")
    with pytest.raises(SystemExit):
        p.parse_args(["--run-date", "25/11/2026"])
    assert "not a date (YYYY-MM-DD)" in capsys.readouterr().err
    # the quick check, and the flag that passes it by, belong to the whole pipeline only
    with pytest.raises(SystemExit):
        p.parse_args(["--full-check"])
    whole = parser("pipeline", "doc", ["bronze", "silver", "gold", "analytics", "publish"])
    assert whole.parse_args(["--full-check"]).full_check
    assert not whole.parse_args([]).full_check


def test_a_value_outside_its_choices_is_rejected_by_name():
    with pytest.raises(ConfigError, match=r"`postgres.bulk_write` must be one of copy, jdbc, got 'fast'"):
        load_config("local", overrides={"postgres": {"bulk_write": "fast"}})
    assert load_config("local").postgres.bulk_write == "copy"


def test_java_options_follow_the_projects_own_on_driver_and_executors():
    from ecomlake.spark import spark_conf

    plain = spark_conf(load_config("local", overrides={"spark": {"java_options": ""}}))
    conf = spark_conf(load_config("local", overrides={"spark": {"java_options": "-Xss4m -Da=b"}}))
    for side in ("driver", "executor"):
        key = f"spark.{side}.extraJavaOptions"
        assert "-Duser.timezone=UTC" in plain[key].split() and "-Xss4m" not in plain[key]
        assert conf[key] == plain[key] + " -Xss4m -Da=b"
