"""The operator's view of the warehouse, `adx status`: source freshness and quarantine, the latest dbt results,
and the anomalies the dbt anomaly tests (tag `anomaly`, macros/anomaly_tests.sql) found, read from the tables the
pipeline already keeps:

- raw.<source> and raw.load_batches: the newest arrival date (`_ingest_date`), the last load, and what the batches
  of that arrival date read, landed and quarantined;
- ops.dbt_run_results (the on-run-end hook): the latest result of every dbt node, from whichever invocation ran
  it last (`adx transform`, a Cosmos task, `adx dbt`);
- the anomaly tests' stored failures (ops.anomaly_*): which campaign's volume, which source's freshness, which
  raw column;
- marts.agg_campaign_daily: each campaign's newest day, for the campaign KPI dashboard.

The same figures become Prometheus metrics (ingestion/monitoring/metrics.py), so the alerts and this summary
never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING

from ingestion.console import format_table
from ingestion.sources import SOURCES

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

RUN_RESULTS_TABLE = "ops.dbt_run_results"
LOAD_BATCHES_TABLE = "raw.load_batches"
CAMPAIGN_DAILY_TABLE = "marts.agg_campaign_daily"
ANOMALY_TAG = "anomaly"
FAILED_STATUSES = ("error", "fail", "runtime error")
FLAGGED_STATUSES = (*FAILED_STATUSES, "warn")


@dataclass(frozen=True)
class SourceHealth:
    source: str  # impressions, clicks, conversions, bid_requests
    latest_arrival: date | None  # newest `_ingest_date` in the raw table
    last_loaded_at: datetime | None  # newest load of any of its batches (UTC)
    lag_days: int | None  # behind the newest arrival of any source; None when the source has nothing
    records_read: int  # the batches of its latest arrival date
    records_landed: int
    records_quarantined: int

    @property
    def quarantine_ratio(self) -> float:
        return self.records_quarantined / self.records_read if self.records_read else 0.0


@dataclass(frozen=True)
class NodeResult:
    unique_id: str
    resource_type: str  # model, test, seed, ...
    name: str
    status: str  # dbt's: success, error, fail, warn, pass, skipped
    failures: int | None  # failing rows of a test
    execution_seconds: float | None
    message: str | None
    tags: tuple[str, ...]
    run_started_at: datetime
    stored_failures_relation: str | None

    @property
    def is_anomaly_test(self) -> bool:
        return self.resource_type == "test" and ANOMALY_TAG in self.tags


@dataclass(frozen=True)
class Anomaly:
    """One failing row of an anomaly test."""

    kind: str  # volume | freshness | schema
    test: str
    relation: str  # the table watched, e.g. raw.impressions
    labels: dict[str, str]  # volume: campaign (when grouped by campaign_id); schema: change, column
    detail: str  # one line for the operator
    deviation: float | None = None  # volume: (volume - baseline mean) / spread; negative for a drop

    @property
    def source(self) -> str:
        return self.relation.rsplit(".", 1)[-1].strip("`")


@dataclass(frozen=True)
class CampaignDay:
    """One campaign's row of marts.agg_campaign_daily on its newest event date (late clicks and conversions can
    still add to it for lookback_days)."""

    event_date: date
    campaign_id: str
    advertiser_id: str
    impressions: int
    clicks: int
    conversions: int
    spend_usd: float
    revenue_usd: float


@dataclass(frozen=True)
class WarehouseStatus:
    checked_at: datetime
    sources: list[SourceHealth]
    nodes: list[NodeResult]  # the latest result of every dbt node
    anomalies: list[Anomaly] = field(default_factory=list)
    campaigns: list[CampaignDay] = field(default_factory=list)

    @property
    def failed_nodes(self) -> list[NodeResult]:
        return [node for node in self.nodes if node.status in FAILED_STATUSES and not node.is_anomaly_test]

    @property
    def stale_sources(self) -> list[SourceHealth]:
        stale = {anomaly.source for anomaly in self.anomalies if anomaly.kind == "freshness"}
        return [health for health in self.sources if health.source in stale or health.latest_arrival is None]

    @property
    def node_counts(self) -> dict[str, int]:
        """dbt nodes by the status of their latest result."""
        counts: dict[str, int] = {}
        for node in self.nodes:
            counts[node.status] = counts.get(node.status, 0) + 1
        return counts

    @property
    def healthy(self) -> bool:
        return not (self.failed_nodes or self.anomalies or self.stale_sources)


def warehouse_status(spark: SparkSession, checked_at: datetime) -> WarehouseStatus:
    nodes = latest_node_results(spark)
    return WarehouseStatus(
        checked_at=checked_at,
        sources=source_health(spark),
        nodes=nodes,
        anomalies=[anomaly for node in nodes for anomaly in _anomalies_of(spark, node)],
        campaigns=newest_campaign_day(spark),
    )


def newest_campaign_day(spark: SparkSession) -> list[CampaignDay]:
    if not spark.catalog.tableExists(CAMPAIGN_DAILY_TABLE):
        return []
    rows = spark.sql(
        f"""
        select event_date, campaign_id, advertiser_id, impressions, clicks, conversions, spend_usd, revenue_usd
        from {CAMPAIGN_DAILY_TABLE}
        where event_date = (select max(event_date) from {CAMPAIGN_DAILY_TABLE})
        order by campaign_id
        """
    ).collect()
    return [
        CampaignDay(
            event_date=row.event_date,
            campaign_id=row.campaign_id,
            advertiser_id=row.advertiser_id,
            impressions=int(row.impressions),
            clicks=int(row.clicks),
            conversions=int(row.conversions),
            spend_usd=float(row.spend_usd or 0),
            revenue_usd=float(row.revenue_usd or 0),
        )
        for row in rows
    ]


def source_health(spark: SparkSession) -> list[SourceHealth]:
    latest: dict[str, tuple[date | None, datetime | None]] = {}
    for source in SOURCES.values():
        if spark.catalog.tableExists(source.raw_table):
            row = spark.sql(f"select max(_ingest_date), max(_loaded_at) from {source.raw_table}").first()
            latest[source.name] = (row[0], row[1])
        else:
            latest[source.name] = (None, None)
    newest = max((arrival for arrival, _ in latest.values() if arrival), default=None)
    batches = _latest_batches(spark)
    health = []
    for name, (arrival, loaded_at) in latest.items():
        read, landed, quarantined = batches.get((name, arrival), (0, 0, 0))
        health.append(
            SourceHealth(
                source=name,
                latest_arrival=arrival,
                last_loaded_at=loaded_at,
                lag_days=(newest - arrival).days if arrival and newest else None,
                records_read=read,
                records_landed=landed,
                records_quarantined=quarantined,
            )
        )
    return health


def _latest_batches(spark: SparkSession) -> dict[tuple[str, date], tuple[int, int, int]]:
    """(source, arrival date) -> read, landed, quarantined of its batches, each batch's latest load only."""
    if not spark.catalog.tableExists(LOAD_BATCHES_TABLE):
        return {}
    rows = spark.sql(
        f"""
        select source, ingest_date, sum(records_read), sum(records_landed), sum(records_quarantined)
        from (
            select *, row_number() over (partition by batch_id order by loaded_at desc) as newest_first
            from {LOAD_BATCHES_TABLE}
        )
        where newest_first = 1
        group by source, ingest_date
        """
    ).collect()
    return {(row[0], row[1]): (int(row[2]), int(row[3]), int(row[4])) for row in rows}


