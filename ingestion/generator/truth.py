"""Ground truth: what `agg_campaign_daily` and `agg_rtb_daily` must hold once every file that arrived up to a
date is loaded. Written plainly from the contract (docs/data_contract.md), independent of the dbt models.

The generator hands over every valid event once (duplicates and corrupted records are not valid events) with
its arrival date (the `dt=` folder of its first copy); `as_of` filters on that arrival date.
"""

from __future__ import annotations

import csv
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import NamedTuple

HOUR_MS = 3_600_000
CLICK_THROUGH_WINDOW_MS = 168 * HOUR_MS
VIEW_THROUGH_WINDOW_MS = 24 * HOUR_MS
DAY_MS = 86_400_000
_EPOCH_ORDINAL = 719163  # date(1970, 1, 1).toordinal()
_SIX = Decimal("0.000001")
_MILLION = Decimal(1_000_000)

CAMPAIGN_DAILY_COLUMNS = (
    "event_date",
    "campaign_id",
    "impressions",
    "clicks",
    "conversions",
    "attributed_conversions",
    "spend_usd",
    "revenue_usd",
    "ctr",
    "cvr",
    "cpc_usd",
    "cpm_usd",
    "cpa_usd",
    "roas",
)
RTB_DAILY_COLUMNS = (
    "event_date",
    "exchange",
    "campaign_id",
    "bid_requests",
    "bids",
    "wins",
    "bid_rate",
    "win_rate",
    "avg_clearing_price_cpm",
)


def _ts(touch: tuple[int, str, date]) -> int:
    return touch[0]


def _day(day_index: int) -> date:
    return date.fromordinal(_EPOCH_ORDINAL + day_index)


class Touch(NamedTuple):
    """A click or impression that a conversion can be attributed to."""

    ts: int  # UTC epoch milliseconds
    id: str
    arrival: date


