"""Pseudonymous user ids (macros/pseudonymise.sql, ingestion/pseudonyms.py) on the session's built warehouse: every
staged user id is HMAC-SHA-256 of the raw one under the warehouse's key; no table outside raw and reference holds a
raw user id or IP address (a scan of every string column, which finds them in raw); and the key material is in
dbt's Spark session only, not in dbt's compiled SQL, artifacts or logs, nor in any view's definition. Last, the right to erasure
(ingestion/erasure.py): a user named by raw id leaves every table, and only their rows do.

That attribution is unchanged by the pseudonyms is test_pipeline's ground-truth check: the generator computes the
truth from the raw ids."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from parquet_footers import footer_kinds, table_folder

from ingestion.erasure import ERASURE_LOG, RAW_USER_ID, built_tables_with_user_id, erase_users
from ingestion.pseudonyms import pseudonym, pseudonym_key, pseudonym_pads
from ingestion.raw_encryption import KEY_LIST_CONF, raw_parquet_master_key
from ingestion.sources import SOURCES
from ingestion.transform import run_dbt

pytestmark = pytest.mark.integration

# raw table, its event id, its user id; the staging base table and its event id
USER_IDS = [
    ("raw.impressions", "event_id", "user_id", "staging.base_adserver__impressions_validated", "impression_id"),
    ("raw.clicks", "click_id", "user_id", "staging.base_tracking__clicks_validated", "click_id"),
    ("raw.conversions", "conversion_id", "user_id", "staging.base_tracking__conversions_validated", "conversion_id"),
    ("raw.bid_requests", "id", "`user`.id", "staging.base_rtb__bid_requests_validated", "bid_request_id"),
]
SCANNED_SCHEMAS = ("staging", "intermediate", "marts", "ops")


@pytest.mark.parametrize(("raw", "raw_event_id", "raw_user_id", "base", "event_id"), USER_IDS)
def test_every_staged_user_id_is_the_hmac_of_the_raw_one(
    spark, built_warehouse, raw, raw_event_id, raw_user_id, base, event_id
):
    key = pseudonym_key(built_warehouse.settings)
    pairs = spark.sql(
        f"""
        select nullif(trim(r.{raw_user_id}), '') as raw_user_id, b.user_id
        from {raw} as r
        inner join {base} as b on trim(r.{raw_event_id}) = b.{event_id} and r._ingest_date = b._ingest_date
            and r._source_file = b._source_file
        """
    ).collect()

    assert len({p.raw_user_id for p in pairs}) > 10
    wrong = [
        (p.raw_user_id, p.user_id)
        for p in pairs
        if p.user_id
        != (None if p.raw_user_id is None else hmac.new(key, p.raw_user_id.encode(), hashlib.sha256).hexdigest())
    ]
    assert wrong == []


def test_no_table_analysts_can_reach_holds_a_raw_user_id_or_ip(spark, built_warehouse):
    spark.sql(
        """
        create or replace temporary view raw_identifiers as
        select user_id as value from raw.impressions
        union select user_id from raw.clicks
        union select user_id from raw.conversions
        union select `user`.id from raw.bid_requests
        union select device.ip from raw.bid_requests
        """
    )
    assert spark.sql("select count(*) from raw_identifiers where value like '%.%.%.%'").first()[0] > 0  # IPs too

    spark.sql("cache table raw_identifiers")  # read once from the encrypted raw zone, not once per column
    try:
        found = {
            f"{table}.{column}": hits
            for schema in SCANNED_SCHEMAS
            for table, columns in _string_columns(spark, schema).items()
            for column, hits in _identifier_hits(spark, table, columns).items()
        }
        # The scan finds raw identifiers where they live.
        assert _identifier_hits(spark, "raw.clicks", ["user_id"])["user_id"] > 0
        assert _identifier_hits(spark, "reference.user_demographics", ["user_id"])["user_id"] > 0
    finally:
        spark.sql("uncache table raw_identifiers")

    assert found == {}


def test_the_key_is_in_dbts_spark_session_only(spark, built_warehouse):
    settings = built_warehouse.settings
    inner, outer = (pad.hex() for pad in pseudonym_pads(settings))
    raw_master_key = raw_parquet_master_key(settings)
    secrets = (inner, outer, pseudonym_key(settings).decode(), raw_master_key)
    assert spark.conf.get("adx.pseudonym.inner_pad") == inner  # where dbt's session keeps it
    assert spark.conf.get(KEY_LIST_CONF).endswith(raw_master_key)  # the raw zone's master key (raw_encryption.py)
    assert spark.sql(f"set {KEY_LIST_CONF}").first().value == "*********(redacted)"  # but SET does not show it

    files = [
        path
        for folder in (settings.dbt_project_dir / "target", settings.dbt_project_dir / "logs")
        for path in folder.rglob("*")
        if path.is_file()
    ]
    views = [
        f"{schema}.{row.viewName}"
        for schema in ("raw", *SCANNED_SCHEMAS)
        for row in spark.sql(f"show views in {schema}").collect()
        if not row.isTemporary
    ]
    assert len(files) > 100 and len(views) >= 8  # dbt's artifacts and logs; the staging views at least

    assert [path for path in files if any(secret.encode() in path.read_bytes() for secret in secrets)] == []
    assert [
        view for view in views if any(secret in spark.sql(f"show create table {view}").first()[0] for secret in secrets)
    ] == []
    compiled = settings.dbt_project_dir / "target" / "run" / "adx" / "dbt_project" / "staging" / "adserver" / "base"
    assert "${adx.pseudonym.inner_pad}" in (compiled / "base_adserver__impressions_validated.sql").read_text()


def _string_columns(spark, schema: str) -> dict[str, list[str]]:
    """Every table of the schema with a string column, and those columns."""
    tables = {
        f"{schema}.{table.name}": [
            column.name for column in spark.catalog.listColumns(table.name, schema) if column.dataType == "string"
        ]
        for table in spark.catalog.listTables(schema)
        if not table.isTemporary
    }
    return {table: columns for table, columns in tables.items() if columns}


def _identifier_hits(spark, table: str, columns: list[str]) -> dict[str, int]:
    """Per column, how many of the table's values are raw identifiers (one scan of the table for all its columns)."""
    cells = ", ".join(f"'{column}', `{column}`" for column in columns)
    rows = spark.sql(
        f"""
        select name, count(*) from (select stack({len(columns)}, {cells}) as (name, value) from {table}) as cells
        left semi join raw_identifiers on cells.value = raw_identifiers.value
        group by name
        """
    ).collect()
    return dict(rows)


