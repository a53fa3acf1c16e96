"""Settings, the Spark configuration, and the dbt profile agree on the warehouse."""

from pathlib import Path

import yaml

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
    not_in_profile = {"spark.app.name", "spark.driver.extraJavaOptions", "spark.jars", "spark.sql.ansi.enabled"}
    assert set(loader_conf) - not_in_profile == set(profile_conf)


def test_telemetry_is_off():
    project = yaml.safe_load(Path(PROJECT_DIR / "dbt_project.yml").read_text())
    assert project["flags"]["send_anonymous_usage_stats"] is False
    assert Settings().dbt_env()["DBT_SEND_ANONYMOUS_USAGE_STATS"] == "false"
