"""The PostgreSQL metastore database of `adx stack`, against a real server started by this module."""

from __future__ import annotations

import os
import socket
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from ports import free_port_block

from ingestion.settings import Settings
from ingestion.stack.postgres import (
    MetastoreError,
    PostgresMetastoreDb,
    check_metastore,
    parse_metastore_url,
)
from ingestion.stack.process import PortInUseError, StackError

METASTORE_TABLES = 44  # of the JDO model in hive-metastore 2.3.10 (ingestion/stack/metastore_schema.py)


@dataclass(frozen=True)
class PostgresFixture:
    settings: Settings  # data_dir is a temporary folder; metastore_db_port points at this server
    db: PostgresMetastoreDb


def _free_port() -> int:
    return free_port_block(1, 21000, 21899, "the test PostgreSQL server")


def _settings(data_dir: Path, port: int, **overrides) -> Settings:
    # Explicit None: an ADX_METASTORE_PASSWORD or ADX_METASTORE_URL of the calling shell must not leak in.
    values = {"metastore_password": None, "metastore_url": None} | overrides
    return Settings(data_dir=data_dir, warehouse="stack", metastore_db_port=port, **values)


@pytest.fixture(scope="module")
def postgres(tmp_path_factory) -> Iterator[PostgresFixture]:
    # pytest's temporary folders are mode 0700: the service itself must let the `postgres` OS user through.
    data_dir: Path = tmp_path_factory.mktemp("adx-pg")
    for attempt in range(3):  # another process may take the port between the check and the server's bind
        settings = _settings(data_dir, _free_port())
        db = PostgresMetastoreDb(settings)
        try:
            db.start(timeout=60)
            break
        except PortInUseError:
            if attempt == 2:
                raise
    try:
        yield PostgresFixture(settings=settings, db=db)
    finally:
        db.stop()


def _connect(settings: Settings, password: str, dbname: str = "metastore") -> psycopg.Connection:
    return psycopg.connect(
        host="127.0.0.1",
        port=settings.metastore_db_port,
        user=settings.metastore_user,
        password=password,
        dbname=dbname,
        connect_timeout=5,
        autocommit=True,
    )


@pytest.mark.integration
def test_start_gives_a_healthy_metastore_database(postgres):
    status = postgres.db.status()
    assert (status.name, status.running, status.healthy) == ("postgres", True, True)
    assert status.address == f"127.0.0.1:{postgres.settings.metastore_db_port}"
    # The Hive metastore's schema, created at first start from the metastore's JDO model (44 tables).
    assert status.detail == f"database metastore, {METASTORE_TABLES} tables"
    with _connect(postgres.settings, postgres.settings.resolved_metastore_password()) as conn:
        tables = {row[0] for row in conn.execute("select table_name from information_schema.tables")}
        foreign_keys = conn.execute(
            "select count(*) from information_schema.table_constraints where constraint_type = 'FOREIGN KEY'"
        ).fetchone()[0]
    assert {"DBS", "TBLS", "SDS", "PARTITIONS", "PARTITION_KEY_VALS", "TBL_PRIVS"} <= tables
    assert foreign_keys > 30
    assert status.pid == postgres.db.pid() is not None
    check_metastore(postgres.settings)  # the preflight of the Spark session passes

    if os.geteuid() == 0:  # PostgreSQL refuses root: the server runs as the postgres OS user
        uid = os.stat(f"/proc/{status.pid}").st_uid
        assert uid != 0
        assert postgres.db.data_dir.stat().st_uid == uid
    assert stat.S_IMODE(postgres.db.data_dir.stat().st_mode) == 0o700


@pytest.mark.integration
def test_start_again_is_a_no_op(postgres):
    pid = postgres.db.pid()
    password = postgres.settings.metastore_password_file.read_text()
    started = time.monotonic()
    postgres.db.start()
    assert time.monotonic() - started < 5
    assert postgres.db.pid() == pid
    assert postgres.settings.metastore_password_file.read_text() == password


@pytest.mark.integration
def test_the_generated_password_is_private_and_logs_in_as_an_ordinary_owner(postgres):
    password_file = postgres.settings.metastore_password_file
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    password = password_file.read_text().strip()
    assert len(password) >= 24
    assert postgres.settings.resolved_metastore_password() == password

    with _connect(postgres.settings, password) as conn:
        user, database, superuser = conn.execute(
            "select current_user, current_database(), rolsuper from pg_roles where rolname = current_user"
        ).fetchone()
        owner = conn.execute("select pg_get_userbyid(datdba) from pg_database where datname = 'metastore'").fetchone()
    assert (user, database, superuser) == ("adx", "metastore", False)
    assert owner == ("adx",)


@pytest.mark.integration
def test_a_wrong_password_is_refused_with_a_message_naming_the_setting(postgres):
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        _connect(postgres.settings, "not-the-password")

    wrong = _settings(postgres.settings.data_dir, postgres.settings.metastore_db_port, metastore_password="wrong")
    with pytest.raises(MetastoreError) as raised:
        check_metastore(wrong)
    message = str(raised.value)
    assert "ADX_METASTORE_PASSWORD" in message and "user adx" in message
    assert "\n" not in message and "Traceback" not in message

    other_db = _settings(
        postgres.settings.data_dir,
        postgres.settings.metastore_db_port,
        metastore_url=f"jdbc:postgresql://127.0.0.1:{postgres.settings.metastore_db_port}/nope",
    )
    with pytest.raises(MetastoreError, match="has no database nope: check ADX_METASTORE_URL"):
        check_metastore(other_db)


