"""OpenRTB 2.5/2.6 bid requests to records of the latest bid-request schema, against the specification's examples
(read in place from ../shared/data/openrtb)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import fastavro
import pytest
from fastavro.validation import validate

from ingestion.settings import Settings
from ingestion.streaming.openrtb import NO_BID, BidOutcome, bid_request_record, write_rtb_file
from ingestion.streaming.schema_catalog import SchemaCatalog, schema_fingerprint

SPEC_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "openrtb"
EXAMPLES = sorted(SPEC_DIR.glob("spec-2.*/bid-request--*.json"))
MISSING_SPEC = f"the OpenRTB examples are not there: {SPEC_DIR} (the ../shared folder next to the repo) is absent"
RECEIVED_AT = datetime(2026, 11, 1, 14, 45, 12, 345678, tzinfo=UTC)
LATEST = SchemaCatalog.load().latest


def _example_params() -> list:
    if not EXAMPLES:
        return [pytest.param(None, marks=pytest.mark.skip(reason=MISSING_SPEC), id="no-examples")]
    return [pytest.param(path, id=f"{path.parent.name}/{path.stem.removeprefix('bid-request--')}") for path in EXAMPLES]


def _example(version: str, name: str) -> dict:
    path = SPEC_DIR / f"spec-{version}" / f"bid-request--{name}.json"
    if not path.is_file():
        pytest.skip(MISSING_SPEC)
    return json.loads(path.read_text(encoding="utf-8"))


def _convert(request: dict, **kwargs) -> dict:
    return bid_request_record(request, received_at=RECEIVED_AT, exchange="openx", **kwargs)


def _minimal_request() -> dict:
    return {
        "id": "req-min",
        "imp": [{"id": "1", "banner": {"w": 300, "h": 250}}],
        "site": {"id": "s1", "domain": "example.com", "page": "https://example.com/"},
    }


def test_both_spec_versions_have_examples():
    if not SPEC_DIR.is_dir():
        pytest.skip(MISSING_SPEC)
    assert {path.parent.name for path in EXAMPLES} == {"spec-2.5", "spec-2.6"}


@pytest.mark.parametrize("path", _example_params())
def test_every_example_converts_to_a_valid_record_of_the_latest_schema(path):
    request = json.loads(path.read_text(encoding="utf-8"))
    record = _convert(request)
    assert validate(record, LATEST.parsed, raise_errors=True)

    # Spot checks against the JSON.
    assert record["id"] == request["id"]
    assert record["exchange"] == "openx" and record["timestamp"] == datetime(2026, 11, 1, 14, 45, 12, 345000, UTC)
    assert record["at"] == request["at"] and record["tmax"] == request.get("tmax", 0)
    assert record["cur"] == request.get("cur", ["USD"])
    assert [imp["id"] for imp in record["imp"]] == [imp["id"] for imp in request["imp"]]
    imp, source_imp = record["imp"][0], request["imp"][0]
    assert imp["bidfloor"] == source_imp["bidfloor"] and imp["bidfloorcur"] == "USD"
    if "banner" in source_imp:
        assert imp["banner"] == {"w": source_imp["banner"]["w"], "h": source_imp["banner"]["h"]}
    else:
        assert imp["banner"] is None
    if "video" in source_imp:
        video = source_imp["video"]
        assert imp["video"] == {key: video[key] for key in ("w", "h", "mimes", "minduration", "maxduration")}
    else:
        assert imp["video"] is None
    if "site" in request:
        assert record["app"] is None
        assert record["site"] == {key: request["site"].get(key, "") for key in ("id", "domain", "page")}
    else:
        assert record["site"] is None
        assert record["app"] == {key: request["app"][key] for key in ("id", "bundle", "name")}
    device = request.get("device", {})
    assert record["device"]["ua"] == device.get("ua", "") and record["device"]["ip"] == device.get("ip", "")
    assert record["device"]["geo"]["country"] == device.get("geo", {}).get("country", "")
    assert record["user"]["id"] == request["user"].get("buyeruid", request["user"]["id"])
    assert record["outcome"] == {
        "campaign_id": "",
        "bid": False,
        "bid_price": None,
        "win": False,
        "clearing_price": None,
    }
    assert record["source_tid"] == request.get("source", {}).get("tid")


def test_mobile_app_request_maps_device_geo_and_every_impression():
    record = _convert(_example("2.5", "mobile"))
    app_id = "agltb3B1Yi1pbmNyDAsSA0FwcBiJkfIUDA"  # pragma: allowlist secret
    assert record["app"] == {"id": app_id, "bundle": "12345", "name": "Yahoo Weather"}
    assert record["device"]["devicetype"] == 1 and record["device"]["os"] == "iOS"
    assert record["device"]["geo"] == {"country": "USA", "region": "CA", "lat": 35.012345, "lon": -115.12345}
    assert [imp["banner"] for imp in record["imp"]] == [{"w": 728, "h": 90}, {"w": 0, "h": 0}]
    assert record["user"]["id"] == "ffffffd5135596709273b3a1a07e466ea2bf4fff"  # pragma: allowlist secret
    assert record["tmax"] == 0 and record["cur"] == ["USD"]  # not stated: documented defaults


def test_video_request_keeps_the_player_size_mimes_and_durations():
    record = _convert(_example("2.6", "video"))
    assert record["tmax"] == 120 and record["at"] == 2
    assert record["imp"][0]["video"] == {
        "w": 640,
        "h": 480,
        "mimes": ["video/x-flv", "video/mp4", "application/javascript"],
        "minduration": 5,
        "maxduration": 30,
    }
    assert record["user"]["id"] == "545678765467876567898765678987654"  # buyeruid: our id for the user
    assert record["device"]["ip"] == "" and record["device"]["devicetype"] == 0  # not stated


def test_native_impression_has_neither_banner_nor_video():
    record = _convert(_example("2.5", "native-ad"))
    assert record["imp"][0]["banner"] is None and record["imp"][0]["video"] is None


def test_openrtb_26_source_tid_becomes_source_tid():
    request = _example("2.6", "simple-banner")
    assert "device" not in request  # the 2.6 example has no device: every device field is "not stated"
    assert _convert(request)["source_tid"] is None
    with_source = {**request, "source": {"tid": "0b8d7a4c-1f9e-4c8b-9a55-3f4e2d1c0b9a", "fd": 1}}
    record = _convert(with_source)
    assert record["source_tid"] == "0b8d7a4c-1f9e-4c8b-9a55-3f4e2d1c0b9a"
    assert record["device"] == {
        "ua": "",
        "ip": "",
        "devicetype": 0,
        "os": "",
        "geo": {"country": "", "region": "", "lat": None, "lon": None},
    }
    assert validate(record, LATEST.parsed, raise_errors=True)


def test_received_at_becomes_utc_milliseconds_and_the_outcome_is_passed_through():
    plus_two = timezone(timedelta(hours=2))
    outcome = BidOutcome(campaign_id="cmp_001", bid=True, bid_price=1.5, win=True, clearing_price=1.25)
    record = bid_request_record(
        _minimal_request(), received_at=datetime(2026, 11, 1, 16, 0, 0, 999999, plus_two), exchange="x", outcome=outcome
    )
    assert record["timestamp"] == datetime(2026, 11, 1, 14, 0, 0, 999000, UTC)
    assert record["outcome"] == {
        "campaign_id": "cmp_001",
        "bid": True,
        "bid_price": 1.5,
        "win": True,
        "clearing_price": 1.25,
    }
    assert BidOutcome() == NO_BID


def test_banner_size_from_format_when_w_and_h_are_absent():
    request = _minimal_request()
    request["imp"][0]["banner"] = {"format": [{"w": 320, "h": 50}, {"w": 300, "h": 250}]}
    assert _convert(request)["imp"][0]["banner"] == {"w": 320, "h": 50}


def _edited(edit) -> dict:
    request = copy.deepcopy(_minimal_request())
    edit(request)
    return request


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        pytest.param(lambda r: r.pop("id"), r"^id: required", id="id-missing"),
        pytest.param(lambda r: r.update(id=" "), r"^id: must not be empty", id="id-blank"),
        pytest.param(lambda r: r.update(id=42), r"^id: expected a string", id="id-not-a-string"),
        pytest.param(lambda r: r.pop("imp"), r"^imp: required", id="imp-missing"),
        pytest.param(lambda r: r.update(imp=[]), r"^imp: a bid request needs at least one impression", id="imp-empty"),
        pytest.param(lambda r: r["imp"][0].pop("id"), r"^imp\[0\]\.id: required", id="imp-id-missing"),
        pytest.param(
            lambda r: r["imp"][0]["banner"].update(w="300"),
            r"^imp\[0\]\.banner\.w: expected an integer",
            id="banner-w-string",
        ),
        pytest.param(
            lambda r: r["imp"][0].update(banner={}),
            r"^imp\[0\]\.banner\.w: a banner needs w and h or a format",
            id="banner-without-size",
        ),
        pytest.param(
            lambda r: r["imp"][0].update(video={"w": 640, "h": 360}),
            r"^imp\[0\]\.video\.mimes: required",
            id="video-without-mimes",
        ),
        pytest.param(
            lambda r: r["imp"][0].update(bidfloor="0.5"),
            r"^imp\[0\]\.bidfloor: expected a number",
            id="bidfloor-string",
        ),
        pytest.param(
            lambda r: r.update(app={"id": "a"}), r"^site, app: a bid request needs exactly one", id="site-and-app"
        ),
        pytest.param(
            lambda r: r.pop("site"), r"^site, app: a bid request needs exactly one", id="neither-site-nor-app"
        ),
        pytest.param(
            lambda r: r.update(device={"geo": {"country": "US"}}),
            r"^device\.geo\.country: 'US' is not an ISO 3166-1 alpha-3",
            id="country-alpha-2",
        ),
        pytest.param(
            lambda r: r.update(device={"devicetype": 2**40}),
            r"^device\.devicetype: .* out of the 32-bit",
            id="devicetype-too-large",
        ),
        pytest.param(lambda r: r.update(device=[]), r"^device: expected a JSON object", id="device-not-an-object"),
        pytest.param(lambda r: r.update(user={"id": 7}), r"^user\.id: expected a string", id="user-id-number"),
        pytest.param(lambda r: r.update(cur=["USD", 1]), r"^cur\[1\]: expected a string", id="cur-item-number"),
        pytest.param(lambda r: r.update(source={"tid": 5}), r"^source\.tid: expected a string", id="source-tid-number"),
    ],
)
def test_what_cannot_be_mapped_is_a_value_error_naming_the_field(edit, field):
    with pytest.raises(ValueError, match=field):
        _convert(_edited(edit))


def test_converter_arguments_are_checked():
    with pytest.raises(ValueError, match="received_at"):
        bid_request_record(_minimal_request(), received_at=datetime(2026, 11, 1), exchange="openx")
    with pytest.raises(ValueError, match="exchange"):
        bid_request_record(_minimal_request(), received_at=RECEIVED_AT, exchange="")


def test_converted_requests_are_written_to_the_rtb_drop_folder(tmp_path):
    settings = Settings(data_dir=tmp_path)
    records = [_convert({**_minimal_request(), "id": f"req-{n}", "source": {"tid": f"tid-{n}"}}) for n in range(3)]
    path = write_rtb_file(settings, records, ingest_date=date(2026, 11, 2), file_name="openrtb-0001.avro")

    assert path == tmp_path / "landing" / "rtb" / "dt=2026-11-02" / "openrtb-0001.avro"
    assert [p.name for p in path.parent.iterdir()] == ["openrtb-0001.avro"]  # no partial file left behind
    with path.open("rb") as handle:
        reader = fastavro.reader(handle)
        assert schema_fingerprint(reader.metadata["avro.schema"]) == LATEST.fingerprint
        assert list(reader) == records
    with pytest.raises(FileExistsError):
        write_rtb_file(settings, records, ingest_date=date(2026, 11, 2), file_name="openrtb-0001.avro")
    with pytest.raises(ValueError, match="file_name"):
        write_rtb_file(settings, records, ingest_date=date(2026, 11, 2), file_name="openrtb.json")