def latest_node_results(spark: SparkSession) -> list[NodeResult]:
    """The latest result of every node that ran in the last run date's week, newest invocation first."""
    if not spark.catalog.tableExists(RUN_RESULTS_TABLE):
        return []
    rows = spark.sql(
        f"""
        select unique_id, resource_type, name, status, failures, execution_seconds, message, tags, run_started_at,
            stored_failures_relation
        from (
            select *,
                row_number() over (partition by unique_id order by run_started_at desc, invocation_id desc) as rn
            from {RUN_RESULTS_TABLE}
            where run_date >= (select date_sub(max(run_date), 7) from {RUN_RESULTS_TABLE})
        )
        where rn = 1 and resource_type in ('model', 'seed', 'snapshot', 'test')
        order by unique_id
        """
    ).collect()
    return [
        NodeResult(
            unique_id=row.unique_id,
            resource_type=row.resource_type,
            name=row.name,
            status=row.status,
            failures=row.failures,
            execution_seconds=row.execution_seconds,
            message=row.message,
            tags=tuple(tag for tag in (row.tags or "").split(",") if tag),
            run_started_at=row.run_started_at,
            stored_failures_relation=row.stored_failures_relation,
        )
        for row in rows
    ]


def _anomalies_of(spark: SparkSession, node: NodeResult) -> list[Anomaly]:
    if not (node.is_anomaly_test and node.status in FLAGGED_STATUSES and node.stored_failures_relation):
        return []
    relation = node.stored_failures_relation.replace("`", "")
    if not spark.catalog.tableExists(relation):
        return []
    rows = spark.sql(f"select * from {relation}").collect()
    return [_anomaly(node.name, row.asDict()) for row in rows]