# Last in this module: it changes the shared warehouse (the next user of built_warehouse rebuilds it).
def test_erasing_a_user_removes_their_rows_everywhere_and_nothing_else(spark, built_warehouse):
    settings = built_warehouse.settings
    user = _user_with_clicks_and_a_quarantined_record(spark)
    user_pseudonym = pseudonym(settings, user)
    raw_zone = [table for source in SOURCES.values() for table in (source.raw_table, source.quarantine_table)]
    tables = raw_zone + built_tables_with_user_id(spark)
    rows_before = {table: spark.table(table).count() for table in tables}
    assert _places_of(spark, user, user_pseudonym, tables)["raw.quarantine_impressions"] > 0

    removals = {r.table: r.rows for r in erase_users(spark, settings, [user])}

    assert _places_of(spark, user, user_pseudonym, tables) == {}
    rows_after = {table: spark.table(table).count() for table in tables}
    assert {t: rows_before[t] - rows_after[t] for t in tables} == {t: removals.get(t, 0) for t in tables}
    assert removals["marts.fct_clicks"] > 0 and removals["staging.base_tracking__clicks_validated"] > 0
    lake = settings.data_dir / "lake"
    kinds_after = {table: set(footer_kinds(table_folder(lake, table))) for table in raw_zone}
    # raw_encryption.py: the rewrites keep the tables' encryption (a quarantine table may hold no file at all)
    assert all(kinds <= {"PARE"} for kinds in kinds_after.values()) and kinds_after["raw.clicks"] == {"PARE"}
    logged = spark.sql(f"select * from {ERASURE_LOG}").collect()
    assert {row.table_name for row in logged} == set(removals) and all(
        row.pseudonyms == [user_pseudonym] for row in logged
    )

    # A rebuild from the erased raw tables does not bring the user back (dim_users excepted: its seed names them).
    in_seed = spark.sql(f"select count(*) from reference.user_demographics where user_id = '{user}'").first()[0]
    run_dbt(settings, ["run", "--full-refresh"])
    assert _places_of(spark, user, user_pseudonym, tables) == ({"marts.dim_users": 1} if in_seed else {})


def _user_with_clicks_and_a_quarantined_record(spark) -> str:
    """A raw user id that has clicks and is named by a quarantined impression record."""
    row = spark.sql(
        """
        select q.user_id
        from (
            select distinct regexp_extract(payload, '(u_[0-9]+)', 1) as user_id from raw.quarantine_impressions
        ) as q
        inner join (select distinct trim(user_id) as user_id from raw.clicks) as c on q.user_id = c.user_id
        where q.user_id != ''
        order by q.user_id
        limit 1
        """
    ).first()
    assert row is not None, "no quarantined impression names a user who clicked: pick another seed"
    return row.user_id


def _places_of(spark, raw_user_id: str, user_pseudonym: str, tables: list[str]) -> dict[str, int]:
    """Table -> rows naming the user (raw id in raw, a quarantined payload naming it, the pseudonym elsewhere)."""
    raw_column = {source.raw_table: RAW_USER_ID[name] for name, source in SOURCES.items()}
    quarantine = {source.quarantine_table for source in SOURCES.values()}
    places = {}
    for table in tables:
        if table in raw_column:
            predicate = f"trim({raw_column[table]}) = '{raw_user_id}'"
        elif table in quarantine:
            predicate = f"payload rlike '(^|[^A-Za-z0-9_]){raw_user_id}($|[^A-Za-z0-9_])'"
        else:
            predicate = f"user_id = '{user_pseudonym}'"
        if rows := spark.sql(f"select count(*) from {table} where {predicate}").first()[0]:
            places[table] = rows
    return places
