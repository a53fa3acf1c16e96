"""A single-node Apache Kafka 4 broker (KRaft, broker and controller in one JVM) run by the project.

The broker's jars come from Maven Central (`make kafka-jars`, jvm/kafka/pom.xml) into .kafka/libs; its home
folder is `<stack_dir>/kafka`:

    data/               log.dirs: the topic partitions and the KRaft metadata log (formatted on first start)
    logs/server.log     the broker's log (conf/kafka/log4j2.properties)
    logs/kafka.out      the JVM's stdout and stderr
    server.properties   written on every start from the settings
    broker.pid          the pid of the running broker

It listens on the host:port of `settings.kafka_bootstrap_servers` and runs its controller on port + 1, both
on 127.0.0.1 only.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ClusterMetadata,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)

from ingestion.settings import PROJECT_DIR, Settings
from ingestion.streaming.topics import TOPICS, Topic

KAFKA_LIBS_DIR = PROJECT_DIR / ".kafka" / "libs"
LOG4J_CONFIG = PROJECT_DIR / "conf" / "kafka" / "log4j2.properties"
LOCAL_HOSTS = ("127.0.0.1", "localhost")
NODE_ID = 1


class StackError(RuntimeError):
    """A local service cannot be started, stopped or provisioned; the message says why and what to do."""


class PortInUseError(StackError):
    """The broker's port is held by a process that is not this broker."""


@dataclass(frozen=True)
class KafkaStatus:
    running: bool
    pid: int | None
    bootstrap: str
    healthy: bool  # serves metadata requests
    topics: tuple[str, ...] = ()  # excluding internal topics (__consumer_offsets, ...)
    error: str | None = None  # why it is not running or not healthy, when known

    name = "kafka"  # not a field: the service name shown by `adx stack status`

    @property
    def address(self) -> str:
        return self.bootstrap

    @property
    def detail(self) -> str:
        if self.error:
            return self.error
        return f"topics: {', '.join(self.topics)}" if self.topics else "no topics"


@dataclass(frozen=True)
class TopicState:
    name: str
    partitions: int
    retention_ms: int
    action: str  # "created", "exists" or "retention updated"


def parse_bootstrap(bootstrap_servers: str) -> tuple[str, int]:
    """The host and port of the local broker; the local stack runs one broker, on the loopback interface."""
    servers = [s.strip() for s in bootstrap_servers.split(",") if s.strip()]
    if len(servers) != 1:
        raise StackError(f"the local stack runs one broker, but ADX_KAFKA_BOOTSTRAP_SERVERS is {bootstrap_servers!r}")
    host, _, port = servers[0].rpartition(":")
    if host not in LOCAL_HOSTS or not port.isdigit() or not 0 < int(port) < 65535:
        raise StackError(
            f"the local broker listens on 127.0.0.1:<port>, but ADX_KAFKA_BOOTSTRAP_SERVERS is {bootstrap_servers!r}"
        )
    return "127.0.0.1", int(port)


