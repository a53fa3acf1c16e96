"""The dates one adx_transform run rebuilds, and the dbt vars that say so.

The marts are partitioned by event date; a raw record that arrives on date A has an event date between
A - lookback_days and A (later arrivals are out of contract). So a run that follows the landing of arrival dates
[start, end] rebuilds run_date = end with a lookback that reaches back to start - lookback_days: the default
lookback, widened when the run covers several arrival dates (a backfill, or a catch-up after a pause).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any


@dataclass(frozen=True)
class DbtInterval:
    """Arrival dates [start, end], both inclusive; None for both means every date (a full rebuild)."""

    start: date | None
    end: date | None

    def __post_init__(self) -> None:
        if (self.start is None) != (self.end is None):
            raise ValueError("an interval has both a start and an end date, or neither")
        if self.start and self.end and self.start > self.end:
            raise ValueError(f"interval start {self.start} is after its end {self.end}")

    @property
    def is_everything(self) -> bool:
        return self.end is None

    def dbt_vars(self, default_lookback_days: int) -> dict[str, Any]:
        """dbt vars: `run_date` and `lookback_days`, the event dates to rebuild (this interval's plus the lookback
        before them); `arrival_start_date`, the first arrival date the staging base tables re-validate."""
        if self.start is None or self.end is None:
            return {"run_date": None, "lookback_days": default_lookback_days, "arrival_start_date": None}
        return {
            "run_date": self.end.isoformat(),
            "lookback_days": default_lookback_days + (self.end - self.start).days,
            "arrival_start_date": self.start.isoformat(),
        }

    def describe(self) -> str:
        if self.start is None:
            return "every date"
        return str(self.start) if self.start == self.end else f"{self.start} .. {self.end}"


def interval_of_dates(dates: Iterable[str | date]) -> DbtInterval | None:
    """The interval spanning these arrival dates; None when there are none."""
    parsed = sorted({value if isinstance(value, date) else date.fromisoformat(value) for value in dates})
    return DbtInterval(parsed[0], parsed[-1]) if parsed else None


def interval_of_run(params: Mapping[str, Any], asset_event_extras: Iterable[Mapping[str, Any]]) -> DbtInterval:
    """The interval of one adx_transform run.

    Explicit params (a manual run or a backfill: start_date and end_date, both or neither) win; otherwise the
    arrival dates carried by the asset events that triggered the run (`ingest_dates`); with neither, every date.
    """
    start, end = params.get("start_date"), params.get("end_date")
    if start or end:
        if not (start and end):
            raise ValueError("give both start_date and end_date (YYYY-MM-DD), or neither")
        return DbtInterval(date.fromisoformat(str(start)), date.fromisoformat(str(end)))
    dates = [value for extra in asset_event_extras for value in extra.get("ingest_dates", ())]
    return interval_of_dates(dates) or DbtInterval(None, None)
