"""A single-node Apache Kafka 4 broker (KRaft, broker and controller in one JVM) run by the project.

The broker's jars come from Maven Central (`make kafka-jars`, jvm/kafka/pom.xml) into .kafka/libs; its home
folder is `<stack_dir>/kafka`:

    data/               log.dirs: the topic partitions and the KRaft metadata log (formatted on first start)
    logs/server.log     the broker's log (conf/kafka/log4j2.properties)
    logs/kafka.out      the JVM's stdout and stderr
    server.properties   written on every start from the settings (mode 0600: it holds admin's password)
    tls/                its certificate authority and certificate (ingestion/stack/kafka_tls.py)
    broker.pid          the pid of the running broker

It listens on the host:port of `settings.kafka_bootstrap_servers` and runs its controller on port + 1, both
on 127.0.0.1 only. Clients connect with TLS and log in with SCRAM-SHA-512; each user may do only its job
(ingestion/stack/kafka_users.py), and anything without an ACL is refused. The controller listener takes only the
broker's own certificate (mutual TLS). start() writes the CA certificate and the users' passwords to
`settings.resolved_kafka_secrets_dir`, where the clients read them (ingestion/kafka_access.py).
"""

from __future__ import annotations

import base64
import subprocess
import time
import uuid
from collections.abc import Callable, Sequence
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

from ingestion.kafka_access import SASL_MECHANISM, KafkaCredentialsError, KafkaUser, ca_file, client_config, scram_jaas
from ingestion.secret_files import write_private
from ingestion.settings import PROJECT_DIR, Settings
from ingestion.stack.kafka_tls import BROKER_PRINCIPAL, BrokerTls, ensure_broker_tls
from ingestion.stack.kafka_users import ensure_users_and_acls, user_password
from ingestion.stack.process import (
    ManagedProcess,
    StackError,
    ensure_ports_free,
    java_binary,
    port_in_use,
    port_open,
    wait_until,
)
from ingestion.streaming.topics import TOPICS, Topic

