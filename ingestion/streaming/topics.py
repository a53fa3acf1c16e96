"""The Kafka topics of the warehouse and the record headers every producer sets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import Column


@dataclass(frozen=True)
class Topic:
    name: str
    partitions: int
    retention_ms: int
    source: str  # the landing source (ingestion.sources) whose records it carries


DAY_MS = 24 * 60 * 60 * 1000

IMPRESSIONS_TOPIC = Topic("adx.impressions.v1", partitions=4, retention_ms=7 * DAY_MS, source="impressions")
BID_REQUESTS_TOPIC = Topic("adx.bid_requests.v1", partitions=4, retention_ms=7 * DAY_MS, source="bid_requests")
# Dead letters are kept longer: a person has to look at them.
IMPRESSIONS_DLQ_TOPIC = Topic("adx.impressions.dlq.v1", partitions=1, retention_ms=30 * DAY_MS, source="impressions")
BID_REQUESTS_DLQ_TOPIC = Topic("adx.bid_requests.dlq.v1", partitions=1, retention_ms=30 * DAY_MS, source="bid_requests")

TOPICS: tuple[Topic, ...] = (IMPRESSIONS_TOPIC, BID_REQUESTS_TOPIC, IMPRESSIONS_DLQ_TOPIC, BID_REQUESTS_DLQ_TOPIC)

# Record headers (UTF-8 values). SOURCE_FILE and INGEST_DATE carry where a record arrived, so that the raw tables
# get the same _source_file and _ingest_date as when the batch loader reads the files themselves.
SOURCE_FILE_HEADER = "adx.source_file"
INGEST_DATE_HEADER = "adx.ingest_date"  # YYYY-MM-DD: the dt= folder of the file, else the UTC shipping date
SCHEMA_FINGERPRINT_HEADER = "adx.schema_fingerprint"  # Avro records: CRC-64-AVRO fingerprint of the writer schema, hex
DLQ_REASON_HEADER = "adx.reason"  # dead letters: why the record could not be published


def header_column(key: str) -> Column:
    """The UTF-8 value of header `key` of a record read by Spark's Kafka source (includeHeaders), else null.

    A map lookup is about 6x cheaper than filtering the header array with a lambda. A key sent twice keeps its last
    value (spark.sql.mapKeyDedupPolicy=LAST_WIN, set in ingestion.spark), as Kafka's Headers.lastHeader does."""
    from pyspark.sql import functions as F

    return F.expr(f"cast(try_element_at(map_from_entries(headers), '{key}') as string)")
