"""Attribution and ground-truth arithmetic, on hand-made events."""

from datetime import date
from decimal import Decimal

from ingestion.generator.reference import CURRENCY_RATES
from ingestion.generator.truth import (
    CLICK_THROUGH_WINDOW_MS,
    VIEW_THROUGH_WINDOW_MS,
    GroundTruth,
    Touch,
    attribute,
    latest_touch,
)

D1 = date(2026, 11, 1)
D2 = date(2026, 11, 2)
T0 = 1_793_491_200_000  # 2026-11-01T00:00:00Z
H = 3_600_000
KEY = ("u_000001", "cmp_001")


def test_click_window_is_inclusive_at_both_ends():
    conversion = T0 + 200 * H
    at_edge = [Touch(conversion - CLICK_THROUGH_WINDOW_MS, "clk-a", D1)]
    assert latest_touch(at_edge, conversion, CLICK_THROUGH_WINDOW_MS, D2) == at_edge[0]
    just_outside = [Touch(conversion - CLICK_THROUGH_WINDOW_MS - 1, "clk-a", D1)]
    assert latest_touch(just_outside, conversion, CLICK_THROUGH_WINDOW_MS, D2) is None
    same_time = [Touch(conversion, "clk-a", D1)]
    assert latest_touch(same_time, conversion, CLICK_THROUGH_WINDOW_MS, D2) == same_time[0]
    after = [Touch(conversion + 1, "clk-a", D1)]
    assert latest_touch(after, conversion, CLICK_THROUGH_WINDOW_MS, D2) is None


def test_view_through_window_is_inclusive():
    conversion = T0 + 30 * H
    impressions = {KEY: [Touch(conversion - VIEW_THROUGH_WINDOW_MS, "imp-a", D1)]}
    assert attribute(conversion, KEY, {}, impressions, D2) == ("view_through", "imp-a")
    impressions = {KEY: [Touch(conversion - VIEW_THROUGH_WINDOW_MS - 1, "imp-a", D1)]}
    assert attribute(conversion, KEY, {}, impressions, D2) is None


def test_ties_on_time_go_to_the_greatest_id_and_later_beats_earlier():
    t = T0 + H
    touches = sorted([Touch(t, "clk-b", D1), Touch(t, "clk-c", D1), Touch(t - 5, "clk-z", D1)])
    assert latest_touch(touches, t + 10, CLICK_THROUGH_WINDOW_MS, D1).id == "clk-c"
    assert latest_touch(touches, t - 1, CLICK_THROUGH_WINDOW_MS, D1).id == "clk-z"


def test_click_beats_a_later_view_through_impression():
    conversion = T0 + 10 * H
    clicks = {KEY: [Touch(conversion - 100 * H, "clk-a", D1)]}
    impressions = {KEY: [Touch(conversion - H, "imp-a", D1)]}
    assert attribute(conversion, KEY, clicks, impressions, D2) == ("click", "clk-a")


def test_no_match_on_another_user_or_campaign_or_after_as_of():
    conversion = T0 + 10 * H
    clicks = {("u_000002", "cmp_001"): [Touch(conversion - H, "clk-a", D1)]}
    impressions = {("u_000001", "cmp_002"): [Touch(conversion - H, "imp-a", D1)]}
    assert attribute(conversion, KEY, clicks, impressions, D2) is None
    late = {KEY: [Touch(conversion - H, "clk-late", D2)]}
    assert attribute(conversion, KEY, late, {}, D1) is None
    assert attribute(conversion, KEY, late, {}, D2) == ("click", "clk-late")
    # A touch that has not arrived yet is skipped, an older one that has arrived is used.
    mixed = {KEY: [Touch(conversion - 2 * H, "clk-old", D1), Touch(conversion - H, "clk-late", D2)]}
    assert attribute(conversion, KEY, mixed, {}, D1) == ("click", "clk-old")


def test_campaign_daily_counts_money_and_as_of():
    truth = GroundTruth(CURRENCY_RATES)
    truth.add_impressions(
        [
            ("imp-1", T0 + H, "u_000001", "cmp_001", 2350, "USD"),
            ("imp-2", T0 + 2 * H, "u_000001", "cmp_001", 1001, "EUR"),
            ("imp-3", T0 + 3 * H, "u_000002", "cmp_002", 5, "GBP"),
        ],
        D1,
    )
    truth.add_click("clk-1", T0 + 2 * H + 5, "u_000001", "cmp_001", D2)  # arrives a day late
    truth.add_conversion("cnv-1", T0 + 5 * H, "u_000001", "cmp_001", "10.05", "EUR", D1)
    truth.add_conversion("cnv-2", T0 + 40 * H, "u_000002", "cmp_002", "7.00", "USD", D2)  # beyond 24 h

    as_of_1 = {r["campaign_id"]: r for r in truth.campaign_daily(D1)}
    assert as_of_1["cmp_001"]["impressions"] == 2
    assert as_of_1["cmp_001"]["clicks"] == 0
    assert as_of_1["cmp_001"]["spend_usd"] == Decimal("0.003431")  # 0.00235 + 0.001001 * 1.08 = 0.00343108
    assert as_of_1["cmp_001"]["attributed_conversions"] == 1  # view-through before the click arrives
    assert as_of_1["cmp_001"]["revenue_usd"] == Decimal("10.854000")
    assert as_of_1["cmp_002"]["spend_usd"] == Decimal("0.000006")  # 0.00000635 rounds half up

    rows_2 = truth.campaign_daily(D2)
    by_key = {(r["event_date"], r["campaign_id"]): r for r in rows_2}
    assert by_key[(D1, "cmp_001")]["clicks"] == 1
    assert by_key[(date(2026, 11, 2), "cmp_002")]["conversions"] == 1
    assert by_key[(date(2026, 11, 2), "cmp_002")]["attributed_conversions"] == 0
    assert [(r["event_date"], r["campaign_id"]) for r in rows_2] == sorted(by_key)


def test_rtb_daily_rates_and_nulls():
    truth = GroundTruth(CURRENCY_RATES)
    truth.add_bid_requests(
        [
            (T0 + 1, "magnite", "cmp_001", True, True, 1.23),
            (T0 + 2, "magnite", "cmp_001", True, True, 2.34),
            (T0 + 3, "magnite", "cmp_001", True, False, None),
            (T0 + 4, "openx", "cmp_001", False, False, None),
        ],
        D1,
    )
    rows = {r["exchange"]: r for r in truth.rtb_daily(D1)}
    assert rows["magnite"]["bid_requests"] == 3
    assert rows["magnite"]["win_rate"] == Decimal("0.666667")
    assert rows["magnite"]["avg_clearing_price_cpm"] == Decimal("1.785000")
    assert rows["openx"]["win_rate"] is None
    assert rows["openx"]["avg_clearing_price_cpm"] is None