KAFKA_LIBS_DIR = PROJECT_DIR / ".kafka" / "libs"
LOG4J_CONFIG = PROJECT_DIR / "conf" / "kafka" / "log4j2.properties"
LOCAL_HOSTS = ("127.0.0.1", "localhost")
NODE_ID = 1
# Written when the storage is formatted with the admin user: a storage formatted before the broker required SCRAM
# has no user to log in as.
SCRAM_FORMAT_MARKER = "scram-admin.formatted"


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
        self.tls_dir = self.home / "tls"
        self.process = ManagedProcess(
            "the Kafka broker",
            pid_file=self.home / "broker.pid",
            # The absolute path of the properties file tells this home's broker from any other.
            marker=f"kafka.Kafka {self.properties_file}",
            log_files=[self.logs_dir / "kafka.out", self.logs_dir / "server.log"],
        )

    # --- lifecycle -------------------------------------------------------------------------------------------

    def start(self, timeout: float = 90.0) -> None:
        """Start the broker and wait until it serves requests. A running broker is left alone (after waiting
        for it to be healthy, in case it is still starting)."""
        if self.pid() is not None:
            self.wait_until_healthy(timeout)
            return
        ensure_ports_free(
            self.host,
            {self.port: "ADX_KAFKA_BOOTSTRAP_SERVERS", self.controller_port: "ADX_KAFKA_BOOTSTRAP_SERVERS (port + 1)"},
            f"the Kafka broker of {self.home}",
        )
        if not any(self.libs_dir.glob("kafka_*.jar")):
            raise StackError(f"the Kafka jars are not in {self.libs_dir}: run `make kafka-jars`")
        java = java_binary()

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        tls = ensure_broker_tls(self.tls_dir)
        self._publish_ca_certificate(tls)
        admin_password = user_password(self.settings, KafkaUser.ADMIN)
        write_private(self.properties_file, self._server_properties(tls, admin_password))
        if not (self.data_dir / "meta.properties").exists():
            self._format_storage(java, admin_password)
        elif not (self.home / SCRAM_FORMAT_MARKER).exists():
            raise StackError(
                f"the Kafka storage in {self.data_dir} was formatted before the broker required logins, so it has "
                f"no admin user. It holds only records in transit: once the landers have read them, stop the "
                f"broker, delete {self.data_dir} and start again."
            )

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
            str(self.properties_file),
        ]
        self.process.spawn(command, cwd=self.home)
        try:
            self.wait_until_healthy(timeout)
            ensure_users_and_acls(self.settings, timeout)
        except StackError:
            self.stop(timeout=10)
            raise

    def stop(self, timeout: float = 60.0) -> bool:
        """SIGTERM, which makes the broker shut down in a controlled way (flushes logs, writes a clean-shutdown
        marker, so the next start skips log recovery); SIGKILL only if it has not exited after `timeout`.
        Returns False if it had to be killed. Stopping a stopped broker does nothing."""
        return self.process.stop(timeout)

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
        return self.process.pid()

    def wait_until_healthy(self, timeout: float = 90.0) -> None:
        """Wait until the broker answers a metadata request with itself in it. Raises StackError, with the end of
        the broker's log, if the process exits or `timeout` passes first."""

        def not_ready() -> str | None:
            if not port_open(self.host, self.port):
                return "its port is not open yet"
            try:
                self._metadata(timeout=5.0)
            except StackError as error:
                return str(error)
            return None

        wait_until(not_ready, timeout=timeout, process=self.process, what="ready")

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the broker's log and of the JVM's output, for error messages."""
        return self.process.log_tail(lines)

    # --- internals -------------------------------------------------------------------------------------------

    def _publish_ca_certificate(self, tls: BrokerTls) -> None:
        """Copy the CA certificate to where clients look for it (public: no 0600 needed)."""
        published = ca_file(self.settings)
        certificate = tls.ca_certificate.read_bytes()
        if not published.is_file() or published.read_bytes() != certificate:
            published.parent.mkdir(parents=True, exist_ok=True)
            published.write_bytes(certificate)

    def _server_properties(self, tls: BrokerTls, admin_password: str) -> str:
        listeners = f"CLIENT://{self.host}:{self.port},CONTROLLER://{self.host}:{self.controller_port}"
        scram = SASL_MECHANISM.lower()
        properties = {
            "process.roles": "broker,controller",
            "node.id": NODE_ID,
            # A static quorum of one voter (rather than `format --standalone`, a dynamic quorum): the simplest
            # KRaft setup, and the port can change between starts.
            "controller.quorum.voters": f"{NODE_ID}@{self.host}:{self.controller_port}",
            "listeners": listeners,
            "advertised.listeners": f"CLIENT://{self.host}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "CLIENT",
            # A PLAINTEXT controller listener would need User:ANONYMOUS as a super user, and then anyone on this
            # machine could add ACLs through it (kafka-acls --bootstrap-controller). With mutual TLS only the
            # holder of the broker's key gets in.
            "listener.security.protocol.map": "CONTROLLER:SSL,CLIENT:SASL_SSL",
            "listener.name.controller.ssl.client.auth": "required",
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": tls.keystore,
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": tls.ca_certificate,
            "sasl.enabled.mechanisms": SASL_MECHANISM,
            "sasl.mechanism.inter.broker.protocol": SASL_MECHANISM,
            f"listener.name.client.{scram}.sasl.jaas.config": scram_jaas(KafkaUser.ADMIN, admin_password),
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": f"User:{KafkaUser.ADMIN.value};{BROKER_PRINCIPAL}",
            "allow.everyone.if.no.acl.found": "false",
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

    def _format_storage(self, java: str, admin_password: str) -> None:
        """Format data/ for a new cluster with the admin user (first start only: formatting writes meta.properties).
        The password is on the command line for the second the tool runs: StorageTool takes it no other way."""
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
            "--add-scram",
            f"{SASL_MECHANISM}=[name={KafkaUser.ADMIN.value},password={admin_password}]",
        ]
        result = subprocess.run(command, cwd=self.home, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            output = f"{result.stdout}{result.stderr}".replace(admin_password, "<admin password>")
            raise StackError(f"formatting {self.data_dir} failed:\n{output}")
        (self.home / SCRAM_FORMAT_MARKER).touch()

    def _metadata(self, timeout: float) -> ClusterMetadata:
        errors: list[KafkaError] = []
        try:
            metadata = _admin(self.settings, errors.append).list_topics(timeout=timeout)
        except KafkaCredentialsError as error:
            raise StackError(str(error)) from error
        except KafkaException as error:
            # A refused login shows only in the error callback; the request itself just times out.
            reason = errors[-1].str() if errors else error.args[0]
            raise StackError(f"no answer from {self.bootstrap_servers}: {reason}") from error
        if NODE_ID not in metadata.brokers:
            raise StackError(f"{self.bootstrap_servers} answers, but broker {NODE_ID} is not registered yet")
        return metadata


def ensure_topics(settings: Settings, topics: Sequence[Topic] = TOPICS, timeout: float = 30.0) -> list[TopicState]:
    """Create the missing topics with their partitions and `retention.ms`; bring `retention.ms` of existing ones
    to the configured value. A topic with another partition count is an error: partitions cannot be removed, and
    adding some would move keys to other partitions, so that needs a person."""
    host, port = parse_bootstrap(settings.kafka_bootstrap_servers)
    admin = _admin(settings)
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


def _admin(settings: Settings, on_error: Callable[[KafkaError], None] | None = None) -> AdminClient:
    # log_level 0: connection errors are reported by the callers, not printed by librdkafka on stderr.
    config = {**client_config(settings, KafkaUser.ADMIN), "log_level": 0}
    if on_error is not None:
        config["error_cb"] = on_error
    return AdminClient(config)


def _random_cluster_id() -> str:
    """What `kafka-storage.sh random-uuid` prints (Uuid.randomUuid: a random UUID, base64url without padding,
    never starting with '-'), without starting a JVM for it."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id
