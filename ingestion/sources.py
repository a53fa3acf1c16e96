"""The four landing sources: where their files arrive and which raw tables they feed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# The latest bid-request schema: raw.bid_requests has its columns, and older versions are read resolved to it.
AVRO_SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "bid_request.v2.avsc"


@dataclass(frozen=True)
class Source:
    name: str
    landing_subdir: str  # under the landing folder; holds one dt=YYYY-MM-DD folder per arrival date
    file_glob: str
    file_format: str  # json_lines | csv | avro
    columns: tuple[str, ...] = ()  # landed columns for JSON and CSV (all strings); Avro keeps its schema

    @property
    def raw_table(self) -> str:
        return f"raw.{self.name}"

    @property
    def quarantine_table(self) -> str:
        return f"raw.quarantine_{self.name}"


IMPRESSIONS = Source(
    name="impressions",
    landing_subdir="impressions",
    file_glob="*.jsonl",
    file_format="json_lines",
    columns=(
        "event_id",
        "event_time",
        "user_id",
        "campaign_id",
        "ad_id",
        "site_domain",
        "device_type",
        "country",
        "bid_request_id",
        "cost_micros",
        "currency",
        "server",
    ),
)
CLICKS = Source(
    name="clicks",
    landing_subdir="tracking/clicks",
    file_glob="*.csv",
    file_format="csv",
    columns=("click_id", "click_time", "user_id", "campaign_id", "ad_id", "device_type", "landing_page_url"),
)
CONVERSIONS = Source(
    name="conversions",
    landing_subdir="tracking/conversions",
    file_glob="*.csv",
    file_format="csv",
    columns=(
        "conversion_id",
        "conversion_time",
        "user_id",
        "campaign_id",
        "conversion_type",
        "value",
        "currency",
    ),
)
BID_REQUESTS = Source(
    name="bid_requests",
    landing_subdir="rtb",
    file_glob="*.avro",
    file_format="avro",
)

SOURCES: dict[str, Source] = {s.name: s for s in (IMPRESSIONS, CLICKS, CONVERSIONS, BID_REQUESTS)}
