"""Corruptions, duplicates and late arrival: what turns the clean universe into realistic landing files.

Each source gets about `mess_rate` of its records in bad kinds, split by the shares below, and at least one
record of every kind per source and day whenever mess_rate > 0 (so small test runs still see every kind).
A corrupted record carries exactly one defect, so the reason staging gives it (the first rule of the contract
that applies) is the one recorded here. Duplicates are exact copies of clean records.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta

from ingestion.generator.events import SERVERS, BidRequest, Click, Conversion, Impression, ts_date
from ingestion.generator.writers import (
    SERVER_OFFSETS_MIN,
    SERVER_SUFFIXES,
    impression_line,
    iso_time,
    minute_prefix,
    server_time,
)
from ingestion.sources import CLICKS, CONVERSIONS

UNKNOWN_CAMPAIGNS = ("cmp_999", "cmp_0x7", "cmp_025")
BAD_TIMESTAMPS = ("2026-13-45T99:00:00Z", "not-a-time", "")

IMPRESSION_SHARES = {
    "malformed_json": 0.20,
    "not_a_json_object": 0.08,
    "missing_event_id": 0.05,
    "invalid_timestamp": 0.15,
    "unknown_campaign": 0.15,
    "invalid_amount": 0.07,
    "duplicate_event_id": 0.30,
}
CLICK_SHARES = {
    "wrong_column_count": 0.20,
    "missing_event_id": 0.05,
    "invalid_timestamp": 0.20,
    "unknown_campaign": 0.15,
    "duplicate_same_file": 0.20,
    "duplicate_next_day": 0.20,
}
CONVERSION_SHARES = {**CLICK_SHARES, "invalid_amount": 0.15}
RTB_RULES = (
    "bid_without_price",
    "bid_below_floor",
    "win_without_bid",
    "win_without_clearing_price",
    "clearing_price_above_bid",
    "negative_floor",
)
BID_REQUEST_SHARES = {**dict.fromkeys(RTB_RULES, 0.09), "unknown_campaign": 0.16, "duplicate_event_id": 0.30}

CLICK_HEADER = CLICKS.columns
CONVERSION_HEADER = CONVERSIONS.columns


def allocate(rng: random.Random, n: int, rate: float, shares: dict[str, float]) -> dict[str, int]:
    """How many records of each bad kind: about rate*n in all, at least one per kind, at most half of n."""
    if rate <= 0 or n == 0:
        return dict.fromkeys(shares, 0)
    counts = {}
    for kind, share in shares.items():
        expected = rate * n * share
        whole = int(expected)
        counts[kind] = max(1, whole + (1 if rng.random() < expected - whole else 0))
    while sum(counts.values()) > n // 2:  # tiny inputs: drop kinds at random, so each day keeps other kinds
        top = max(counts.values())
        counts[rng.choice([k for k, c in counts.items() if c == top])] -= 1
    return counts


def _pick(rng: random.Random, n: int, counts: dict[str, int]) -> dict[int, str]:
    """Distinct record indexes for each kind."""
    chosen = rng.sample(range(n), sum(counts.values()))
    plan, start = {}, 0
    for kind, count in counts.items():
        for index in chosen[start : start + count]:
            plan[index] = kind
        start += count
    return plan


# --- bid requests ---


@dataclass
class BidRequestMess:
    records: list[BidRequest]  # in file order, duplicates included
    reasons: list[str | None]  # aligned with records: the staging reason of each record, None if staged
    valid: list[BidRequest]  # each valid request once

    @property
    def rejects(self) -> Counter:
        return Counter(reason for reason in self.reasons if reason)


def _break_rule(rng: random.Random, r: BidRequest, rule: str) -> BidRequest:
    floor = r.floor_cents
    bid = max(r.bid_cents or 0, floor + 1 + rng.randrange(200))
    if rule == "bid_without_price":
        return r._replace(bid=True, bid_cents=None, win=False, clear_cents=None)
    if rule == "bid_below_floor":
        below = max(1, floor - 1 - rng.randrange(floor // 2))
        return r._replace(bid=True, bid_cents=below, win=False, clear_cents=None)
    if rule == "win_without_bid":
        return r._replace(bid=False, bid_cents=None, win=True, clear_cents=floor + rng.randrange(100))
    if rule == "win_without_clearing_price":
        return r._replace(bid=True, bid_cents=bid, win=True, clear_cents=None)
    if rule == "clearing_price_above_bid":
        return r._replace(bid=True, bid_cents=bid, win=True, clear_cents=bid + 1 + rng.randrange(100))
    if rule == "negative_floor":  # no bid at all, so no other rule applies first
        negative = -(1 + rng.randrange(100))
        return r._replace(floor_cents=negative, bid=False, bid_cents=None, win=False, clear_cents=None)
    raise ValueError(rule)


def mess_bid_requests(rng: random.Random, requests: list[BidRequest], rate: float) -> BidRequestMess:
    """Rule breakers and unknown campaigns replace clean requests (and so produce no impression); duplicates
    are exact copies placed a little later in the stream."""
    plan = _pick(rng, len(requests), allocate(rng, len(requests), rate, BID_REQUEST_SHARES))
    result = BidRequestMess(records=[], reasons=[], valid=[])
    records, reasons = result.records, result.reasons
    pending: dict[int, list[BidRequest]] = {}  # duplicates to emit after a later position
    for i, r in enumerate(requests):
        kind = plan.get(i)
        if kind is None or kind == "duplicate_event_id":
            records.append(r)
            reasons.append(None)
            result.valid.append(r)
            if kind:
                pending.setdefault(i + rng.randrange(50), []).append(r)
        elif kind == "unknown_campaign":
            records.append(r._replace(campaign_id=rng.choice(UNKNOWN_CAMPAIGNS)))
            reasons.append(kind)
        else:
            records.append(_break_rule(rng, r, kind))
            reasons.append(kind)
        for copy in pending.pop(i, ()):
            records.append(copy)
            reasons.append("duplicate_event_id")
    for position in sorted(pending):  # duplicates planned past the end
        for copy in pending[position]:
            records.append(copy)
            reasons.append("duplicate_event_id")
    return result


# --- impressions ---


@dataclass
class ImpressionFile:
    lines: list[str] = field(default_factory=list)
    quarantine: Counter = field(default_factory=Counter)
    rejects: Counter = field(default_factory=Counter)


@dataclass
class ImpressionMess:
    files: list[ImpressionFile]  # one per server, SERVERS order
    valid: list[Impression]


def _line(imp: Impression, **changes: object) -> str:
    values = imp._asdict()
    values.update(changes)
    if "event_time" not in values:
        values["event_time"] = server_time(imp.ts, imp.server)
    values.pop("ts")
    values["server"] = SERVERS[imp.server]
    return impression_line(**values)


def _not_an_object(rng: random.Random, imp: Impression) -> str:
    return rng.choice(
        (
            f'["{imp.event_id}", "{iso_time(imp.ts)}", "{imp.user_id}"]',
            '"fluentd: buffer flush"',
            str(rng.randrange(1, 10**6)),
        )
    )


def mess_impressions(rng: random.Random, imps: list[Impression], rate: float) -> ImpressionMess:
    plan = _pick(rng, len(imps), allocate(rng, len(imps), rate, IMPRESSION_SHARES))
    files = [ImpressionFile() for _ in SERVERS]
    valid = []
    prefixes: dict[tuple[int, int], str] = {}
    for i, imp in enumerate(imps):
        kind = plan.get(i)
        target = files[imp.server]
        if kind is None:
            # The clean path, inlined for speed: the same text as _line(imp).
            server = imp.server
            minute_index, ms = divmod(imp.ts, 60_000)
            prefix = prefixes.get((minute_index, server))
            if prefix is None:
                prefix = prefixes[(minute_index, server)] = minute_prefix(minute_index, SERVER_OFFSETS_MIN[server])
            device = "null" if imp.device_type is None else f'"{imp.device_type}"'
            request = "null" if imp.bid_request_id is None else f'"{imp.bid_request_id}"'
            target.lines.append(
                f'{{"event_id": "{imp.event_id}", "event_time": "{prefix}{ms // 1000:02d}.{ms % 1000:03d}'
                f'{SERVER_SUFFIXES[server]}", "user_id": "{imp.user_id}", "campaign_id": "{imp.campaign_id}", '
                f'"ad_id": "{imp.ad_id}", "site_domain": "{imp.site_domain}", "device_type": {device}, '
                f'"country": "{imp.country}", "bid_request_id": {request}, "cost_micros": {imp.cost_micros}, '
                f'"currency": "{imp.currency}", "server": "{SERVERS[server]}"}}'
            )
            valid.append(imp)
            continue
        if kind == "malformed_json":  # a truncated line: the event is lost
            line = _line(imp)
            target.lines.append(line[: rng.randrange(10, len(line) - 2)])
            target.quarantine[kind] += 1
        elif kind == "not_a_json_object":  # an extra line next to a clean event
            target.lines.append(_line(imp))
            valid.append(imp)
            target.lines.append(_not_an_object(rng, imp))
            target.quarantine[kind] += 1
        elif kind == "duplicate_event_id":  # the same line again, in this file or another server's
            line = _line(imp)
            target.lines.append(line)
            valid.append(imp)
            other = imp.server if rng.random() < 0.5 else rng.randrange(len(SERVERS))
            files[other].lines.append(line)
            # Staging keeps the copy with the earliest (_ingest_date, _source_file, event time).
            files[max(other, imp.server)].rejects[kind] += 1
        else:
            if kind == "missing_event_id":
                line = _line(imp, event_id=None)
            elif kind == "invalid_timestamp":
                line = _line(imp, event_time=rng.choice(BAD_TIMESTAMPS))
            elif kind == "unknown_campaign":
                line = _line(imp, campaign_id=rng.choice(UNKNOWN_CAMPAIGNS))
            elif kind == "invalid_amount":
                line = rng.choice(
                    (
                        _line(imp, cost_micros=-imp.cost_micros - 1),
                        _line(imp, cost_micros="n/a"),
                        _line(imp, cost_micros=None),
                        _line(imp, currency="JPY"),
                    )
                )
            else:
                raise ValueError(kind)
            target.lines.append(line)
            target.rejects[kind] += 1
    return ImpressionMess(files=files, valid=valid)


# --- clicks and conversions (tracking CSV) ---


@dataclass(frozen=True)
class TrackingRow:
    sort_key: tuple[int, str, int]  # (true event time, true id, copy number): order within a file
    fields: tuple[str, ...]
    event_date: date  # true UTC event date: events after the last generated day are not written
    arrival: date  # the dt= folder
    quarantine: str | None = None  # loader reason
    reject: str | None = None  # staging reason


@dataclass
class TrackingMess:
    rows: list[TrackingRow]
    valid: list[tuple[Click | Conversion, date]]  # each valid event once, with its arrival date


def _fields(record: Click | Conversion) -> list[str]:
    if isinstance(record, Click):
        return [
            record.click_id,
            iso_time(record.ts),
            record.user_id,
            record.campaign_id,
            record.ad_id,
            record.device_type,
            record.landing_page_url,
        ]
    return [
        record.conversion_id,
        iso_time(record.ts),
        record.user_id,
        record.campaign_id,
        record.conversion_type,
        f"{record.value_cents // 100}.{record.value_cents % 100:02d}",
        record.currency,
    ]


def mess_tracking(rng: random.Random, records: list[Click] | list[Conversion], rate: float) -> TrackingMess:
    """Rows of clicks.csv or conversions.csv with their arrival dates; ~2 % of events already arrive late."""
    is_click = bool(records) and isinstance(records[0], Click)
    shares = CLICK_SHARES if is_click else CONVERSION_SHARES
    plan = _pick(rng, len(records), allocate(rng, len(records), rate, shares))
    rows, valid = [], []
    for i, record in enumerate(records):
        kind = plan.get(i)
        event_date = ts_date(record.ts)
        if kind in ("duplicate_same_file", "duplicate_next_day"):
            record = record._replace(late_days=0)  # the original arrives on time; its copy on time or a day late
        arrival = event_date + timedelta(days=record.late_days)
        key = (record.ts, record[0], 0)
        fields = _fields(record)
        if kind is None:
            rows.append(TrackingRow(key, tuple(fields), event_date, arrival))
            valid.append((record, arrival))
            continue
        if kind.startswith("duplicate"):
            rows.append(TrackingRow(key, tuple(fields), event_date, arrival))
            valid.append((record, arrival))
            copy_arrival = arrival + timedelta(days=1 if kind == "duplicate_next_day" else 0)
            rows.append(
                TrackingRow(
                    (record.ts, record[0], 1), tuple(fields), event_date, copy_arrival, reject="duplicate_event_id"
                )
            )
            continue
        quarantine = reject = None
        if kind == "wrong_column_count":  # a field missing or one too many: the loader quarantines the row
            if rng.random() < 0.5:
                del fields[rng.randrange(1, len(fields))]
            else:
                fields.append(rng.choice(("debug=1", "", "retry")))
            quarantine = kind
        elif kind == "missing_event_id":
            fields[0] = ""
            reject = kind
        elif kind == "invalid_timestamp":
            fields[1] = rng.choice(BAD_TIMESTAMPS)
            reject = kind
        elif kind == "unknown_campaign":
            fields[3] = rng.choice(UNKNOWN_CAMPAIGNS)
            reject = kind
        elif kind == "invalid_amount":
            choice = rng.randrange(4)
            if choice == 0:
                fields[5] = "-" + fields[5]
            elif choice == 1:
                fields[5] = rng.choice(("abc", "12,50", "N/A"))
            elif choice == 2:
                fields[5] = ""
            else:
                fields[6] = "JPY"
            reject = kind
        else:
            raise ValueError(kind)
        rows.append(TrackingRow(key, tuple(fields), event_date, arrival, quarantine, reject))
    return TrackingMess(rows=rows, valid=valid)
