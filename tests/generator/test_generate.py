"""generate(): determinism, volumes, mess, manifest and ground truth, checked by reading the files back.

The checks re-implement the contract's loader and staging rules plainly on the files (small scale), then
recompute the marts and compare them with ground_truth/: so the files, the manifest and the truth agree.
"""

import csv
import hashlib
import json
from collections import Counter, defaultdict
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path

import fastavro
import pytest

from ingestion.generator import generate
from ingestion.generator.reference import CURRENCY_RATES, reference

START = date(2026, 11, 1)
CAMPAIGNS = {c.campaign_id for c in reference().campaigns}
SIX = Decimal("0.000001")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("gen")
    summary = generate(data_dir, days=3, scale=8_000, seed=7, mess_rate=0.02)
    manifest = json.loads((data_dir / "ground_truth" / "manifest.json").read_text())
    return data_dir, summary, manifest


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_arguments_give_identical_bytes_and_days_are_independent(tmp_path):
    messages = []
    generate(tmp_path / "a", days=1, scale=2_000, seed=3, on_progress=messages.append)
    generate(tmp_path / "b", days=1, scale=2_000, seed=3)
    generate(tmp_path / "a", days=1, scale=2_000, seed=3)  # a rerun replaces the previous run
    generate(tmp_path / "c", days=2, scale=2_000, seed=3)
    generate(tmp_path / "d", days=1, scale=2_000, seed=4)
    a, b, c, d = (_tree_digest(tmp_path / x) for x in "abcd")
    assert messages and a == b
    day_1 = {k: v for k, v in a.items() if "2026-11-01" in k}
    assert day_1 and day_1 == {k: v for k, v in c.items() if k in day_1}
    assert any("2026-11-02" in k for k in c)
    assert {k: v for k, v in d.items() if "landing" in k} != {k: v for k, v in a.items() if "landing" in k}


# --- reading the files back as the loader and staging would ---


def _parse_time(text: str | None) -> int | None:
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return round(parsed.timestamp() * 1000)


def _amount(text, currency) -> Decimal | None:
    if text is None or currency not in CURRENCY_RATES:
        return None
    try:
        value = Decimal(str(text))
    except InvalidOperation:
        return None
    return value if value.is_finite() and value >= 0 else None


def _read_back(data_dir: Path):
    """Per source: (quarantine Counter per file, reject Counter per file, staged rows)."""
    landing = data_dir / "landing"
    quarantine, rejects = defaultdict(Counter), defaultdict(Counter)
    raw = defaultdict(list)  # source -> (ingest date, file, event time, id, row)
    for path in sorted(landing.rglob("*.jsonl")):
        rel = path.relative_to(data_dir).as_posix()
        dt = date.fromisoformat(path.parent.name[3:])
        for line in path.read_text().splitlines():
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                quarantine[rel]["malformed_json"] += 1
                continue
            if not isinstance(obj, dict):
                quarantine[rel]["not_a_json_object"] += 1
                continue
            raw["impressions"].append((dt, rel, obj))
    for source, columns in (("clicks", 7), ("conversions", 7)):
        for path in sorted((landing / "tracking" / source).rglob("*.csv")):
            rel = path.relative_to(data_dir).as_posix()
            dt = date.fromisoformat(path.parent.name[3:])
            with path.open(newline="") as handle:
                reader = csv.reader(handle)
                header = next(reader)
                for row in reader:
                    if len(row) != columns:
                        quarantine[rel]["wrong_column_count"] += 1
                        continue
                    raw[source].append(
                        (dt, rel, {k: (v if v != "" else None) for k, v in zip(header, row, strict=True)})
                    )
    for path in sorted(landing.rglob("*.avro")):
        rel = path.relative_to(data_dir).as_posix()
        dt = date.fromisoformat(path.parent.name[3:])
        with path.open("rb") as handle:
            for record in fastavro.reader(handle):
                raw["bid_requests"].append((dt, rel, record))

    staged = defaultdict(list)
    for source, rows in raw.items():
        candidates = []
        for dt, rel, r in rows:
            if source == "impressions":
                rid, ts, amount = r.get("event_id"), _parse_time(r.get("event_time")), None
                cost = r.get("cost_micros")
                if isinstance(cost, int) and not isinstance(cost, bool):
                    amount = _amount(cost, r.get("currency"))
            elif source == "clicks":
                rid, ts, amount = r["click_id"], _parse_time(r["click_time"]), Decimal(0)
            elif source == "conversions":
                rid, ts = r["conversion_id"], _parse_time(r["conversion_time"])
                amount = _amount(r["value"], r["currency"])
            else:
                rid, ts, amount = r["id"], round(r["timestamp"].timestamp() * 1000), Decimal(0)
            campaign = r.get("campaign_id") if source != "bid_requests" else r["outcome"]["campaign_id"]
            if not rid:
                reason = "missing_event_id"
            elif ts is None:
                reason = "invalid_timestamp"
            elif campaign not in CAMPAIGNS:
                reason = "unknown_campaign"
            elif amount is None:
                reason = "invalid_amount"
            else:
                reason = None
            if reason:
                rejects[rel][reason] += 1
            else:
                candidates.append((dt, rel, ts, rid, r))
        seen = set()
        for dt, rel, ts, rid, r in sorted(candidates, key=lambda c: (c[0], c[1], c[2])):
            if rid in seen:
                rejects[rel]["duplicate_event_id"] += 1
                continue
            seen.add(rid)
            if source == "bid_requests":
                o, floor = r["outcome"], r["imp"][0]["bidfloor"]
                rule = next(
                    (
                        name
                        for name, broken in (
                            ("bid_without_price", o["bid"] and o["bid_price"] is None),
                            ("bid_below_floor", o["bid"] and o["bid_price"] is not None and o["bid_price"] < floor),
                            ("win_without_bid", o["win"] and not o["bid"]),
                            ("win_without_clearing_price", o["win"] and o["clearing_price"] is None),
                            (
                                "clearing_price_above_bid",
                                o["win"]
                                and None not in (o["clearing_price"], o["bid_price"])
                                and o["clearing_price"] > o["bid_price"],
                            ),
                            ("negative_floor", floor < 0),
                        )
                        if broken
                    ),
                    None,
                )
                if rule:
                    rejects[rel][rule] += 1
                    continue
            staged[source].append((dt, ts, rid, r))
    return quarantine, rejects, staged


