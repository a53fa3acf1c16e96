"""The local services of the streaming path, started and stopped by `adx stack up|down|status`.

Every service binds to 127.0.0.1 only and keeps its data, logs and pid file under `settings.stack_dir`. Services
are started in the order of SERVICES and stopped in reverse order. To add one (HDFS, Postgres, the Thrift
server), write a class with the `Service` interface in its own module, next to kafka.py, and append it to SERVICES;
provisioning that needs the whole stack (like the Kafka topics) goes in `up()`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ingestion.settings import Settings
from ingestion.stack.kafka import KafkaBroker, TopicState, ensure_topics
from ingestion.stack.process import PortInUseError, StackError

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


# In start order. Each entry builds the service from the settings.
SERVICES: tuple[Callable[[Settings], Service], ...] = (KafkaBroker,)


@dataclass(frozen=True)
class StackUp:
    services: list[ServiceStatus]
    topics: list[TopicState]


def services(settings: Settings) -> list[Service]:
    return [make(settings) for make in SERVICES]


def up(settings: Settings, timeout: float = 90.0) -> StackUp:
    """Start every service that is not running (each within `timeout` seconds), then create the Kafka topics.
    Running it again changes nothing."""
    stack = services(settings)
    for service in stack:
        service.start(timeout)
    topics = ensure_topics(settings)
    return StackUp(services=[service.status() for service in stack], topics=topics)


def down(settings: Settings, timeout: float = 60.0) -> list[tuple[str, bool]]:
    """Stop every service, in reverse start order. Returns (service, stopped cleanly) pairs."""
    return [(service.name, service.stop(timeout)) for service in reversed(services(settings))]


def status(settings: Settings) -> list[ServiceStatus]:
    return [service.status() for service in services(settings)]