def _anomaly(test: str, row: dict) -> Anomaly:
    relation = row["monitored_relation"]
    if "group_value" in row:
        group = row["group_column"] or "all"
        label = "campaign" if group == "campaign_id" else group
        change = "drop" if row["volume"] < row["baseline_mean"] else "rise"
        return Anomaly(
            kind="volume",
            test=test,
            relation=relation,
            labels={"campaign": row["group_value"]} if label == "campaign" else {},
            detail=(
                f"{relation} {label} {row['group_value']} on {row['day']}: {row['volume']} rows vs a baseline of "
                f"{row['baseline_mean']:g} ({change}, {row['deviation']:+g} spreads)"
            ),
            deviation=float(row["deviation"]),
        )
    if "lag_days" in row:
        lag = "no data at all" if row["latest_date"] is None else f"{row['lag_days']} days behind"
        return Anomaly(
            kind="freshness",
            test=test,
            relation=relation,
            labels={},
            detail=(
                f"{relation}.{row['date_column']}: newest {row['latest_date']}, {lag} the newest arrival "
                f"{row['reference_date']}"
            ),
        )
    return Anomaly(
        kind="schema",
        test=test,
        relation=relation,
        labels={"change": row["change"], "column": row["column_name"]},
        detail=f"{relation}: column {row['column_name']} {row['change']}",
    )


def summary(status: WarehouseStatus) -> str:
    """The operator's summary: what is wrong first, then every source's figures."""
    lines = [
        f"warehouse status at {status.checked_at:%Y-%m-%d %H:%M:%S} UTC: {'OK' if status.healthy else 'ATTENTION'}"
    ]
    for health in status.stale_sources:
        behind = "nothing loaded yet" if health.latest_arrival is None else f"{health.lag_days} days behind"
        lines.append(f"  STALE SOURCE  {health.source}: newest arrival {health.latest_arrival} ({behind})")
    for anomaly in status.anomalies:
        if anomaly.kind == "volume":
            lines.append(f"  VOLUME        {anomaly.detail}")
        elif anomaly.kind == "freshness":
            lines.append(f"  FRESHNESS     {anomaly.detail}")
        else:
            lines.append(f"  SCHEMA        {anomaly.detail}")
    for node in status.failed_nodes:
        failing = f", {node.failures} failing rows" if node.resource_type == "test" and node.failures else ""
        lines.append(
            f"  DBT {node.status.upper():<10}{node.resource_type} {node.name}{failing} ({node.run_started_at:%Y-%m-%d %H:%M})"
        )
    if not status.nodes:
        lines.append("  no dbt results recorded yet (ops.dbt_run_results is written after every dbt invocation)")
    lines.append("")
    header = ("source", "newest arrival", "lag days", "last loaded (UTC)", "read", "landed", "quarantined")
    rows = [
        (
            h.source,
            h.latest_arrival or "-",
            "-" if h.lag_days is None else h.lag_days,
            f"{h.last_loaded_at:%Y-%m-%d %H:%M}" if h.last_loaded_at else "-",
            h.records_read,
            h.records_landed,
            f"{h.records_quarantined} ({h.quarantine_ratio:.1%})",
        )
        for h in status.sources
    ]
    lines.append(format_table(list(header), rows))
    counts = status.node_counts
    if counts:
        lines.append("")
        lines.append("dbt nodes by latest result: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    return "\n".join(lines)