@pytest.fixture(scope="module")
def read_back(run):
    return _read_back(run[0])


def test_manifest_matches_the_files(run, read_back):
    data_dir, summary, manifest = run
    quarantine, rejects, staged = read_back
    assert manifest["arguments"] == {
        "days": 3,
        "scale": 8_000,
        "seed": 7,
        "start_date": "2026-11-01",
        "mess_rate": 0.02,
    }
    listed = {f["path"] for f in manifest["files"]}
    on_disk = {p.relative_to(data_dir).as_posix() for p in (data_dir / "landing").rglob("*") if p.is_file()}
    assert listed == on_disk and len(listed) == 3 * (4 + 1 + 1) + sum("rtb" in p for p in listed)
    for f in manifest["files"]:
        path = data_dir / f["path"]
        if path.suffix == ".avro":
            with path.open("rb") as handle:
                records = sum(1 for _ in fastavro.reader(handle))
        else:
            lines = path.read_text().splitlines()
            records = len(lines) - (1 if path.suffix == ".csv" else 0)
            assert all(line.strip() for line in lines)
        assert f["records"] == records, f["path"]
        assert f["quarantine_reasons"] == dict(quarantine[f["path"]]), f["path"]
        assert f["quarantined"] == sum(quarantine[f["path"]].values())
        assert f["staging_rejects"] == dict(rejects[f["path"]]), f["path"]
    for source, totals in manifest["sources"].items():
        assert totals["staged"] == len(staged[source]) == summary.staged[source]
        assert totals["records"] == totals["landed"] + totals["quarantined"]


def test_every_kind_of_bad_record_is_present(run):
    sources = run[2]["sources"]
    assert set(sources["impressions"]["quarantine_reasons"]) == {"malformed_json", "not_a_json_object"}
    assert set(sources["impressions"]["staging_rejects"]) == {
        "missing_event_id",
        "invalid_timestamp",
        "unknown_campaign",
        "invalid_amount",
        "duplicate_event_id",
    }
    tracking = {"missing_event_id", "invalid_timestamp", "unknown_campaign", "duplicate_event_id"}
    assert set(sources["clicks"]["quarantine_reasons"]) == {"wrong_column_count"}
    assert set(sources["clicks"]["staging_rejects"]) == tracking
    # A few conversions a day at this scale: some kinds only (test_messiness checks them all).
    assert set(sources["conversions"]["quarantine_reasons"]) <= {"wrong_column_count"}
    assert sources["conversions"]["staging_rejects"]
    assert set(sources["conversions"]["staging_rejects"]) <= tracking | {"invalid_amount"}
    assert set(sources["bid_requests"]["staging_rejects"]) == {
        "bid_without_price",
        "bid_below_floor",
        "win_without_bid",
        "win_without_clearing_price",
        "clearing_price_above_bid",
        "negative_floor",
        "unknown_campaign",
        "duplicate_event_id",
    }