@pytest.mark.integration
def test_the_server_listens_on_loopback_only_and_needs_a_password_over_tcp(postgres):
    with postgres.db._superuser() as conn:
        assert conn.execute("show listen_addresses").fetchone() == ("127.0.0.1",)
        rules = conn.execute(
            "select type, database, user_name, address, auth_method from pg_hba_file_rules order by line_number"
        ).fetchall()
    assert rules == [
        ("local", ["all"], ["postgres"], None, "trust"),
        ("host", ["all"], ["all"], "127.0.0.1", "scram-sha-256"),
    ]
    # The superuser cannot log in over TCP: it has no password.
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(host="127.0.0.1", port=postgres.settings.metastore_db_port, user="postgres", dbname="postgres")


@pytest.mark.integration
def test_a_stopped_server_is_reported_and_a_restart_keeps_the_tables(postgres):
    settings, db = postgres.settings, postgres.db
    password = settings.resolved_metastore_password()
    with _connect(settings, password) as conn:
        conn.execute("create table if not exists kept (db_id bigint primary key, name text)")
        conn.execute("insert into kept values (1, 'default') on conflict do nothing")
    pid = db.pid()
    assert pid is not None
    try:
        started = time.monotonic()
        assert db.stop() is True  # a fast shutdown, no SIGKILL
        assert time.monotonic() - started < 10
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        status = db.status()
        assert (status.running, status.healthy, status.pid, status.detail) == (False, False, None, "stopped")
        address = f"127.0.0.1:{settings.metastore_db_port}"
        with pytest.raises(MetastoreError) as raised:
            check_metastore(settings)
        message = str(raised.value)
        assert f"no PostgreSQL metastore at {address}" in message and "ADX_METASTORE_URL" in message
        assert "adx stack up" in message and "\n" not in message
        assert db.stop() is True  # stopping a stopped server does nothing
    finally:
        db.start(timeout=60)

    assert db.pid() not in (None, pid)
    assert db.status().detail == f"database metastore, {METASTORE_TABLES + 1} tables"
    with _connect(settings, password) as conn:
        assert conn.execute("select name from kept").fetchall() == [("default",)]


@pytest.mark.integration
def test_adx_metastore_password_wins_over_the_generated_one(postgres):
    settings, db = postgres.settings, postgres.db
    chosen = _settings(settings.data_dir, settings.metastore_db_port, metastore_password="chosen-by-hand")
    generated = settings.metastore_password_file.read_text()
    try:
        PostgresMetastoreDb(chosen).start()  # running: provisions the role again with the chosen password
        check_metastore(chosen)
        with pytest.raises(MetastoreError, match="ADX_METASTORE_PASSWORD"):
            check_metastore(settings)  # the generated password no longer works...
        assert settings.metastore_password_file.read_text() == generated  # ...and was not overwritten
    finally:
        db.start()  # back to the generated password
    check_metastore(settings)


def test_start_refuses_a_port_taken_by_another_process(tmp_path):
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        db = PostgresMetastoreDb(_settings(tmp_path, port))
        with pytest.raises(PortInUseError, match=f"127.0.0.1:{port} is in use .* set ADX_METASTORE_DB_PORT"):
            db.start()
    assert not db.process.pid_file.exists()
    assert not db.data_dir.exists()


def test_check_metastore_names_the_url_when_nothing_listens(tmp_path):
    port = _free_port()
    with pytest.raises(MetastoreError) as raised:
        check_metastore(_settings(tmp_path, port))
    assert str(raised.value) == (
        f"no PostgreSQL metastore at 127.0.0.1:{port} (ADX_METASTORE_URL); start it with `adx stack up`"
    )


def test_check_metastore_does_nothing_for_derby(tmp_path):
    settings = Settings(data_dir=tmp_path, warehouse="embedded", metastore_url=None)
    assert settings.metastore_is_derby
    check_metastore(settings)


def test_a_cluster_of_another_major_version_is_refused(tmp_path):
    db = PostgresMetastoreDb(_settings(tmp_path, _free_port()))
    db.data_dir.mkdir(parents=True)
    (db.data_dir / "PG_VERSION").write_text("9\n")
    with pytest.raises(StackError, match="created by PostgreSQL 9, but only .* is installed"):
        db.start()
    assert db.pid() is None


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("jdbc:postgresql://127.0.0.1:15432/metastore", ("127.0.0.1", 15432, "metastore")),
        ("jdbc:postgresql://db.example.com/hive?ssl=true", ("db.example.com", 5432, "hive")),
        ("jdbc:postgresql://[::1]:5433/metastore", ("::1", 5433, "metastore")),
    ],
)
def test_parse_metastore_url(url, expected):
    address = parse_metastore_url(url)
    assert (address.host, address.port, address.database) == expected


@pytest.mark.parametrize("url", ["jdbc:mysql://127.0.0.1:3306/metastore", "jdbc:postgresql://127.0.0.1:5432"])
def test_an_unusable_metastore_url_names_the_setting(url):
    with pytest.raises(MetastoreError, match="ADX_METASTORE_URL"):
        parse_metastore_url(url)
