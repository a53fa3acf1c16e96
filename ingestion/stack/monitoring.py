"""The monitoring services of the stack: the metrics exporter (the batch jobs' metric files and the Airflow
failure alerts, ingestion/monitoring/exporter.py) and a Prometheus server (Debian package `prometheus`) that
scrapes it and the topic monitor and evaluates conf/prometheus/rules/*.rules.yml.

Prometheus's home is `<stack_dir>/prometheus`:

    prometheus.yml      written on every start from the settings
    data/               the TSDB (15 days, Prometheus's default retention)
    prometheus.log      its output
    prometheus.pid

Both bind to 127.0.0.1 only. Alerts are visible on http://127.0.0.1:ADX_PROMETHEUS_PORT/alerts and its API; an
Alertmanager (not run here) is where production would route them (docs/monitoring.md).
"""

from __future__ import annotations

import json
import shutil
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ingestion.settings import PROJECT_DIR, Settings
from ingestion.stack.process import ManagedProcess, StackError, ensure_ports_free, port_in_use, wait_until

RULES_DIR = PROJECT_DIR / "conf" / "prometheus" / "rules"
HOST = "127.0.0.1"
TOPIC_MONITOR_ADDRESS = "127.0.0.1:9108"  # ingestion/streaming/monitor.py's default endpoint


@dataclass(frozen=True)
class HttpServiceStatus:
    name: str
    running: bool
    healthy: bool
    pid: int | None
    address: str
    detail: str


def http_get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (a local http URL we build)
        return response.read()


class _HttpService:
    """A server process with an HTTP endpoint that says when it is ready."""

    name: str
    ready_path: str

    def __init__(self, settings: Settings, port: int, port_setting: str, process: ManagedProcess) -> None:
        self.settings = settings
        self.port = port
        self.port_setting = port_setting
        self.process = process

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def command(self) -> list[str]:
        raise NotImplementedError

    def prepare(self) -> None:
        """Write configuration before a start."""

    def start(self, timeout: float = 60.0) -> None:
        if self.process.pid() is None:
            ensure_ports_free(HOST, {self.port: self.port_setting}, self.process.label)
            self.prepare()
            self.process.spawn(self.command(), cwd=self.settings.data_dir)
        try:
            wait_until(self._not_ready, timeout=timeout, process=self.process, what="ready")
        except StackError:
            self.stop(timeout=10)
            raise

    def stop(self, timeout: float = 30.0) -> bool:
        return self.process.stop(timeout)

    def status(self) -> HttpServiceStatus:
        pid = self.process.pid()
        if pid is None:
            detail = "stopped"
            if port_in_use(HOST, self.port):
                detail = f"stopped, and port {self.port} is in use by another process"
            return HttpServiceStatus(self.name, False, False, None, self.address, detail)
        reason = self._not_ready()
        return HttpServiceStatus(self.name, True, reason is None, pid, self.address, reason or self.detail())

    def detail(self) -> str:
        return ""

    def _not_ready(self) -> str | None:
        try:
            http_get(f"http://{self.address}{self.ready_path}", timeout=2)
        except (urllib.error.URLError, OSError) as error:
            return f"no answer on {self.ready_path} yet ({error})"
        return None


class MetricsExporter(_HttpService):
    name = "exporter"
    ready_path = "/metrics"

    def __init__(self, settings: Settings) -> None:
        home = settings.stack_dir / "exporter"
        process = ManagedProcess(
            "the metrics exporter",
            pid_file=home / "exporter.pid",
            marker=f"ingestion.monitoring.exporter --data-dir {settings.data_dir}",
            log_files=[home / "exporter.log"],
        )
        super().__init__(settings, settings.exporter_port, "ADX_EXPORTER_PORT", process)

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "ingestion.monitoring.exporter",
            "--data-dir",
            str(self.settings.data_dir),
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--kafka-bootstrap-servers",
            self.settings.kafka_bootstrap_servers,
            "--kafka-secrets-dir",
            str(self.settings.resolved_kafka_secrets_dir),
        ]

    def detail(self) -> str:
        return f"serves {self.settings.metrics_dir}/*.prom, the Airflow alerts and the streaming queries' Kafka lag"


class PrometheusServer(_HttpService):
    name = "prometheus"
    ready_path = "/-/ready"

    def __init__(self, settings: Settings) -> None:
        self.home = settings.stack_dir / "prometheus"
        self.config_file = self.home / "prometheus.yml"
        process = ManagedProcess(
            "the Prometheus server",
            pid_file=self.home / "prometheus.pid",
            marker=f"--config.file={self.config_file}",
            log_files=[self.home / "prometheus.log"],
        )
        super().__init__(settings, settings.prometheus_port, "ADX_PROMETHEUS_PORT", process)

    def command(self) -> list[str]:
        binary = shutil.which("prometheus")
        if binary is None:
            raise StackError("no `prometheus` on the PATH: run `make prometheus` (Debian package prometheus)")
        return [
            binary,
            f"--config.file={self.config_file}",
            f"--storage.tsdb.path={self.home / 'data'}",
            f"--web.listen-address={self.address}",
            "--web.enable-lifecycle",
        ]

    def prepare(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        # JSON is YAML: no YAML library needed for a file no one edits.
        self.config_file.write_text(json.dumps(prometheus_config(self.settings), indent=2))

    def detail(self) -> str:
        try:
            rules = json.loads(http_get(f"http://{self.address}/api/v1/rules", timeout=2))["data"]["groups"]
            firing = firing_alerts(self.settings)
        except (urllib.error.URLError, OSError, KeyError, ValueError) as error:
            return f"API not answering ({error})"
        names = sorted({alert["labels"]["alertname"] for alert in firing})
        count = sum(len(group["rules"]) for group in rules)
        return f"{count} rules; firing: {', '.join(names) if names else 'none'}"


def prometheus_config(settings: Settings) -> dict:
    interval = f"{settings.prometheus_interval_seconds}s"
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(path) for path in rules_file_paths()],
        "scrape_configs": [
            {"job_name": "adx-pipeline", "static_configs": [{"targets": [f"{HOST}:{settings.exporter_port}"]}]},
            {"job_name": "adx-topic-monitor", "static_configs": [{"targets": [TOPIC_MONITOR_ADDRESS]}]},
        ],
    }


def firing_alerts(settings: Settings) -> list[dict]:
    """The alerts the stack's Prometheus reports as firing."""
    body = json.loads(http_get(f"http://{HOST}:{settings.prometheus_port}/api/v1/alerts"))
    return [alert for alert in body["data"]["alerts"] if alert["state"] == "firing"]


def rules_file_paths() -> list[Path]:
    return sorted(RULES_DIR.glob("*.rules.yml"))
