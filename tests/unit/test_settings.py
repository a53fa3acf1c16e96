"""Settings, the Spark configuration, and the dbt profile agree on the warehouse."""

from pathlib import Path

import yaml

from ingestion.pseudonyms import pseudonym_session_conf
from ingestion.settings import PROJECT_DIR, Settings
from ingestion.spark import spark_conf


def test_defaults_put_lake_and_metastore_under_the_data_folder(tmp_path):
    settings = Settings(data_dir=tmp_path)
    assert settings.resolved_lake_uri == str(tmp_path / "lake")
    assert settings.resolved_metastore_url == f"jdbc:derby:;databaseName={tmp_path / 'metastore_db'};create=true"


def test_lake_uri_is_one_setting(monkeypatch, tmp_path):
    monkeypatch.setenv("ADX_LAKE_URI", "hdfs://127.0.0.1:9000/adx/lake")
    settings = Settings(data_dir=tmp_path)
    assert spark_conf(settings)["spark.sql.warehouse.dir"] == "hdfs://127.0.0.1:9000/adx/lake"
    assert settings.dbt_env()["ADX_LAKE_URI"] == "hdfs://127.0.0.1:9000/adx/lake"


def test_the_embedded_dbt_profile_sets_what_the_loaders_set(tmp_path):
    """dbt run outside `adx` (by hand, or from Airflow) must open the same warehouse as the loaders."""
    profile = yaml.safe_load(Path(PROJECT_DIR / "profiles" / "profiles.yml").read_text())
    profile_conf = profile["adx"]["outputs"]["embedded"]["server_side_parameters"]
    loader_conf = spark_conf(Settings(data_dir=tmp_path))
    not_in_profile = {"spark.app.name", "spark.driver.extraJavaOptions", "spark.sql.ansi.enabled"}
    dbt_only = set(pseudonym_session_conf(Settings(data_dir=tmp_path)))  # the pseudonymisation pads
    assert set(loader_conf) - not_in_profile == set(profile_conf) - dbt_only
    thrift_session_conf = profile["adx"]["outputs"]["thrift"]["server_side_parameters"]
    assert dbt_only <= set(profile_conf) and {f"set:hiveconf:{key}" for key in dbt_only} == set(thrift_session_conf)


def test_telemetry_is_off():
    project = yaml.safe_load(Path(PROJECT_DIR / "dbt_project.yml").read_text())
    assert project["flags"]["send_anonymous_usage_stats"] is False
    assert Settings().dbt_env()["DBT_SEND_ANONYMOUS_USAGE_STATS"] == "false"


def test_the_stack_warehouse_is_hdfs_postgres_and_the_thrift_server(monkeypatch, tmp_path):
    for name in ("ADX_LAKE_URI", "ADX_METASTORE_URL", "ADX_DBT_TARGET", "ADX_WAREHOUSE"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(data_dir=tmp_path, hdfs_port=20000, metastore_db_port=20100, thrift_port=20200).for_stack()
    assert settings.resolved_lake_uri == "hdfs://127.0.0.1:20000/adx/lake"
    assert settings.resolved_metastore_url == "jdbc:postgresql://127.0.0.1:20100/metastore"
    assert settings.resolved_dbt_target == "thrift"
    assert settings.dbt_env()["ADX_THRIFT_PORT"] == "20200"
    # An explicit location wins over the stack's default: the lake is one setting.
    monkeypatch.setenv("ADX_LAKE_URI", str(tmp_path / "lake"))
    assert Settings(data_dir=tmp_path).for_stack().resolved_lake_uri == str(tmp_path / "lake")


def test_a_postgres_metastore_gets_its_driver_user_and_generated_password(tmp_path):
    jars = tmp_path / "jars"
    jars.mkdir()
    (jars / "postgresql-42.7.14.jar").touch()
    settings = Settings(data_dir=tmp_path, jars_dir=jars, warehouse="stack")
    settings.metastore_password_file.parent.mkdir(parents=True)
    settings.metastore_password_file.write_text("generated-secret\n")
    conf = spark_conf(settings)
    assert conf["spark.hadoop.javax.jdo.option.ConnectionDriverName"] == "org.postgresql.Driver"
    assert conf["spark.hadoop.javax.jdo.option.ConnectionUserName"] == "adx"
    assert conf["spark.hadoop.javax.jdo.option.ConnectionPassword"] == "generated-secret"  # pragma: allowlist secret
    assert conf["spark.driver.extraClassPath"] == str(jars / "postgresql-42.7.14.jar")
    explicit = Settings(data_dir=tmp_path, jars_dir=jars, warehouse="stack", metastore_password="from-env")
    explicit_password = spark_conf(explicit)["spark.hadoop.javax.jdo.option.ConnectionPassword"]
    assert explicit_password == "from-env"  # pragma: allowlist secret
    assert "from-env" not in repr(explicit)  # a SecretStr: not in logs or tracebacks


def test_the_thrift_profile_connects_to_the_configured_port():
    profile = yaml.safe_load(Path(PROJECT_DIR / "profiles" / "profiles.yml").read_text())
    thrift = profile["adx"]["outputs"]["thrift"]
    assert (thrift["method"], thrift["host"], thrift["auth"]) == ("thrift", "127.0.0.1", "LDAP")
    assert "ADX_THRIFT_PORT" in thrift["port"]
    assert "ADX_THRIFT_USER" in thrift["user"]
    assert "DBT_ENV_SECRET_ADX_THRIFT_PASSWORD" in thrift["password"]  # dbt scrubs it from its logs


def test_cosmos_runs_the_embedded_target_by_default_and_thrift_on_the_stack(tmp_path):
    from ingestion.orchestration.dbt_cosmos import cosmos_task_group_kwargs
    from ingestion.orchestration.tasks import manifest_dir

    manifest = manifest_dir(Settings(data_dir=tmp_path)) / "manifest.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text("{}")
    embedded = cosmos_task_group_kwargs(Settings(data_dir=tmp_path))
    stack = cosmos_task_group_kwargs(Settings(data_dir=tmp_path, warehouse="stack"))
    assert embedded["profile_config"].target_name == "embedded"
    assert stack["profile_config"].target_name == "thrift"
    assert stack["operator_args"]["env"]["ADX_DBT_TARGET"] == "thrift"
    assert embedded["execution_config"].execution_mode.value == "watcher"


def test_a_relative_data_dir_gives_airflow_an_absolute_home(monkeypatch, tmp_path):
    """Airflow refuses a relative sqlite path (seen: `--data-dir data/x` failed `airflow db migrate`)."""
    from ingestion.orchestration.airflow_env import airflow_environment

    monkeypatch.chdir(tmp_path)
    settings = Settings(data_dir=Path("data"))
    assert settings.data_dir == tmp_path / "data"
    environment = airflow_environment(settings)
    assert environment["AIRFLOW_HOME"] == str(tmp_path / "data" / "airflow" / "home")
