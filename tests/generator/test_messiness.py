"""Each bad kind, made on purpose, carries exactly the defect that staging reports for it."""

import random
from collections import Counter
from datetime import date

from ingestion.generator import events, messiness
from ingestion.generator.reference import reference

DAY = date(2026, 11, 1)


def _conversions(n: int) -> list[events.Conversion]:
    start = events.day_start_ms(DAY)
    return [
        events.Conversion(f"cnv-20261101-{i:07d}", start + i * 1000, "u_000001", "cmp_001", "purchase", 1234, "EUR", 0)
        for i in range(1, n + 1)
    ]


def test_allocate_keeps_every_kind_and_the_rate():
    rng = random.Random(1)
    counts = messiness.allocate(rng, 100_000, 0.01, messiness.IMPRESSION_SHARES)
    assert all(c >= 1 for c in counts.values())
    assert 900 <= sum(counts.values()) <= 1100
    assert sum(messiness.allocate(rng, 10, 0.01, messiness.CONVERSION_SHARES).values()) <= 5
    assert sum(messiness.allocate(rng, 10, 0.0, messiness.CONVERSION_SHARES).values()) == 0


def test_every_conversion_kind_and_its_single_defect():
    mess = messiness.mess_tracking(random.Random(2), _conversions(400), 0.05)
    quarantined = Counter(r.quarantine for r in mess.rows if r.quarantine)
    rejected = Counter(r.reject for r in mess.rows if r.reject)
    assert set(quarantined) == {"wrong_column_count"}
    assert set(rejected) == {
        "missing_event_id",
        "invalid_timestamp",
        "unknown_campaign",
        "invalid_amount",
        "duplicate_event_id",
    }
    for row in mess.rows:
        clean = not (row.quarantine or row.reject)
        assert (len(row.fields) == 7) == (row.quarantine is None)
        if clean or row.reject == "duplicate_event_id":
            assert row.fields[0] and row.fields[1].endswith("Z") and row.fields[5] == "12.34"
        if row.reject == "duplicate_event_id":
            assert row.arrival >= DAY and row.sort_key[2] == 1
    copies = Counter(r.fields[0] for r in mess.rows if r.reject == "duplicate_event_id")
    valid_ids = {record.conversion_id for record, _arrival in mess.valid}
    assert set(copies) <= valid_ids and len(valid_ids) == len(mess.valid)


def test_bid_request_rule_breakers_break_one_rule_each():
    ref = reference()
    requests = events.bid_requests(random.Random(3), ref, DAY, 5_000)
    mess = messiness.mess_bid_requests(random.Random(4), requests, 0.05)
    assert set(mess.rejects) == {*messiness.RTB_RULES, "unknown_campaign", "duplicate_event_id"}
    for r, reason in zip(mess.records, mess.reasons, strict=True):
        broken = [
            name
            for name, rule in (
                ("bid_without_price", r.bid and r.bid_cents is None),
                ("bid_below_floor", r.bid and r.bid_cents is not None and r.bid_cents < r.floor_cents),
                ("win_without_bid", r.win and not r.bid),
                ("win_without_clearing_price", r.win and r.clear_cents is None),
                (
                    "clearing_price_above_bid",
                    r.win and None not in (r.clear_cents, r.bid_cents) and r.clear_cents > r.bid_cents,
                ),
                ("negative_floor", r.floor_cents < 0),
            )
            if rule
        ]
        if reason in messiness.RTB_RULES:
            assert broken == [reason]
        else:
            assert broken == []
    assert len({r.request_id for r in mess.valid}) == len(mess.valid)
    assert all(r.campaign_id.startswith("cmp_0") and r.campaign_id != "cmp_025" for r in mess.valid)


def test_late_arrivals_and_the_clean_universe():
    ref = reference()
    requests = events.bid_requests(random.Random(5), ref, DAY, 20_000)
    won = [r for r in requests if r.win]
    imps = events.impressions(random.Random(6), ref, DAY, 20_000, won)
    assert len(imps) == 20_000 and [i.ts for i in imps] == sorted(i.ts for i in imps)
    assert sum(i.bid_request_id is not None for i in imps) == len(won)
    by_request = {r.request_id: r for r in won}
    for imp in imps:
        if imp.bid_request_id:
            request = by_request[imp.bid_request_id]
            assert 5 <= imp.ts - request.ts <= 1_000 and imp.cost_micros == request.clear_cents * 10
            assert imp.currency == "USD" and events.ts_date(imp.ts) == DAY
    clicks, conversions = events.clicks_and_conversions(random.Random(7), ref, DAY, imps)
    late = [c.late_days for c in clicks + conversions if c.late_days]
    assert set(late) <= {1, 2, 3} and 0 < len(late) < 0.06 * (len(clicks) + len(conversions))
    mess = messiness.mess_tracking(random.Random(8), clicks, 0.01)
    for record, arrival in mess.valid:
        assert (arrival - events.ts_date(record.ts)).days == record.late_days