def test_volumes_rates_and_spellings(run, read_back):
    _data_dir, summary, manifest = run
    _q, _r, staged = read_back
    for source in ("impressions", "bid_requests"):
        bad = summary.quarantined[source] + summary.rejected[source]
        assert 0.01 * 3 * 8_000 < bad < 0.04 * 3 * 8_000  # mess_rate 0.02
        assert 0.95 * 3 * 8_000 < summary.staged[source] <= 3 * 8_000
    ctr = summary.staged["clicks"] / summary.staged["impressions"]
    assert 0.001 < ctr < 0.02
    requests = [r for _dt, _ts, _id, r in staged["bid_requests"]]
    bids = sum(r["outcome"]["bid"] for r in requests)
    wins = sum(r["outcome"]["win"] for r in requests)
    assert 0.55 < bids / len(requests) < 0.65 and 0.30 < wins / bids < 0.40
    assert len({r["exchange"] for r in requests}) == 4
    imps = [r for _dt, _ts, _id, r in staged["impressions"]]
    linked = [r for r in imps if r["bid_request_id"]]
    assert 0.95 * wins <= len(linked) <= wins  # one impression per valid win, a few lost to impression mess
    assert {r["currency"] for r in imps} == {"USD", "EUR", "GBP"}
    spellings = {r["device_type"] for r in imps}
    assert {"mobile", "Mobile", "phone", None} <= spellings
    assert any(r["country"].startswith(" ") for r in imps) and any(r["country"].islower() for r in imps)
    assert {r["server"] for r in imps} == {"web-01", "web-02", "web-03", "web-04"}
    users = Counter(r["user_id"] for r in imps)
    assert any(int(u[2:]) > 20_000 for u in users)  # users without demographics
    assert users.most_common(1)[0][1] > 10 * len(imps) / 25_000  # skewed activity
    # Late clicks and conversions sit in a later dt= folder than their event date, never an earlier one.
    for source in ("clicks", "conversions"):
        for dt, ts, _id, _r in staged[source]:
            assert 0 <= (dt - datetime.fromtimestamp(ts / 1000, UTC).date()).days <= 4


def _round(value: Decimal) -> str:
    return str(value.quantize(SIX, rounding=ROUND_HALF_UP))


def _expected_marts(staged, as_of: date):
    def utc(ts):
        return datetime.fromtimestamp(ts / 1000, UTC).date()

    rows = defaultdict(lambda: [0, 0, 0, 0, Decimal(0), Decimal(0)])
    touches = {"clicks": defaultdict(list), "impressions": defaultdict(list)}
    for source in ("impressions", "clicks"):
        for dt, ts, rid, r in staged[source]:
            if dt <= as_of:
                row = rows[(utc(ts), r["campaign_id"])]
                row[0 if source == "impressions" else 1] += 1
                if source == "impressions":
                    row[4] += Decimal(r["cost_micros"]) / 1_000_000 * CURRENCY_RATES[r["currency"]]
                touches[source][(r["user_id"], r["campaign_id"])].append((ts, rid))
    for dt, ts, _rid, r in staged["conversions"]:
        if dt > as_of:
            continue
        row = rows[(utc(ts), r["campaign_id"])]
        row[2] += 1
        key = (r["user_id"], r["campaign_id"])
        clicks = [t for t in touches["clicks"][key] if ts - 168 * 3_600_000 <= t[0] <= ts]
        views = [t for t in touches["impressions"][key] if ts - 24 * 3_600_000 <= t[0] <= ts]
        if clicks or views:
            row[3] += 1
            row[5] += Decimal(r["value"]) * CURRENCY_RATES[r["currency"]]

    def ratio(numerator, denominator):
        return _round(Decimal(numerator) / denominator) if denominator else ""

    campaign_daily = [
        [
            d.isoformat(),
            c,
            str(a),
            str(b),
            str(e),
            str(f),
            _round(g),
            _round(h),
            ratio(b, a),
            ratio(e, b),
            ratio(g, b),
            ratio(g * 1000, a),
            ratio(g, f),
            ratio(h, g),
        ]
        for (d, c), (a, b, e, f, g, h) in sorted(rows.items())
    ]
    rtb = defaultdict(lambda: [0, 0, 0, Decimal(0)])
    for dt, ts, _rid, r in staged["bid_requests"]:
        if dt <= as_of:
            agg = rtb[(utc(ts), r["exchange"], r["outcome"]["campaign_id"])]
            agg[0] += 1
            agg[1] += r["outcome"]["bid"]
            agg[2] += r["outcome"]["win"]
            if r["outcome"]["win"]:
                agg[3] += Decimal(repr(r["outcome"]["clearing_price"]))
    rtb_daily = [
        [
            d.isoformat(),
            e,
            c,
            str(n),
            str(b),
            str(w),
            ratio(b, n),
            ratio(w, b),
            ratio(s, w),
        ]
        for (d, e, c), (n, b, w, s) in sorted(rtb.items())
    ]
    return campaign_daily, rtb_daily


def test_ground_truth_equals_the_marts_recomputed_from_the_files(run, read_back):
    data_dir = run[0]
    staged = read_back[2]
    previous_dates: set[str] = set()
    for offset in range(3):
        as_of = date(2026, 11, 1 + offset)
        folder = data_dir / "ground_truth" / f"as_of={as_of.isoformat()}"
        expected_campaign, expected_rtb = _expected_marts(staged, as_of)
        with (folder / "campaign_daily.csv").open(newline="") as handle:
            campaign = list(csv.reader(handle))
        with (folder / "rtb_daily.csv").open(newline="") as handle:
            rtb = list(csv.reader(handle))
        assert campaign[1:] == expected_campaign
        assert rtb[1:] == expected_rtb
        for row in campaign[1:]:
            assert int(row[5]) <= int(row[4])  # attributed <= conversions
        dates = {row[0] for row in campaign[1:]}
        assert previous_dates <= dates and max(dates) <= as_of.isoformat()
        previous_dates = dates
    assert any(int(row[4]) for row in campaign[1:]) and any(int(row[5]) for row in campaign[1:])
