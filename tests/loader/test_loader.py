"""The Spark loader against a real local Spark and Hive metastore, on hand-made landing files."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import fastavro
import pytest

from ingestion.loader import find_batches, load
from ingestion.sources import AVRO_SCHEMA_PATH, BID_REQUESTS, SOURCES

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "landing"
DAY = date(2026, 11, 1)


def _bid_request(request_id: str) -> dict:
    return {
        "id": request_id,
        "timestamp": 1793527200000,
        "exchange": "exchange-a",
        "at": 2,
        "tmax": 120,
        "cur": ["USD"],
        "imp": [
            {
                "id": "1",
                "banner": {"w": 300, "h": 250},
                "video": None,
                "bidfloor": 0.5,
                "bidfloorcur": "USD",
            }
        ],
        "site": {"id": "s1", "domain": "news.example.com", "page": "https://news.example.com/"},
        "app": None,
        "device": {
            "ua": "Mozilla/5.0",
            "ip": "192.0.2.1",
            "devicetype": 2,
            "os": "linux",
            "geo": {"country": "USA", "region": "CA", "lat": None, "lon": None},
        },
        "user": {"id": "u_000001"},
        "outcome": {"campaign_id": "cmp_001", "bid": True, "bid_price": 1.25, "win": False, "clearing_price": None},
    }


@pytest.fixture
def landing(warehouse_settings) -> Path:
    """A fresh landing folder: the fixture files plus an Avro drop with one good and one corrupt file."""
    landing_dir = warehouse_settings.landing_dir
    shutil.rmtree(landing_dir, ignore_errors=True)
    shutil.copytree(FIXTURES, landing_dir)
    rtb = landing_dir / BID_REQUESTS.landing_subdir / f"dt={DAY}"
    rtb.mkdir(parents=True)
    schema = fastavro.parse_schema(fastavro.schema.load_schema(str(AVRO_SCHEMA_PATH)))
    with (rtb / "bid-requests-01.avro").open("wb") as handle:
        fastavro.writer(handle, schema, [_bid_request("req-1"), _bid_request("req-2")], codec="deflate")
    (rtb / "bid-requests-02.avro").write_bytes(b"Obj\x01 this is not an avro file")
    with (rtb / "bid-requests-03.avro").open("wb") as handle:  # sound container and block, broken record
        fastavro.writer(handle, schema, [_bid_request("req-3")], codec="null")
    damaged = bytearray((rtb / "bid-requests-03.avro").read_bytes())
    record_start = damaged.index(b"req-3") - 1  # the string's length byte
    damaged[record_start] = 0x7F  # a negative length: no reader can decode the record
    (rtb / "bid-requests-03.avro").write_bytes(bytes(damaged))
    return landing_dir


def _day(spark, table: str):
    """The test day's partition only: the session's warehouse also holds other tests' days."""
    return spark.table(table).where(f"_ingest_date = date'{DAY}'")


def _partition_rows(spark, table: str) -> list[tuple]:
    frame = _day(spark, table).drop("_loaded_at")
    return sorted(tuple(map(str, row)) for row in frame.collect())


def test_every_record_is_landed_or_quarantined_with_a_reason(spark, warehouse_settings, landing):
    results = {r.source: r for r in load(spark, warehouse_settings, dates=[DAY])}

    impressions = results["impressions"]
    assert (impressions.records_read, impressions.records_landed, impressions.records_quarantined) == (6, 3, 3)
    reasons = sorted(r.reason for r in _day(spark, "raw.quarantine_impressions").collect())
    assert reasons == ["malformed_json", "malformed_json", "not_a_json_object"]
    landed = {r.event_id: r for r in _day(spark, "raw.impressions").collect()}
    assert landed["imp-1"].cost_micros == "2350" and landed["imp-1"].country == " us"
    assert landed["imp-1"].bid_request_id is None and landed["imp-2"].bid_request_id == "req-9"
    assert landed["imp-4"].event_time == "not-a-time"  # staging rejects it, not the loader

    clicks = results["clicks"]
    assert (clicks.records_read, clicks.records_landed, clicks.records_quarantined) == (6, 4, 2)
    quarantined = _day(spark, "raw.quarantine_clicks").collect()
    assert {r.reason for r in quarantined} == {"wrong_column_count"}
    assert {r.payload.split(",")[0] for r in quarantined} == {"clk-2", "clk-3"}
    quoted = _day(spark, "raw.clicks").where("click_id = 'clk-4'").first()
    assert quoted.landing_page_url == "https://shop.example.com/q?a=1,b=2"
    doubled_quotes = _day(spark, "raw.clicks").where("click_id = 'clk-6'").first()
    assert doubled_quotes.landing_page_url == 'https://shop.example.com/?q="gift"'

    conversions = results["conversions"]
    assert (conversions.records_read, conversions.records_landed, conversions.records_quarantined) == (2, 1, 1)

    bids = results["bid_requests"]
    assert (bids.records_read, bids.records_landed, bids.records_quarantined) == (4, 2, 2)
    corrupt = _day(spark, "raw.quarantine_bid_requests").orderBy("_source_file").collect()
    assert [(r.reason, r._source_file) for r in corrupt] == [
        ("unreadable_avro_file", "bid-requests-02.avro"),
        ("unreadable_avro_file", "bid-requests-03.avro"),
    ]
    request = _day(spark, "raw.bid_requests").where("id = 'req-1'").first()
    assert request.imp[0].banner.w == 300 and request.outcome.bid_price == 1.25

    assert all(r.reconciled and not r.skipped for r in results.values())
    audit = {
        (r.source, r.batch_id) for r in spark.table("raw.load_batches").where(f"ingest_date = date'{DAY}'").collect()
    }
    assert {(r.source, r.batch_id) for r in results.values()} <= audit  # earlier tests may have loaded this day too


def test_loading_the_same_files_twice_changes_nothing(spark, warehouse_settings, landing):
    load(spark, warehouse_settings, dates=[DAY])
    before = {s.raw_table: _partition_rows(spark, s.raw_table) for s in SOURCES.values()}
    batches_before = spark.table("raw.load_batches").count()

    again = load(spark, warehouse_settings, dates=[DAY])

    assert all(r.skipped for r in again)
    assert {s.raw_table: _partition_rows(spark, s.raw_table) for s in SOURCES.values()} == before
    assert spark.table("raw.load_batches").count() == batches_before


def test_a_changed_batch_replaces_its_partition_instead_of_appending(spark, warehouse_settings, landing):
    load(spark, warehouse_settings, dates=[DAY])
    clicks_file = landing / "tracking/clicks" / f"dt={DAY}" / "clicks.csv"
    header, first_row, *_ = clicks_file.read_text().splitlines()
    clicks_file.write_text(f"{header}\n{first_row}\n")

    (result,) = load(spark, warehouse_settings, source_names=["clicks"], dates=[DAY])

    assert not result.skipped
    assert (result.records_read, result.records_landed, result.records_quarantined) == (1, 1, 0)
    assert [r.click_id for r in _day(spark, "raw.clicks").collect()] == ["clk-1"]
    assert _day(spark, "raw.quarantine_clicks").count() == 0


def test_batches_are_found_per_arrival_date_folder(warehouse_settings, landing):
    (landing / "impressions" / "not-a-date-folder").mkdir()
    batches = find_batches(warehouse_settings, SOURCES["impressions"])
    assert [(b.ingest_date, [p.name for p in b.files]) for b in batches] == [(DAY, ["web-01.jsonl"])]
    assert find_batches(warehouse_settings, SOURCES["impressions"], dates=[date(2026, 11, 2)]) == []
