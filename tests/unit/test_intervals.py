"""The dates an adx_transform run rebuilds, from its params or its triggering asset events."""

from datetime import date

import pytest

from ingestion.orchestration.intervals import DbtInterval, interval_of_dates, interval_of_run


def test_one_arrival_date_rebuilds_it_with_the_default_lookback():
    interval = interval_of_run({}, [{"ingest_dates": ["2026-11-02"]}])
    assert interval == DbtInterval(date(2026, 11, 2), date(2026, 11, 2))
    assert interval.dbt_vars(3) == {
        "run_date": "2026-11-02",
        "lookback_days": 3,
        "arrival_start_date": "2026-11-02",
    }


def test_events_of_several_sources_and_dates_span_one_interval_whose_lookback_reaches_its_first_date():
    extras = [{"ingest_dates": ["2026-11-03"]}, {"ingest_dates": ["2026-11-01", "2026-11-02"]}, {"records_read": 0}]
    interval = interval_of_run({"start_date": None, "end_date": None}, extras)
    assert (interval.start, interval.end) == (date(2026, 11, 1), date(2026, 11, 3))
    # run_date 11-03 with lookback 5 rewrites event dates 10-29 .. 11-03: 11-01 and its own 3-day lookback
    assert interval.dbt_vars(3) == {
        "run_date": "2026-11-03",
        "lookback_days": 5,
        "arrival_start_date": "2026-11-01",
    }


def test_params_of_a_manual_run_or_backfill_win_over_events():
    interval = interval_of_run(
        {"start_date": "2026-11-05", "end_date": "2026-11-07"}, [{"ingest_dates": ["2026-11-09"]}]
    )
    assert interval.describe() == "2026-11-05 .. 2026-11-07"


def test_no_params_and_no_events_rebuild_every_date():
    interval = interval_of_run({}, [])
    assert interval.is_everything
    assert interval.dbt_vars(3) == {"run_date": None, "lookback_days": 3, "arrival_start_date": None}


@pytest.mark.parametrize(
    "params",
    [{"start_date": "2026-11-05"}, {"end_date": "2026-11-05"}, {"start_date": "2026-11-07", "end_date": "2026-11-05"}],
)
def test_half_or_reversed_params_are_refused(params):
    with pytest.raises(ValueError):
        interval_of_run(params, [])


def test_dates_are_deduplicated_and_sorted():
    assert interval_of_dates(["2026-11-02", date(2026, 11, 1), "2026-11-02"]) == DbtInterval(
        date(2026, 11, 1), date(2026, 11, 2)
    )
    assert interval_of_dates([]) is None
