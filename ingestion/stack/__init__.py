"""The local services of the shared warehouse and the streaming path, started and stopped by
`adx stack up|down|status`: PostgreSQL (the Hive metastore database), HDFS (NameNode and DataNode: the lake),
OpenLDAP (the Thrift servers' logins), the two Spark Thrift Servers (the engineers': dbt's thrift target; the
analysts': marts only), the Kafka broker, and the monitoring pair: the
metrics exporter and the Prometheus server that scrapes it and evaluates the alert rules.

Every service binds to 127.0.0.1 only and keeps its data, logs and pid file under `settings.stack_dir`. Services
are started in the order of SERVICES and stopped in reverse order. To add one, write a class with the `Service`
interface in its own module (process.py has what they share) and add it to SERVICES; provisioning that needs
the whole stack (like the Kafka topics) goes in `up()`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Protocol

from ingestion.settings import Settings
from ingestion.stack.hdfs import HdfsDataNode, HdfsNameNode
from ingestion.stack.kafka import KafkaBroker, TopicState, ensure_topics
from ingestion.stack.ldap import LdapServer
from ingestion.stack.monitoring import MetricsExporter, PrometheusServer
from ingestion.stack.postgres import PostgresMetastoreDb
from ingestion.stack.process import PortInUseError, StackError
from ingestion.stack.thrift import AnalystThriftServer, ThriftServer

__all__ = ["SERVICES", "PortInUseError", "StackError", "StackUp", "down", "services", "status", "up"]


class ServiceStatus(Protocol):
    """What `adx stack status` shows of a service."""

    @property
    def name(self) -> str: ...
    @property
    def running(self) -> bool: ...
    @property
    def healthy(self) -> bool: ...  # running and serving requests
    @property
    def pid(self) -> int | None: ...
    @property
    def address(self) -> str: ...  # where clients connect, e.g. 127.0.0.1:19092
    @property
    def detail(self) -> str: ...  # one line: what it holds, or what is wrong


class Service(Protocol):
    name: str

    def start(self, timeout: float) -> None:
        """Start unless running, and return once it serves requests; StackError if it cannot."""

    def stop(self, timeout: float) -> bool:
        """Stop if running; False if it had to be killed."""

    def status(self) -> ServiceStatus: ...


# In start order: the Thrift server needs the metastore database, the lake and the directory of its logins. Each
# entry builds the service from the settings.
SERVICES: tuple[Callable[[Settings], Service], ...] = (
    PostgresMetastoreDb,
    HdfsNameNode,
    HdfsDataNode,
    LdapServer,
    ThriftServer,
    AnalystThriftServer,
    KafkaBroker,
    MetricsExporter,
    PrometheusServer,
)
SERVICE_NAMES = (
    "postgres",
    "hdfs-namenode",
    "hdfs-datanode",
    "ldap",
    "thrift",
    "thrift-analyst",
    "kafka",
    "exporter",
    "prometheus",
)


@dataclass(frozen=True)
class StackUp:
    services: list[ServiceStatus]
    topics: list[TopicState]


def services(settings: Settings, only: Collection[str] | None = None) -> list[Service]:
    """The services (all, or those named in `only`), in start order, built from `settings.for_stack()`: the
    stack is what ADX_WAREHOUSE=stack uses, whatever this process's ADX_WAREHOUSE says."""
    unknown = set(only or ()) - set(SERVICE_NAMES)
    if unknown:
        raise StackError(f"no service {', '.join(sorted(unknown))}: the services are {', '.join(SERVICE_NAMES)}")
    stack_settings = settings.for_stack()
    stack = [make(stack_settings) for make in SERVICES]
    return [service for service in stack if only is None or service.name in only]


def up(settings: Settings, timeout: float = 90.0, only: Collection[str] | None = None) -> StackUp:
    """Start every service (or those in `only`) that is not running, each within `timeout` seconds, then create
    the Kafka topics. Running it again changes nothing."""
    stack = services(settings, only)
    for service in stack:
        service.start(timeout)
    topics = ensure_topics(settings) if any(service.name == "kafka" for service in stack) else []
    return StackUp(services=[service.status() for service in stack], topics=topics)


def down(settings: Settings, timeout: float = 60.0, only: Collection[str] | None = None) -> list[tuple[str, bool]]:
    """Stop every service (or those in `only`), in reverse start order. Returns (service, stopped cleanly) pairs."""
    return [(service.name, service.stop(timeout)) for service in reversed(services(settings, only))]


def status(settings: Settings, only: Collection[str] | None = None) -> list[ServiceStatus]:
    return [service.status() for service in services(settings, only)]