def java_binary() -> str:
    """`$JAVA_HOME/bin/java` if JAVA_HOME is set, else `java` from the PATH."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        java = Path(java_home) / "bin" / "java"
        if not java.is_file():
            raise StackError(f"JAVA_HOME is {java_home}, but {java} does not exist")
        return str(java)
    java = shutil.which("java")
    if java is None:
        raise StackError("no `java` on the PATH (and JAVA_HOME is not set): the Kafka broker needs Java 17+")
    return java


class KafkaBroker:
    """Start, stop and inspect the local broker. Every method can be called from any process: the state is the
    pid file and the process it names, not this object."""

    name = "kafka"

    def __init__(self, settings: Settings, *, libs_dir: Path = KAFKA_LIBS_DIR, heap: str = "512m") -> None:
        self.settings = settings
        self.host, self.port = parse_bootstrap(settings.kafka_bootstrap_servers)
        self.controller_port = self.port + 1
        self.bootstrap_servers = f"{self.host}:{self.port}"
        self.libs_dir = libs_dir
        self.heap = heap
        self.home = settings.stack_dir / "kafka"
        self.data_dir = self.home / "data"
        self.logs_dir = self.home / "logs"
        self.properties_file = self.home / "server.properties"
        self.pid_file = self.home / "broker.pid"
        self._process: subprocess.Popen | None = None  # set when this object started the broker

    # --- lifecycle -------------------------------------------------------------------------------------------

    def start(self, timeout: float = 90.0) -> None:
        """Start the broker and wait until it serves requests. A running broker is left alone (after waiting
        for it to be healthy, in case it is still starting)."""
        if self.pid() is not None:
            self.wait_until_healthy(timeout)
            return
        self.pid_file.unlink(missing_ok=True)  # stale: its process is gone
        for port in (self.port, self.controller_port):
            if port_in_use(self.host, port):
                raise PortInUseError(
                    f"{self.host}:{port} is in use by another process, not by the Kafka broker of {self.home}; "
                    "stop that process or set ADX_KAFKA_BOOTSTRAP_SERVERS to another port "
                    "(the controller uses port + 1)"
                )
        if not any(self.libs_dir.glob("kafka_*.jar")):
            raise StackError(f"the Kafka jars are not in {self.libs_dir}: run `make kafka-jars`")
        java = java_binary()

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.properties_file.write_text(self._server_properties())
        if not (self.data_dir / "meta.properties").exists():
            self._format_storage(java)

        command = [
            java,
            f"-Xmx{self.heap}",
            f"-Xms{self.heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            f"-Dkafka.logs.dir={self.logs_dir}",
            "-cp",
            f"{self.libs_dir}/*",
            "kafka.Kafka",
            str(self.properties_file),  # absolute: pid() recognises the broker by it
        ]
        with open(self.logs_dir / "kafka.out", "ab") as out:
            # Own session: the broker outlives `adx stack up` and a Ctrl-C in its terminal.
            self._process = subprocess.Popen(
                command,
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid_file.write_text(f"{self._process.pid}\n")
        try:
            self.wait_until_healthy(timeout)
        except StackError:
            self.stop(timeout=10)
            raise

    def stop(self, timeout: float = 60.0) -> bool:
        """SIGTERM, which makes the broker shut down in a controlled way (flushes logs, writes a clean-shutdown
        marker, so the next start skips log recovery); SIGKILL only if it has not exited after `timeout`.
        Returns False if it had to be killed. Stopping a stopped broker does nothing."""
        pid = self.pid()
        clean = True
        if pid is not None:
            _signal(pid, signal.SIGTERM)
            if not self._wait_for_exit(pid, timeout):
                clean = False
                _signal(pid, signal.SIGKILL)
                if not self._wait_for_exit(pid, 10):
                    raise StackError(f"the Kafka broker (pid {pid}) did not exit even after SIGKILL")
        self.pid_file.unlink(missing_ok=True)
        self._process = None
        return clean

    def status(self) -> KafkaStatus:
        pid = self.pid()
        if pid is None:
            error = "stopped"
            if port_in_use(self.host, self.port):
                error = f"stopped, and port {self.port} is in use by another process"
            return KafkaStatus(running=False, pid=None, bootstrap=self.bootstrap_servers, healthy=False, error=error)
        try:
            metadata = self._metadata(timeout=5)
        except StackError as error:
            return KafkaStatus(True, pid, self.bootstrap_servers, healthy=False, error=str(error))
        topics = tuple(sorted(name for name in metadata.topics if not name.startswith("__")))
        return KafkaStatus(True, pid, self.bootstrap_servers, healthy=True, topics=topics)

    def pid(self) -> int | None:
        """The pid of this home's broker if it is running, else None."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if self._is_alive(pid) and self._is_this_broker(pid) else None

    def wait_until_healthy(self, timeout: float = 90.0) -> None:
        """Wait until the broker answers a metadata request with itself in it. Raises StackError, with the end of
        the broker's log, if the process exits or `timeout` passes first."""
        deadline = time.monotonic() + timeout
        last_error = "its port never opened"
        while True:
            pid = self.pid()
            if pid is None:
                code = self._process.poll() if self._process is not None else None
                exited = f" with exit code {code}" if code is not None else ""
                raise StackError(f"the Kafka broker exited{exited} before it was ready\n{self.log_tail()}")
            if _port_open(self.host, self.port):
                try:
                    self._metadata(timeout=min(5.0, max(deadline - time.monotonic(), 0.5)))
                    return
                except StackError as error:
                    last_error = str(error)
            if time.monotonic() > deadline:
                raise StackError(
                    f"the Kafka broker (pid {pid}) is not ready after {timeout:.0f} s: {last_error}\n{self.log_tail()}"
                )
            time.sleep(0.25)

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the broker's log and of the JVM's output, for error messages."""
        parts = []
        for path in (self.logs_dir / "server.log", self.logs_dir / "kafka.out"):
            if path.exists() and path.stat().st_size:
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- last lines of {path}:\n" + "\n".join(tail))
        return "\n".join(parts) or f"(nothing logged in {self.logs_dir})"

    # --- internals -------------------------------------------------------------------------------------------

    def _server_properties(self) -> str:
        listeners = f"PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{self.controller_port}"
        properties = {
            "process.roles": "broker,controller",
            "node.id": NODE_ID,
            # A static quorum of one voter (rather than `format --standalone`, a dynamic quorum): the simplest
            # KRaft setup, and the port can change between starts.
            "controller.quorum.voters": f"{NODE_ID}@{self.host}:{self.controller_port}",
            "listeners": listeners,
            "advertised.listeners": f"PLAINTEXT://{self.host}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": self.data_dir,
            # One broker: the internal topics cannot have more than one replica.
            "offsets.topic.replication.factor": 1,
            "transaction.state.log.replication.factor": 1,
            "transaction.state.log.min.isr": 1,
            "share.coordinator.state.topic.replication.factor": 1,
            "share.coordinator.state.topic.min.isr": 1,
            # Consumer groups start consuming at once instead of waiting 3 s for more members.
            "group.initial.rebalance.delay.ms": 0,
            # Topics are created by ensure_topics() with their partitions and retention, never by a typo.
            "auto.create.topics.enable": "false",
        }
        lines = ["# Written by ingestion/stack/kafka.py on every start; edit the settings, not this file."]
        lines += [f"{key}={value}" for key, value in properties.items()]
        return "\n".join(lines) + "\n"

    def _format_storage(self, java: str) -> None:
        """Format data/ for a new cluster (first start only: formatting writes meta.properties)."""
        command = [
            java,
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            f"-Dkafka.logs.dir={self.logs_dir}",
            "-cp",
            f"{self.libs_dir}/*",
            "kafka.tools.StorageTool",
            "format",
            "--cluster-id",
            _random_cluster_id(),
            "--config",
            str(self.properties_file),
        ]
        result = subprocess.run(command, cwd=self.home, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise StackError(f"formatting {self.data_dir} failed:\n{result.stdout}{result.stderr}")

    def _metadata(self, timeout: float) -> ClusterMetadata:
        try:
            metadata = _admin(self.bootstrap_servers).list_topics(timeout=timeout)
        except KafkaException as error:
            raise StackError(f"no answer from {self.bootstrap_servers}: {error.args[0]}") from error
        if NODE_ID not in metadata.brokers:
            raise StackError(f"{self.bootstrap_servers} answers, but broker {NODE_ID} is not registered yet")
        return metadata

    def _is_alive(self, pid: int) -> bool:
        if self._process is not None and self._process.pid == pid:
            return self._process.poll() is None
        return _process_alive(pid)

    def _is_this_broker(self, pid: int) -> bool:
        """Whether the live process `pid` is this home's broker, not another process that got a reused pid."""
        try:
            command_line = (Path("/proc") / str(pid) / "cmdline").read_bytes()
        except FileNotFoundError:
            return not Path("/proc/self").exists()  # no procfs (macOS): trust the pid file
        # Empty while the process exits (its memory is gone before it becomes a zombie): still the broker.
        return not command_line or (b"kafka.Kafka" in command_line and bytes(self.properties_file) in command_line)

    def _wait_for_exit(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self._is_alive(pid):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True


def ensure_topics(settings: Settings, topics: Sequence[Topic] = TOPICS, timeout: float = 30.0) -> list[TopicState]:
    """Create the missing topics with their partitions and `retention.ms`; bring `retention.ms` of existing ones
    to the configured value. A topic with another partition count is an error: partitions cannot be removed, and
    adding some would move keys to other partitions, so that needs a person."""
    host, port = parse_bootstrap(settings.kafka_bootstrap_servers)
    admin = _admin(f"{host}:{port}")
    try:
        existing = admin.list_topics(timeout=timeout).topics
        created = _create_topics(admin, [t for t in topics if t.name not in existing], timeout)
        metadata = _wait_for_topics(admin, [t.name for t in topics], timeout)
        retention = _retention_ms(admin, [t.name for t in topics], timeout)
    except KafkaException as error:
        raise StackError(f"cannot create the topics on {host}:{port}: {error.args[0]}") from error

    states = []
    for topic in topics:
        partitions = len(metadata[topic.name].partitions)
        if partitions != topic.partitions:
            raise StackError(
                f"topic {topic.name} has {partitions} partitions, but ingestion/streaming/topics.py says "
                f"{topic.partitions}; delete the topic (its records are lost) or change topics.py"
            )
        action = "created" if topic.name in created else "exists"
        if retention[topic.name] != topic.retention_ms:
            _set_retention_ms(admin, topic, timeout)
            action = "retention updated"
        states.append(TopicState(topic.name, topic.partitions, topic.retention_ms, action))
    return states


def _create_topics(admin: AdminClient, topics: Sequence[Topic], timeout: float) -> set[str]:
    if not topics:
        return set()
    new_topics = [
        NewTopic(
            t.name, num_partitions=t.partitions, replication_factor=1, config={"retention.ms": str(t.retention_ms)}
        )
        for t in topics
    ]
    created = set()
    for name, future in admin.create_topics(new_topics, operation_timeout=timeout, request_timeout=timeout).items():
        try:
            future.result()
            created.add(name)
        except KafkaException as error:
            if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:  # created meanwhile by someone else: fine
                raise
    return created


def _wait_for_topics(admin: AdminClient, names: Sequence[str], timeout: float) -> dict:
    """Topic metadata once the broker knows every topic: a new topic reaches the broker's metadata cache a moment
    after the controller has created it."""
    deadline = time.monotonic() + timeout
    while True:
        topics = admin.list_topics(timeout=timeout).topics
        if all(name in topics and topics[name].error is None for name in names):
            return topics
        if time.monotonic() > deadline:
            missing = [name for name in names if name not in topics or topics[name].error is not None]
            raise StackError(f"topics {missing} are not in the broker's metadata after {timeout:.0f} s")
        time.sleep(0.1)


def _retention_ms(admin: AdminClient, names: Sequence[str], timeout: float) -> dict[str, int]:
    resources = [ConfigResource(ResourceType.TOPIC, name) for name in names]
    futures = admin.describe_configs(resources, request_timeout=timeout)
    return {resource.name: int(future.result()["retention.ms"].value) for resource, future in futures.items()}


def _set_retention_ms(admin: AdminClient, topic: Topic, timeout: float) -> None:
    entry = ConfigEntry("retention.ms", str(topic.retention_ms), incremental_operation=AlterConfigOpType.SET)
    resource = ConfigResource(ResourceType.TOPIC, topic.name, incremental_configs=[entry])
    for future in admin.incremental_alter_configs([resource], request_timeout=timeout).values():
        future.result()


def _admin(bootstrap_servers: str) -> AdminClient:
    # log_level 0: connection errors are reported by the callers, not printed by librdkafka on stderr.
    return AdminClient({"bootstrap.servers": bootstrap_servers, "log_level": 0})


def _random_cluster_id() -> str:
    """What `kafka-storage.sh random-uuid` prints (Uuid.randomUuid: a random UUID, base64url without padding,
    never starting with '-'), without starting a JVM for it."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


def port_in_use(host: str, port: int) -> bool:
    """Whether binding host:port fails, the way the broker's bind would (with SO_REUSEADDR, as Java does)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def _port_open(host: str, port: int) -> bool:
    """Whether something accepts connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _process_alive(pid: int) -> bool:
    """Whether `pid` runs; a zombie (exited, not yet reaped by its parent) does not, and is reaped if it is ours."""
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        if Path("/proc/self").exists():
            return False
        try:  # no procfs (macOS)
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    if state not in ("Z", "X"):
        return True
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # someone else's zombie: gone as far as we are concerned
        return False
    # Our child: the JVM's main thread can be a zombie while its other threads still exit; until they have, the
    # process cannot be reaped and still holds its ports.
    return reaped == 0


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # exited in the meantime
        os.kill(pid, signum)
