"""The schema catalog: released bid-request schemas by fingerprint, and Avro resolution from every version to the
latest."""

from __future__ import annotations

import copy
import json
import shutil
from datetime import UTC, datetime

import pytest

from ingestion.streaming.schema_catalog import SCHEMAS_DIR, SchemaCatalog, schema_fingerprint

# Released versions and their CRC-64-AVRO fingerprints. A released schema file must never change: records written
# with it carry this fingerprint. A new version adds a line here. (v1's value was checked against Java's
# SchemaNormalization.parsingFingerprint("CRC-64-AVRO", schema) from Avro 1.12.)
RELEASED_FINGERPRINTS = {1: "24a5add9ecbac132", 2: "08d8c1c375b296ad"}  # pragma: allowlist secret


def _v1_record(request_id: str = "req-1") -> dict:
    return {
        "id": request_id,
        "timestamp": datetime(2026, 11, 1, 12, 30, 15, 250000, tzinfo=UTC),
        "exchange": "openx",
        "at": 2,
        "tmax": 120,
        "cur": ["USD"],
        "imp": [
            {
                "id": "1",
                "banner": None,
                "video": {"w": 640, "h": 360, "mimes": ["video/mp4"], "minduration": 5, "maxduration": 30},
                "bidfloor": 1.5,
                "bidfloorcur": "USD",
            }
        ],
        "site": None,
        "app": {"id": "app-1", "bundle": "com.example.game", "name": "Game"},
        "device": {
            "ua": "Mozilla/5.0",
            "ip": "192.0.2.1",
            "devicetype": 4,
            "os": "android",
            "geo": {"country": "DEU", "region": "BE", "lat": 52.52, "lon": 13.4},
        },
        "user": {"id": "u_000042"},
        "outcome": {"campaign_id": "cmp_003", "bid": True, "bid_price": 2.25, "win": True, "clearing_price": 1.75},
    }


@pytest.fixture(scope="module")
def catalog() -> SchemaCatalog:
    return SchemaCatalog.load()


def test_every_released_version_is_in_the_catalog_with_its_pinned_fingerprint(catalog):
    assert {s.version: s.fingerprint for s in catalog.schemas} == RELEASED_FINGERPRINTS
    assert catalog.latest.version == max(RELEASED_FINGERPRINTS)
    for schema in catalog.schemas:
        assert schema.path.name == f"bid_request.v{schema.version}.avsc"
        assert schema.json == schema.path.read_text(encoding="utf-8")
        assert catalog.by_fingerprint(schema.fingerprint) is schema
        assert catalog.by_fingerprint(schema.fingerprint.upper()) is schema
        assert catalog.by_version(schema.version) is schema
    assert catalog.by_fingerprint("0000000000000000") is None
    assert len({s.fingerprint for s in catalog.schemas}) == len(catalog.schemas)


def test_fingerprint_is_sixteen_hex_digits_of_the_parsing_canonical_form(catalog):
    v1 = json.loads(catalog.by_version(1).json)
    assert schema_fingerprint(v1) == schema_fingerprint(json.dumps(v1, separators=(",", ":")))
    assert len(schema_fingerprint(v1)) == 16 and int(schema_fingerprint(v1), 16) >= 0
    # The canonical form drops docs: a doc edit keeps the wire format, and the fingerprint.
    documented = copy.deepcopy(v1)
    documented["fields"][0]["doc"] = "edited"
    assert schema_fingerprint(documented) == RELEASED_FINGERPRINTS[1]


@pytest.mark.parametrize("edit", ["change_a_type", "rename_a_field", "add_a_field", "reorder_fields"])
def test_an_edit_of_a_released_schema_changes_its_fingerprint(catalog, edit):
    schema = json.loads(catalog.by_version(1).json)
    fields = schema["fields"]
    if edit == "change_a_type":
        next(f for f in fields if f["name"] == "tmax")["type"] = "long"
    elif edit == "rename_a_field":
        next(f for f in fields if f["name"] == "exchange")["name"] = "exchange_name"
    elif edit == "add_a_field":
        fields.append({"name": "deal_id", "type": ["null", "string"], "default": None})
    else:
        fields[2], fields[3] = fields[3], fields[2]
    assert schema_fingerprint(schema) != RELEASED_FINGERPRINTS[1]


def test_two_files_with_the_same_schema_are_refused(tmp_path):
    shutil.copy(SCHEMAS_DIR / "bid_request.v1.avsc", tmp_path / "bid_request.v1.avsc")
    shutil.copy(SCHEMAS_DIR / "bid_request.v1.avsc", tmp_path / "bid_request.v3.avsc")
    with pytest.raises(ValueError, match="same fingerprint"):
        SchemaCatalog.load(tmp_path)


def test_v2_is_v1_plus_one_optional_field(catalog):
    v1, v2 = json.loads(catalog.by_version(1).json), json.loads(catalog.by_version(2).json)
    assert v2["namespace"] == "com.advertisex.rtb.v2" and v2["name"] == v1["name"] == "BidRequest"
    added = v2["fields"][-1]
    assert added["name"] == "source_tid" and added["type"] == ["null", "string"] and added["default"] is None
    assert {**v2, "namespace": v1["namespace"], "fields": v2["fields"][:-1]} == v1


def test_a_v1_record_resolves_to_the_latest_schema_with_no_source_tid(catalog):
    v1 = catalog.by_version(1)
    value = v1.encode(_v1_record())
    decoded = catalog.decode(value, v1.fingerprint)  # reader: the latest version
    assert decoded == {**_v1_record(), "source_tid": None}
    assert v1.decode(value) == _v1_record()


def test_a_v2_record_resolves_to_v1_without_the_new_field(catalog):
    """Forward compatibility: readers still on v1 (the batch loader) read v2 records."""
    v1, v2 = catalog.by_version(1), catalog.by_version(2)
    value = v2.encode({**_v1_record(), "source_tid": "tid-7"})
    assert catalog.decode(value, v2.fingerprint)["source_tid"] == "tid-7"
    assert v2.decode(value, reader=v1) == _v1_record()


def test_unknown_fingerprint_is_a_clear_error(catalog):
    with pytest.raises(KeyError, match="not in the catalog"):
        catalog.decode(b"", "ffffffffffffffff")


@pytest.mark.integration
def test_spark_from_avro_resolves_a_v1_record_to_v2(spark, catalog):
    """Spark's Avro reader (Java Avro) matches records by unqualified name, so the namespace change is fine."""
    from pyspark.sql.avro.functions import from_avro

    v1, v2 = catalog.by_version(1), catalog.by_version(2)
    frame = spark.createDataFrame([(bytearray(v1.encode(_v1_record())),)], "value binary")
    options = {"avroSchema": v2.json, "mode": "FAILFAST"}
    row = frame.select(from_avro("value", v1.json, options).alias("r")).select("r.*").first()
    assert row.id == "req-1" and row.source_tid is None
    assert row.imp[0].video.mimes == ["video/mp4"] and row.app.bundle == "com.example.game"
    assert row.device.geo.country == "DEU" and row.outcome.clearing_price == 1.75