def utc_date(ts_ms: int) -> date:
    return date.fromordinal(_EPOCH_ORDINAL + ts_ms // DAY_MS)


def round6(value: Decimal) -> Decimal:
    return value.quantize(_SIX, rounding=ROUND_HALF_UP)


def ratio(numerator: Decimal | int, denominator: Decimal | int) -> Decimal | None:
    """numerator / denominator rounded half-up to 6 decimals; None when the denominator is 0."""
    return round6(Decimal(numerator) / Decimal(denominator)) if denominator else None


def latest_touch(
    touches: Sequence[tuple[int, str, date]], at_ms: int, window_ms: int, as_of: date
) -> tuple[int, str, date] | None:
    """The latest touch at or before at_ms and at most window_ms earlier (both ends inclusive) that arrived by
    as_of; ties on time go to the greatest id. `touches` are (ts, id, arrival) (e.g. Touch) sorted by (ts, id)."""
    i = bisect_right(touches, at_ms, key=_ts)
    earliest = at_ms - window_ms
    while i > 0:
        i -= 1
        touch = touches[i]
        if touch[0] < earliest:
            return None
        if touch[2] <= as_of:
            return touch
    return None


def attribute(
    conversion_ts: int,
    key: tuple[str, str],
    clicks: dict[tuple[str, str], list],
    impressions: dict[tuple[str, str], list],
    as_of: date,
) -> tuple[str, str] | None:
    """("click", click_id), ("view_through", impression_id) or None for a conversion of key=(user, campaign)."""
    click = latest_touch(clicks.get(key, ()), conversion_ts, CLICK_THROUGH_WINDOW_MS, as_of)
    if click is not None:
        return "click", click[1]
    impression = latest_touch(impressions.get(key, ()), conversion_ts, VIEW_THROUGH_WINDOW_MS, as_of)
    if impression is not None:
        return "view_through", impression[1]
    return None


class GroundTruth:
    """Collects valid events and computes the marts as of any arrival date."""

    def __init__(self, usd_rates: dict[str, Decimal]) -> None:
        self.usd_rates = usd_rates
        # Keys hold the UTC event day as days since 1970-01-01.
        self._impressions: dict[tuple[date, int, str], int] = defaultdict(int)  # (arrival, day, campaign)
        self._cost_micros: dict[tuple[date, int, str, str], int] = defaultdict(int)  # ... + currency
        self._clicks: dict[tuple[date, int, str], int] = defaultdict(int)
        self._impression_touches: dict[tuple[str, str], list] = defaultdict(list)  # (user, campaign) -> touches
        self._click_touches: dict[tuple[str, str], list] = defaultdict(list)
        self._conversions: list[tuple[str, int, str, str, str, str, date]] = []
        # (arrival, day, exchange, campaign) -> [requests, bids, wins, sum of clearing prices]
        self._rtb: dict[tuple[date, int, str, str], list] = {}
        self._sorted = True

    # --- collecting ---

    def add_impressions(self, rows: Iterable[tuple[str, int, str, str, int, str]], arrival: date) -> None:
        """rows: (event_id, ts_ms, user_id, campaign_id, cost_micros, currency)."""
        batch: dict[tuple[int, str, str], list[int]] = {}  # (day, campaign, currency) -> [count, micros]
        touches = self._impression_touches
        for event_id, ts, user_id, campaign_id, cost_micros, currency in rows:
            key = (ts // DAY_MS, campaign_id, currency)
            agg = batch.get(key)
            if agg is None:
                agg = batch[key] = [0, 0]
            agg[0] += 1
            agg[1] += cost_micros
            touches[(user_id, campaign_id)].append((ts, event_id, arrival))
        for (day, campaign_id, currency), (count, micros) in batch.items():
            self._impressions[(arrival, day, campaign_id)] += count
            self._cost_micros[(arrival, day, campaign_id, currency)] += micros
        self._sorted = False

    def add_click(self, click_id: str, ts: int, user_id: str, campaign_id: str, arrival: date) -> None:
        self._clicks[(arrival, ts // DAY_MS, campaign_id)] += 1
        self._click_touches[(user_id, campaign_id)].append((ts, click_id, arrival))
        self._sorted = False

    def add_conversion(
        self, conversion_id: str, ts: int, user_id: str, campaign_id: str, value: str, currency: str, arrival: date
    ) -> None:
        """value: the decimal amount as text, in currency."""
        self._conversions.append((conversion_id, ts, user_id, campaign_id, value, currency, arrival))

    def add_bid_requests(self, rows: Iterable[tuple[int, str, str, bool, bool, float | None]], arrival: date) -> None:
        """rows: (ts_ms, exchange, campaign_id, bid, win, clearing_price CPM USD or None)."""
        rtb = self._rtb
        for ts, exchange, campaign_id, bid, win, clearing_price in rows:
            key = (arrival, ts // DAY_MS, exchange, campaign_id)
            agg = rtb.get(key)
            if agg is None:
                agg = rtb[key] = [0, 0, 0, Decimal(0)]
            agg[0] += 1
            if bid:
                agg[1] += 1
            if win:
                agg[2] += 1
                agg[3] += Decimal(repr(clearing_price))

    # --- computing ---

    def _sort(self) -> None:
        if not self._sorted:
            for touches in (*self._impression_touches.values(), *self._click_touches.values()):
                touches.sort()
            self._sorted = True

    def campaign_daily(self, as_of: date) -> list[dict[str, object]]:
        self._sort()
        rows: dict[tuple[date, str], dict[str, object]] = {}

        def row(event_date: date, campaign_id: str) -> dict[str, object]:
            found = rows.get((event_date, campaign_id))
            if found is None:
                found = rows[(event_date, campaign_id)] = {
                    "event_date": event_date,
                    "campaign_id": campaign_id,
                    "impressions": 0,
                    "clicks": 0,
                    "conversions": 0,
                    "attributed_conversions": 0,
                    "spend_usd": Decimal(0),
                    "revenue_usd": Decimal(0),
                }
            return found

        for (arrival, day, campaign_id), count in self._impressions.items():
            if arrival <= as_of:
                row(_day(day), campaign_id)["impressions"] += count
        for (arrival, day, campaign_id, currency), micros in self._cost_micros.items():
            if arrival <= as_of:
                row(_day(day), campaign_id)["spend_usd"] += Decimal(micros) / _MILLION * self.usd_rates[currency]
        for (arrival, day, campaign_id), count in self._clicks.items():
            if arrival <= as_of:
                row(_day(day), campaign_id)["clicks"] += count
        for _cid, ts, user_id, campaign_id, value, currency, arrival in self._conversions:
            if arrival > as_of:
                continue
            r = row(utc_date(ts), campaign_id)
            r["conversions"] += 1
            if attribute(ts, (user_id, campaign_id), self._click_touches, self._impression_touches, as_of):
                r["attributed_conversions"] += 1
                r["revenue_usd"] += Decimal(value) * self.usd_rates[currency]
        result = [rows[k] for k in sorted(rows)]
        for r in result:
            spend, revenue = r["spend_usd"], r["revenue_usd"]  # exact; ratios divide these, then round once
            r["ctr"] = ratio(r["clicks"], r["impressions"])
            r["cvr"] = ratio(r["conversions"], r["clicks"])
            r["cpc_usd"] = ratio(spend, r["clicks"])
            r["cpm_usd"] = ratio(spend * 1000, r["impressions"])
            r["cpa_usd"] = ratio(spend, r["attributed_conversions"])
            r["roas"] = ratio(revenue, spend)
            r["spend_usd"] = round6(spend)
            r["revenue_usd"] = round6(revenue)
        return result

    def rtb_daily(self, as_of: date) -> list[dict[str, object]]:
        totals: dict[tuple[date, str, str], list] = {}
        for (arrival, day, exchange, campaign_id), (requests, bids, wins, clearing) in self._rtb.items():
            if arrival <= as_of:
                t = totals.setdefault((_day(day), exchange, campaign_id), [0, 0, 0, Decimal(0)])
                t[0] += requests
                t[1] += bids
                t[2] += wins
                t[3] += clearing
        return [
            {
                "event_date": key[0],
                "exchange": key[1],
                "campaign_id": key[2],
                "bid_requests": requests,
                "bids": bids,
                "wins": wins,
                "bid_rate": ratio(bids, requests),
                "win_rate": ratio(wins, bids),
                "avg_clearing_price_cpm": ratio(clearing, wins),
            }
            for key, (requests, bids, wins, clearing) in sorted(totals.items())
        ]

    def write(self, folder: Path, as_of: date) -> list[Path]:
        """Write as_of=<date>/campaign_daily.csv and rtb_daily.csv under folder; nulls are empty fields."""
        target = folder / f"as_of={as_of.isoformat()}"
        target.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, columns, rows in (
            ("campaign_daily", CAMPAIGN_DAILY_COLUMNS, self.campaign_daily(as_of)),
            ("rtb_daily", RTB_DAILY_COLUMNS, self.rtb_daily(as_of)),
        ):
            path = target / f"{name}.csv"
            with path.open("w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle, lineterminator="\n")
                writer.writerow(columns)
                for r in rows:
                    writer.writerow(["" if r[c] is None else str(r[c]) for c in columns])
            paths.append(path)
        return paths
