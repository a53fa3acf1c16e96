"""Cost of the stack broker's TLS and SCRAM logins (ingestion/stack/kafka.py): the same records produced and consumed
through the secured broker and through a plaintext broker, one beside the other.

`python -m bench.kafka_security [--records N] [--rounds R]` (or `python -m bench.run --suite kafka-security`):
- the secured broker is the stack's own (`KafkaBroker`); the plaintext one is the same Kafka jars, heap and topic
  (`adx.impressions.v1`, 4 partitions) with one PLAINTEXT listener and no authorizer, configured here and only here;
- each round produces N impression log lines (~320 bytes, the shipper's producer settings) to each broker, then
  reads them all back from each with one consumer (assigned partitions, read_committed as the lander reads), the
  two brokers in alternating order; the shipper and the lander users log in on the secured one;
- per broker: wall seconds and events/s, the client's CPU seconds and the broker's CPU seconds.
Writes bench/results/<date>-kafka-security.json and .md. Never part of `make test`.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import tempfile
import time
from datetime import date
from pathlib import Path

from bench.report import write_results
from bench.streaming import free_port, proc_cpu_seconds
from ingestion.kafka_access import KafkaUser, client_config
from ingestion.settings import Settings
from ingestion.stack.kafka import KAFKA_LIBS_DIR, LOG4J_CONFIG, KafkaBroker, ensure_topics
from ingestion.stack.process import java_binary
from ingestion.streaming.shipper import PRODUCER_CONFIG
from ingestion.streaming.topics import IMPRESSIONS_TOPIC

HEAP = "1g"
MODES = ("plaintext", "secured")


class PlaintextBroker:
    """A broker without TLS, logins or ACLs: the comparison only, never the stack."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        data = self.home / "data"
        data.mkdir(parents=True)
        properties = self.home / "server.properties"
        properties.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@127.0.0.1:{self.port + 1}",
                    f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.port + 1}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                    "controller.listener.names=CONTROLLER",
                    "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                    f"log.dirs={data}",
                    "offsets.topic.replication.factor=1",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                ]
            )
            + "\n"
        )
        java = java_binary()
        common = [f"-Dlog4j2.configurationFile={LOG4J_CONFIG}", f"-Dkafka.logs.dir={self.home}"]
        classpath = ["-cp", f"{KAFKA_LIBS_DIR}/*"]
        format_command = [java, *common, *classpath, "kafka.tools.StorageTool", "format", "--cluster-id"]
        subprocess.run([*format_command, "bQ5v0hNDRMGBmNp8Dm2dJg", "--config", str(properties)], check=True)
        command = [java, f"-Xmx{HEAP}", f"-Xms{HEAP}", "-XX:+UseG1GC", *common, *classpath, "kafka.Kafka"]
        log = (self.home / "kafka.out").open("w")
        self.process = subprocess.Popen([*command, str(properties)], stdout=log, stderr=subprocess.STDOUT)

        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})

        deadline = time.monotonic() + 90
        while True:
            try:
                if 1 in admin.list_topics(timeout=2).brokers:
                    break
            except Exception:  # noqa: BLE001 - any failure means "not yet"
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"the plaintext broker did not start; see {self.home / 'kafka.out'}")
            time.sleep(0.5)
        topic = NewTopic(IMPRESSIONS_TOPIC.name, num_partitions=IMPRESSIONS_TOPIC.partitions, replication_factor=1)
        for future in admin.create_topics([topic]).values():
            future.result()

    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def stop(self) -> None:
        if self.process:
            self.process.terminate()
            self.process.wait(60)


def lines(records: int) -> list[bytes]:
    """Impression log lines of about the generator's size (~320 bytes)."""
    template = (
        '{{"event_id":"ev-{n:012d}","event_time":"2026-11-01T10:{m:02d}:00.000Z","user_id":"u_{u:08d}",'
        '"campaign_id":"cmp_{c:03d}","creative_id":"cr_{c:03d}_{n:04d}","site":"news.example.com",'
        '"device_type":"mobile","ip":"203.0.113.{i}","user_agent":"Mozilla/5.0 (Linux; Android 14) Chrome/120",'
        '"cost_micros":"1500","currency":"USD"}}'
    )
    return [template.format(n=n, m=n % 60, u=n % 100_000, c=n % 50, i=n % 250).encode() for n in range(records)]


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def produce(config: dict, values: list[bytes], broker_pid: int) -> dict:
    from confluent_kafka import Producer

    settings = {k: v for k, v in PRODUCER_CONFIG.items() if k != "delivery.report.only.error"}
    producer = Producer({**settings, **config})
    failed: list = []
    broker_cpu, cpu, started = proc_cpu_seconds(broker_pid), cpu_seconds(), time.perf_counter()
    for value in values:
        while True:
            try:
                producer.produce(
                    IMPRESSIONS_TOPIC.name, value, value[10:26], on_delivery=lambda e, _: e and failed.append(e)
                )
                break
            except BufferError:
                producer.poll(0.05)
    remaining = producer.flush(120)
    wall = time.perf_counter() - started
    if remaining or failed:
        raise RuntimeError(f"{remaining} records not delivered, {len(failed)} failed: {failed[:3]}")
    return _figures(len(values), wall, cpu_seconds() - cpu, proc_cpu_seconds(broker_pid) - broker_cpu)


