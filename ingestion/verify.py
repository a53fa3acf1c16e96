"""Compares the marts with the generator's ground truth, cell by cell."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING

from ingestion.generator.truth import CAMPAIGN_DAILY_COLUMNS, RTB_DAILY_COLUMNS
from ingestion.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@dataclass(frozen=True)
class Comparison:
    truth_file: str
    mart: str
    keys: tuple[str, ...]
    measures: tuple[str, ...]


COMPARISONS = (
    Comparison(
        truth_file="campaign_daily.csv",
        mart="marts.agg_campaign_daily",
        keys=CAMPAIGN_DAILY_COLUMNS[:2],
        measures=CAMPAIGN_DAILY_COLUMNS[2:],
    ),
    Comparison(
        truth_file="rtb_daily.csv",
        mart="marts.agg_rtb_daily",
        keys=RTB_DAILY_COLUMNS[:3],
        measures=RTB_DAILY_COLUMNS[3:],
    ),
)


@dataclass(frozen=True)
class Difference:
    mart: str
    key: tuple[str, ...]
    column: str
    expected: str
    actual: str

    def __str__(self) -> str:
        key = ", ".join(self.key)
        return f"{self.mart} [{key}] {self.column}: expected {self.expected}, got {self.actual}"


def truth_dates(settings: Settings) -> list[date]:
    folders = settings.ground_truth_dir.glob("as_of=*")
    return sorted(date.fromisoformat(folder.name.removeprefix("as_of=")) for folder in folders)


def latest_loaded_date(spark: SparkSession) -> date | None:
    """The latest arrival date in the raw tables, whichever path (batch loader or streaming landers) wrote it."""
    from ingestion.sources import SOURCES

    tables = [s.raw_table for s in SOURCES.values() if spark.catalog.tableExists(s.raw_table)]
    if not tables:
        return None
    arrivals = " union all ".join(f"select max(_ingest_date) as day from {table}" for table in tables)
    return spark.sql(f"select max(day) from ({arrivals})").first()[0]


def verify(spark: SparkSession, settings: Settings, as_of: date) -> list[Difference]:
    """Every cell of the truth as of `as_of` that the marts do not hold, and every mart row the truth lacks."""
    folder = settings.ground_truth_dir / f"as_of={as_of.isoformat()}"
    if not folder.is_dir():
        raise FileNotFoundError(f"no ground truth for {as_of}: {folder} (run `adx generate` first)")
    differences = []
    for comparison in COMPARISONS:
        expected = _read_truth(folder / comparison.truth_file, comparison)
        actual = _read_mart(spark, comparison)
        differences += _compare(comparison, expected, actual)
    return differences


def _normalise(value: object) -> str:
    """One text form for a cell from either side: numbers without trailing zeros, NULL as the empty string."""
    if value is None or value == "":
        return ""
    text = value.isoformat() if isinstance(value, date) else str(value)
    try:
        number = Decimal(text)
    except InvalidOperation:
        return text
    return format(number.normalize(), "f") if number != 0 else "0"


def _read_truth(path: Path, comparison: Comparison) -> dict[tuple[str, ...], dict[str, str]]:
    with path.open(newline="") as handle:
        return {
            tuple(_normalise(row[k]) for k in comparison.keys): {m: _normalise(row[m]) for m in comparison.measures}
            for row in csv.DictReader(handle)
        }


def _read_mart(spark: SparkSession, comparison: Comparison) -> dict[tuple[str, ...], dict[str, str]]:
    rows = spark.table(comparison.mart).select(*comparison.keys, *comparison.measures).collect()
    return {
        tuple(_normalise(row[k]) for k in comparison.keys): {m: _normalise(row[m]) for m in comparison.measures}
        for row in rows
    }


def _compare(comparison: Comparison, expected: dict, actual: dict) -> list[Difference]:
    differences = []
    for key in sorted(expected.keys() | actual.keys()):
        if key not in actual:
            differences.append(Difference(comparison.mart, key, "*", "a row", "no row"))
        elif key not in expected:
            differences.append(Difference(comparison.mart, key, "*", "no row", "a row"))
        else:
            for column in comparison.measures:
                if expected[key][column] != actual[key][column]:
                    differences.append(
                        Difference(comparison.mart, key, column, expected[key][column], actual[key][column])
                    )
    return differences
