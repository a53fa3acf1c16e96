"""The metrics exporter Prometheus scrapes: every metric file the batch jobs wrote (ADX_DATA_DIR/metrics/*.prom),
the Airflow failure alerts (ADX_DATA_DIR/alerts/airflow.jsonl) and the Kafka consumer lag of the streaming queries
(ingestion/monitoring/consumer_lag.py), on http://127.0.0.1:ADX_EXPORTER_PORT/metrics.

    python -m ingestion.monitoring.exporter --data-dir data --port 19108

Files are read at every scrape, so a job's new figures show at the next scrape. Families of the same name from
several files (adx_stage_duration_seconds of load and transform) are merged into one. A file that does not parse
is skipped and counted in adx_exporter_file_errors. Started by `adx stack up exporter`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import click
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

from ingestion.monitoring.consumer_lag import ConsumerLagCollector
from ingestion.orchestration.alerts import alerts_file
from ingestion.settings import Settings

log = logging.getLogger(__name__)


class PipelineCollector:
    """Collects the metric files and the Airflow alerts of one data folder at every scrape."""

    def __init__(self, metrics_dir: Path, alerts_file: Path) -> None:
        self.metrics_dir = metrics_dir
        self.alerts_file = alerts_file

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        errors = GaugeMetricFamily(
            "adx_exporter_file_errors", "1 for a metric file that does not parse.", labels=["file"]
        )
        updated = GaugeMetricFamily(
            "adx_metrics_file_timestamp_seconds", "Last write of each batch job's metric file.", labels=["job"]
        )
        for path in sorted(self.metrics_dir.glob("*.prom")):
            try:
                parsed = list(text_string_to_metric_families(path.read_text(encoding="utf-8")))
                updated.add_metric([path.stem], path.stat().st_mtime)
            except (OSError, ValueError) as error:
                log.warning("skipping %s: %s", path, error)
                errors.add_metric([path.name], 1)
                continue
            for family in parsed:
                merged = families.setdefault(family.name, Metric(family.name, family.documentation, family.type))
                merged.samples.extend(family.samples)
        yield from families.values()
        yield errors
        yield updated
        yield from self._airflow_failures()

    def _airflow_failures(self) -> Iterator[Metric]:
        failures: Counter[tuple[str, str]] = Counter()
        latest: dict[tuple[str, str], float] = {}
        try:
            lines = self.alerts_file.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            lines = []
        for line in lines:
            try:
                alert = json.loads(line)
                key = (str(alert["dag_id"]), str(alert["task_id"]))
                at = datetime.fromisoformat(alert["at"]).timestamp()
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by a crash: the next alert is still counted
            failures[key] += 1
            latest[key] = max(latest.get(key, 0.0), at)
        total = CounterMetricFamily(
            "adx_airflow_task_failures",
            "Failed Airflow task tries (the DAGs' failure callback).",
            labels=["dag_id", "task_id"],
        )
        last = GaugeMetricFamily(
            "adx_airflow_task_last_failure_timestamp_seconds",
            "When the task last failed.",
            labels=["dag_id", "task_id"],
        )
        for key, count in failures.items():
            total.add_metric(list(key), count)
            last.add_metric(list(key), latest[key])
        yield total
        yield last


def serve(settings: Settings, host: str, port: int) -> None:
    registry = CollectorRegistry()
    registry.register(PipelineCollector(settings.metrics_dir, alerts_file(settings)))
    registry.register(ConsumerLagCollector(settings))
    server, thread = start_http_server(port, addr=host, registry=registry)
    log.info("serving %s on http://%s:%d/metrics", settings.data_dir, host, port)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    with contextlib.suppress(KeyboardInterrupt):
        stopped.wait()
    server.shutdown()
    thread.join()


@click.command()
@click.option("--data-dir", type=click.Path(path_type=Path), required=True, help="ADX_DATA_DIR of the pipeline.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=19108, show_default=True, type=click.IntRange(1, 65535))
@click.option("--kafka-bootstrap-servers", required=True, help="The broker the streaming queries read (for their lag).")
@click.option(
    "--kafka-secrets-dir",
    type=click.Path(path_type=Path),
    help="The Kafka clients' CA certificate and passwords (default: <data-dir>/secrets/kafka).",
)
def main(data_dir: Path, host: str, port: int, kafka_bootstrap_servers: str, kafka_secrets_dir: Path | None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = Settings(
        data_dir=data_dir, kafka_bootstrap_servers=kafka_bootstrap_servers, kafka_secrets_dir=kafka_secrets_dir
    )
    serve(settings, host, port)


if __name__ == "__main__":
    main()