def consume(config: dict, records: int, broker_pid: int) -> dict:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {**config, "group.id": "adx-bench-unused", "enable.auto.commit": False, "isolation.level": "read_committed"}
    )
    partitions = [TopicPartition(IMPRESSIONS_TOPIC.name, p, 0) for p in range(IMPRESSIONS_TOPIC.partitions)]
    consumer.assign(partitions)
    read = 0
    broker_cpu, cpu, started = proc_cpu_seconds(broker_pid), cpu_seconds(), time.perf_counter()
    deadline = time.monotonic() + 300
    while read < records and time.monotonic() < deadline:
        for message in consumer.consume(10_000, timeout=1):
            if message.error() is None:
                read += 1
    wall = time.perf_counter() - started
    consumer.close()
    if read < records:
        raise RuntimeError(f"read {read} of {records} records")
    return _figures(read, wall, cpu_seconds() - cpu, proc_cpu_seconds(broker_pid) - broker_cpu)


def _figures(records: int, wall: float, client_cpu: float, broker_cpu: float) -> dict:
    return {
        "records": records,
        "wall_s": round(wall, 3),
        "events_per_s": round(records / wall),
        "client_cpu_s": round(client_cpu, 2),
        "broker_cpu_s": round(broker_cpu, 2),
    }


def run(records: int, rounds: int) -> dict:
    values = lines(records)
    with tempfile.TemporaryDirectory(prefix="adx-bench-kafka-security-") as work:
        secured_settings = Settings(data_dir=Path(work) / "secured", kafka_bootstrap_servers=f"127.0.0.1:{free_port()}")
        secured = KafkaBroker(secured_settings, heap=HEAP)
        plaintext = PlaintextBroker(Path(work) / "plaintext")
        try:
            secured.start()
            ensure_topics(secured_settings, [IMPRESSIONS_TOPIC])
            plaintext.start()
            producers = {
                "plaintext": {"bootstrap.servers": plaintext.bootstrap},
                "secured": client_config(secured_settings, KafkaUser.SHIPPER),
            }
            consumers = {
                "plaintext": {"bootstrap.servers": plaintext.bootstrap},
                "secured": client_config(secured_settings, KafkaUser.LANDER),
            }
            pids = {"plaintext": plaintext.pid(), "secured": secured.pid()}
            measured: dict[str, list[dict]] = {mode: [] for mode in MODES}
            for round_number in range(rounds):
                order = MODES if round_number % 2 == 0 else tuple(reversed(MODES))
                for mode in order:
                    produced = produce(producers[mode], values, pids[mode])
                    measured[mode].append({"produce": produced})
                for mode in order:
                    # Each round's consumer reads every round's records so far: the topic keeps them.
                    measured[mode][-1]["consume"] = consume(consumers[mode], records * (round_number + 1), pids[mode])
        finally:
            plaintext.stop()
            secured.stop()

    results = {"records": records, "rounds": rounds, "runs": measured}
    write_results(f"{date.today().isoformat()}-kafka-security", results, summary_markdown(results))
    return results


def summary_markdown(results: dict) -> str:
    def median(mode: str, step: str, figure: str) -> float:
        runs = results["runs"][mode]
        return statistics.median(run[step][figure] / run[step]["records"] for run in runs)

    lines_ = [
        f"# Kafka TLS and SCRAM logins against plaintext, {date.today().isoformat()}",
        "",
        f"{results['records']:,} impression lines per round, {results['rounds']} round(s), brokers alternating; "
        "one broker JVM each (heap 1g) on the same machine. Figures are medians per record.",
        "",
        "| step | figure | plaintext | secured | secured / plaintext |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for step in ("produce", "consume"):
        for figure, label, scale in (
            ("wall_s", "wall µs/event", 1e6),
            ("client_cpu_s", "client CPU µs/event", 1e6),
            ("broker_cpu_s", "broker CPU µs/event", 1e6),
        ):
            plain, secured = median("plaintext", step, figure) * scale, median("secured", step, figure) * scale
            ratio = f"{secured / plain:.2f}" if plain else "n/a"
            lines_.append(f"| {step} | {label} | {plain:.2f} | {secured:.2f} | {ratio} |")
    return "\n".join(lines_) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=500_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    run(args.records, args.rounds)


if __name__ == "__main__":
    main()
