"""Streaming throughput: events/s from producer through Kafka into raw Parquet, against the broker's own limit.

`python -m bench.streaming --size 1000000` (or `python -m bench.run --suite streaming`) runs, on a fresh temporary
folder and a fresh single-node broker on a free loopback port (stopped at the end, also on failure):

1. one generated day at --size impressions (about as many bid requests);
2. the limit, in the same run: kafka-producer-perf-test (ProducerPerformance) with our producers' settings and the
   average record size of each source, then kafka-consumer-perf-test (ConsumerPerformance) reading those records
   back, on a scratch topic with the partitions of the real one;
3. our path per source, stage by stage: the producer in this process (ship_impressions, bridge_bid_requests), then
   `adx land --source S` in a subprocess (available-now). Its wall time includes the JVM and metastore start; the
   time inside micro-batches comes from the query's checkpoint, where offsets/<n> is written when batch n starts
   and commits/<n> once it has landed;
4. our path per source, concurrently: `adx land --source S --continuous` (ADX_STREAM_TRIGGER_SECONDS=2) is started
   and ready first, then the producer runs. The end is the first commit whose offsets reach the topics' end
   offsets (read from the checkpoint: no second JVM on the lander's Derby metastore). Sustained events/s =
   N / (that commit - first record produced); the lander is then stopped with SIGINT, as Ctrl-C does;
5. variants of cheap lander knobs, end to end as in 4: shuffle partitions, maxOffsetsPerTrigger, and Spark's sort
   before the partitioned write and cache compression (--no-variants skips them).

Before each of our runs the topics are deleted and created again, and each lander gets its own data folder (Derby
metastore, checkpoints, lake), so every run starts at offset 0 on empty tables. CPU seconds come from /proc (the
lander's process tree, the broker) and time.process_time() (the producer in this process); the machine may be
shared, so the 1-minute load average is sampled too. Writes bench/results/streaming-<date>.json and .md and prints
the summary. Never part of `make test`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

from bench.report import write_results
from ingestion.kafka_access import KafkaUser, client_config, java_client_properties
from ingestion.secret_files import write_private
from ingestion.settings import PROJECT_DIR, Settings

ADX = str(Path(sys.executable).parent / "adx")
KAFKA_LIBS = PROJECT_DIR / ".kafka" / "libs"
SOURCES = ("impressions", "bid_requests")
GOAL_EVENTS_PER_S = 200_000
GOAL_SHARE_OF_LIMIT = 0.5
TRIGGER_SECONDS = 2
LANDER_TIMEOUT_S = 1200
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Lander variants, end to end as in the concurrent run: (name, extra environment, what it changes).
VARIANTS = (
    ("shuffle partitions 2", {"ADX_SPARK_SHUFFLE_PARTITIONS": "2"}, "ADX_SPARK_SHUFFLE_PARTITIONS 4 -> 2"),
    ("batches of 250k", {"ADX_STREAM_MAX_RECORDS_PER_BATCH": "250000"}, "maxOffsetsPerTrigger 2M -> 250k"),
    (
        "no write sort, plain cache",
        {
            "PYSPARK_SUBMIT_ARGS": "--conf spark.sql.optimizer.plannedWrite.enabled=false "
            "--conf spark.sql.maxConcurrentOutputFileWriters=8 "
            "--conf spark.sql.inMemoryColumnarStorage.compressed=false pyspark-shell"
        },
        "Spark: no sort before the partitioned write, uncompressed cache",
    ),
)


class BenchError(RuntimeError):
    pass


# --- machine: load average and CPU seconds ---------------------------------------------------------------------


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of one process, in seconds (0 if it is gone)."""
    try:
        fields = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # fields 14 and 15 of proc(5), after pid and comm


def process_tree(root: int) -> list[int]:
    """root and its descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


class Sampler(threading.Thread):
    """Every second: the 1-minute load average, and the CPU seconds of each process in the watched tree (the
    largest value seen per pid, so that a process that exits keeps its last sample)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.loads: list[tuple[float, float]] = []  # (time, 1-minute load average)
        self.tree_cpu: dict[int, float] = {}
        self._baseline = 0.0
        self._root: int | None = None
        self._lock = threading.Lock()
        self._stopped = threading.Event()

    def run(self) -> None:
        while not self._stopped.is_set():
            self.sample()
            self._stopped.wait(1.0)

    def sample(self) -> None:
        self.loads.append((time.time(), os.getloadavg()[0]))
        with self._lock:
            if self._root is not None:
                for pid in process_tree(self._root):
                    self.tree_cpu[pid] = max(self.tree_cpu.get(pid, 0.0), proc_cpu_seconds(pid))

    def watch(self, pid: int) -> None:
        """Count the CPU seconds the tree of `pid` uses from now on."""
        with self._lock:
            self._root, self.tree_cpu = pid, {}
        self.sample()
        self._baseline = sum(self.tree_cpu.values())

    def unwatch(self) -> float:
        """The CPU seconds of the watched tree since watch() (up to its last sample)."""
        self.sample()
        with self._lock:
            self._root = None
            return sum(self.tree_cpu.values()) - self._baseline

    def load(self, start: float, end: float) -> float:
        """Mean 1-minute load average sampled between start and end."""
        values = [load for t, load in self.loads if start <= t <= end] or [os.getloadavg()[0]]
        return round(sum(values) / len(values), 2)

    def stop(self) -> None:
        self._stopped.set()


# --- Kafka: ports, topics, offsets, the broker's perf tools ------------------------------------------------------


def free_port() -> int:
    """A free loopback port whose successor (the controller's port) is free too."""
    from ingestion.stack.process import port_in_use

    for _ in range(100):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port < 65534 and not port_in_use("127.0.0.1", port + 1):
            return port
    raise BenchError("no free pair of loopback ports")


def admin(settings: Settings):
    from confluent_kafka.admin import AdminClient

    return AdminClient({**client_config(settings, KafkaUser.ADMIN), "log_level": 0})


def delete_topics(settings: Settings, names: list[str]) -> None:
    client = admin(settings)
    existing = [name for name in names if name in client.list_topics(timeout=30).topics]
    if existing:
        for future in client.delete_topics(existing, operation_timeout=30).values():
            future.result()
    deadline = time.time() + 60
    while any(name in client.list_topics(timeout=30).topics for name in names):
        if time.time() > deadline:
            raise BenchError(f"topics {names} still exist 60 s after their deletion")
        time.sleep(0.2)


def create_topics(settings: Settings, topics) -> None:
    """ensure_topics, retried while the broker still finishes deleting topics of the same name."""
    from ingestion.stack.kafka import ensure_topics
    from ingestion.stack.process import StackError

    deadline = time.time() + 60
    while True:
        try:
            ensure_topics(settings, topics)
            return
        except StackError:
            if time.time() > deadline:
                raise
            time.sleep(0.5)


def reset_topics(settings: Settings) -> None:
    """Our topics, empty: deleted and created again."""
    from ingestion.streaming.topics import TOPICS

    delete_topics(settings, [t.name for t in TOPICS])
    create_topics(settings, TOPICS)


def end_offsets(settings: Settings, topic_names: list[str]) -> dict[str, dict[str, int]]:
    """{topic: {partition: high watermark}}, partitions as strings like the lander's checkpoint."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({**client_config(settings, KafkaUser.ADMIN), "group.id": "adx-bench-offsets"})
    try:
        metadata = consumer.list_topics(timeout=30).topics
        return {
            name: {
                str(p): consumer.get_watermark_offsets(TopicPartition(name, p), timeout=30)[1]
                for p in sorted(metadata[name].partitions)
            }
            for name in topic_names
        }
    finally:
        consumer.close()


def write_client_properties(settings: Settings, path: Path, extra: dict[str, str]) -> Path:
    """A Java client properties file (mode 0600: it holds admin's password) for Kafka's perf tools."""
    properties = {**java_client_properties(settings, KafkaUser.ADMIN), **extra}
    write_private(path, "".join(f"{key}={value}\n" for key, value in properties.items()))
    return path


def java_producer_props(config: dict) -> list[str]:
    """Our librdkafka producer's throughput settings, in the Java producer's names."""
    props = {
        "acks": config["acks"],
        "enable.idempotence": str(config["enable.idempotence"]).lower(),
        "linger.ms": config["linger.ms"],
        "batch.size": config["batch.size"],
        "compression.type": config["compression.type"],
        "buffer.memory": config["queue.buffering.max.kbytes"] * 1024,  # librdkafka's local queue
    }
    return [f"{key}={value}" for key, value in props.items()]


def kafka_tool(main_class: str, *arguments: str) -> str:
    """Run one of the broker's Java tools (kafka-tools 4.1.1 in .kafka/libs); its stdout."""
    from ingestion.stack.process import java_binary

    command = [java_binary(), "-cp", f"{KAFKA_LIBS}/*", main_class, *arguments]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    if result.returncode != 0:
        raise BenchError(f"{main_class} failed ({result.returncode}):\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return result.stdout


def producer_perf_test(
    settings: Settings, topic: str, records: int, payload: list[str], producer_config: dict, config_file: Path
) -> dict:
    """ProducerPerformance, unthrottled; payload is ["--record-size", N] or ["--payload-file", path]."""
    started = time.time()
    output = kafka_tool(
        "org.apache.kafka.tools.ProducerPerformance",
        "--topic",
        topic,
        "--num-records",
        str(records),
        *payload,
        "--throughput",
        "-1",
        "--producer.config",
        str(config_file),
        "--producer-props",
        *java_producer_props(producer_config),
    )
    # e.g. "1000000 records sent, 254452.9 records/sec (72.34 MB/sec), 312.3 ms avg latency, 601.0 ms max latency, ..."
    summaries = re.findall(
        r"^(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg", output, re.M
    )
    if not summaries:
        raise BenchError(f"no summary in the ProducerPerformance output:\n{output[-2000:]}")
    sent, per_second, mb_per_second, latency = summaries[-1]
    if int(sent) != records:
        raise BenchError(f"ProducerPerformance sent {sent} of {records} records")
    return {
        "records": records,
        "records_per_s": float(per_second),
        "mb_per_s": float(mb_per_second),
        "avg_latency_ms": float(latency),
        "wall_s": round(time.time() - started, 2),  # includes the JVM start
        "summary": output.strip().splitlines()[-1],
    }


def consumer_perf_test(settings: Settings, topic: str, records: int, config_file: Path) -> dict:
    """ConsumerPerformance from the earliest offset until `records` are read, read_committed like the lander."""
    started = time.time()
    output = kafka_tool(
        "org.apache.kafka.tools.ConsumerPerformance",
        "--bootstrap-server",
        settings.kafka_bootstrap_servers,
        "--topic",
        topic,
        "--messages",
        str(records),
        "--consumer.config",
        str(config_file),
        "--timeout",
        "60000",
    )
    # A header "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms,
    # fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec" and one line of values.
    lines = [line for line in output.splitlines() if line.strip()]
    header_index = next((i for i, line in enumerate(lines) if "nMsg.sec" in line), None)
    if header_index is None or header_index + 1 >= len(lines):
        raise BenchError(f"no statistics in the ConsumerPerformance output:\n{output[-2000:]}")
    stats = dict(
        zip(
            [c.strip() for c in lines[header_index].split(",")],
            [v.strip() for v in lines[header_index + 1].split(",")],
            strict=True,
        )
    )
    if int(stats["data.consumed.in.nMsg"]) < records:
        raise BenchError(f"ConsumerPerformance read {stats['data.consumed.in.nMsg']} of {records} records")
    return {
        "records": int(stats["data.consumed.in.nMsg"]),
        "records_per_s": float(stats["nMsg.sec"]),  # over the whole run, group join included
        "fetch_records_per_s": float(stats["fetch.nMsg.sec"]),  # once the group is joined
        "rebalance_ms": float(stats["rebalance.time.ms"]),
        "mb_per_s": float(stats["MB.sec"]),
        "wall_s": round(time.time() - started, 2),
    }


# --- the generated files --------------------------------------------------------------------------------------


def impression_files(source_dir: Path) -> list[Path]:
    from ingestion.sources import IMPRESSIONS

    return sorted((source_dir / "landing" / IMPRESSIONS.landing_subdir).glob(f"dt=*/{IMPRESSIONS.file_glob}"))


def bid_request_files(source_dir: Path) -> list[Path]:
    from ingestion.sources import BID_REQUESTS

    return sorted((source_dir / "landing" / BID_REQUESTS.landing_subdir).glob(f"dt=*/{BID_REQUESTS.file_glob}"))


def record_sizes(source_dir: Path) -> dict:
    """Average record value size per source, as the producers send it: an impression line without its line break,
    a bid request's schemaless Avro encoding (the decompressed container blocks hold exactly those bytes)."""
    import fastavro

    lines = line_bytes = 0
    for path in impression_files(source_dir):
        data = path.read_bytes()
        count = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
        lines += count
        line_bytes += len(data) - data.count(b"\n") - data.count(b"\r\n")
    avro_records = avro_bytes = 0
    for path in bid_request_files(source_dir):
        with path.open("rb") as handle:
            for block in fastavro.block_reader(handle):
                avro_records += block.num_records
                avro_bytes += len(block.bytes_.getvalue())
    return {
        "impressions": {"records": lines, "avg_bytes": round(line_bytes / lines)},
        "bid_requests": {"records": avro_records, "avg_bytes": round(avro_bytes / avro_records)},
    }


# --- the benchmark ---------------------------------------------------------------------------------------------


def producer_config(source: str) -> dict:
    from ingestion.streaming import rtb_bridge, shipper

    return shipper.PRODUCER_CONFIG if source == "impressions" else rtb_bridge.PRODUCER_CONFIG


def topics_of(source: str) -> list[str]:
    from ingestion.streaming.lander import STREAMED_SOURCES

    streamed = STREAMED_SOURCES[source]
    return [streamed.topic.name, streamed.dead_letter_topic.name]


def checkpoint_batches(settings: Settings, source: str) -> list[dict]:
    """The lander's committed micro-batches from its checkpoint: offsets/<n> is written when batch n starts (its last
    line: the end offsets per topic and partition), commits/<n> when it has landed."""
    from ingestion.streaming.runner import checkpoint_dir

    checkpoint = checkpoint_dir(settings, topics_query_name(source))
    commits = checkpoint / "commits"
    batches = []
    previous = 0
    for number in sorted(int(p.name) for p in commits.iterdir() if p.name.isdigit()) if commits.is_dir() else []:
        offsets_file = checkpoint / "offsets" / str(number)
        offsets = json.loads(offsets_file.read_text().splitlines()[-1])
        total = sum(sum(partitions.values()) for partitions in offsets.values())  # topics start at offset 0
        batches.append(
            {
                "batch": number,
                "records": total - previous,
                "started": offsets_file.stat().st_mtime,
                "committed": (commits / str(number)).stat().st_mtime,
                "end_offsets": offsets,
            }
        )
        previous = total
    return batches


def topics_query_name(source: str) -> str:
    from ingestion.streaming.lander import STREAMED_SOURCES

    return STREAMED_SOURCES[source].query_name


def spark_steps(events_dir: Path, query_name: str) -> dict:
    """From a lander's Spark event log: when the application started, and the seconds of the SQL executions inside
    its micro-batches (those run under the batch's root execution, described by the query name), summed by what
    they do: the first aggregate over the cached rows reads Kafka and fills the cache (records_read), the second
    collects the offsets; then the writes and counts of the tables (ingestion.streaming.lander._land_batch)."""
    app_started, starts, ends = None, {}, {}
    for path in sorted(events_dir.glob("**/events_*")):
        for line in path.read_text().splitlines():
            event = json.loads(line)
            kind = event["Event"]
            if kind == "SparkListenerApplicationStart":
                app_started = event["Timestamp"] / 1000
            elif kind.endswith("SQLExecutionStart"):
                starts[event["executionId"]] = event
            elif kind.endswith("SQLExecutionEnd"):
                ends[event["executionId"]] = event["time"]
    if app_started is None:
        raise BenchError(f"no Spark event log in {events_dir}")
    steps: dict[str, float] = {}
    cached_seen: dict[str, int] = {}
    for number, event in sorted(starts.items()):
        description = event.get("description", "")
        if event.get("rootExecutionId", number) == number or not description.startswith(query_name):
            continue
        plan = event.get("physicalPlanDescription", "")
        written = re.search(r"InsertIntoHadoopFsRelationCommand\n.*?`spark_catalog`\.`(\w+)`\.`(\w+)`", plan, re.S)
        scanned = re.search(r"Scan parquet spark_catalog\.(\w+\.\w+)", plan)
        if written:
            label = f"write {written[1]}.{written[2]}"
        elif scanned:
            label = f"count {scanned[1]}"
        elif "InMemoryRelation" in plan:
            batch = description.rsplit("batch = ", 1)[-1]
            cached_seen[batch] = cached_seen.get(batch, 0) + 1
            label = "read Kafka, headers, cache, count" if cached_seen[batch] == 1 else "offsets per partition"
        else:
            label = "other SQL"
        seconds = (ends.get(number, event["time"]) - event["time"]) / 1000
        steps[label] = round(steps.get(label, 0.0) + seconds, 1)
    return {"app_started": app_started, "steps": steps}


def reached(batch_offsets: dict, target: dict) -> bool:
    return all(
        batch_offsets.get(topic, {}).get(partition, -1) >= high
        for topic, partitions in target.items()
        for partition, high in partitions.items()
    )


def landed_rows(output: str, source: str) -> list[tuple[int, int, int, int]]:
    """(micro-batch, read, landed, quarantined) from the table `adx land` prints at the end."""
    rows = []
    for line in output.splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[0] == source and all(p.isdigit() for p in parts[1:5]):
            rows.append(tuple(int(p) for p in parts[1:5]))
    return rows


class StreamingBench:
    def __init__(self, work_dir: Path, size: int, seed: int) -> None:
        from ingestion.stack.kafka import KafkaBroker

        self.work_dir = work_dir
        self.size = size
        self.seed = seed
        self.source_dir = work_dir / "source"
        self.bootstrap = f"127.0.0.1:{free_port()}"
        self.broker_settings = Settings(data_dir=work_dir / "broker", kafka_bootstrap_servers=self.bootstrap)
        self.broker = KafkaBroker(self.broker_settings, heap="1g")
        self.sampler = Sampler()
        self.runs = 0

    def log(self, message: str) -> None:
        load = os.getloadavg()[0]
        print(f"bench streaming [{time.strftime('%H:%M:%S')}, load {load:.2f}]: {message}", file=sys.stderr, flush=True)

    def broker_cpu(self) -> float:
        pid = self.broker.pid()
        return proc_cpu_seconds(pid) if pid else 0.0

    def fresh_settings(self, name: str) -> Settings:
        """Empty topics and a data folder of its own for one run of our path."""
        self.runs += 1
        reset_topics(self.broker_settings)
        return Settings(
            data_dir=self.work_dir / f"run-{self.runs:02d}-{name}",
            kafka_bootstrap_servers=self.bootstrap,
            kafka_secrets_dir=self.broker_settings.resolved_kafka_secrets_dir,
        )

    def lander_env(self, settings: Settings, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {
            **os.environ,
            "ADX_DATA_DIR": str(settings.data_dir),
            "ADX_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "ADX_KAFKA_SECRETS_DIR": str(self.broker_settings.resolved_kafka_secrets_dir),
            "PYTHONUNBUFFERED": "1",  # the continuous run watches the lander's output line by line
            **(extra or {}),
        }

    # --- 1 and 2: data and the limit ---

    def generate(self) -> dict:
        from ingestion.generator import generate

        started = time.time()
        summary = generate(self.source_dir, days=1, scale=self.size, seed=self.seed)
        sizes = record_sizes(self.source_dir)
        self.log(f"generated {summary.records} in {time.time() - started:.0f} s; record sizes {sizes}")
        return {"seconds": round(time.time() - started, 1), "records": summary.records, "record_sizes": sizes}

    def limit(self, source: str, sizes: dict) -> dict:
        """The broker's perf tools on a scratch topic with the real topic's partitions, our producer's settings and
        the source's average record size (impressions also with real lines as payloads)."""
        from ingestion.streaming.topics import DAY_MS, TOPICS, Topic

        partitions = next(t.partitions for t in TOPICS if t.name == topics_of(source)[0])
        records = sizes[source]["records"]
        consumer_config = write_client_properties(
            self.broker_settings, self.work_dir / "consumer.properties", {"isolation.level": "read_committed"}
        )
        client_properties = write_client_properties(self.broker_settings, self.work_dir / "producer.properties", {})
        runs = [("record size", ["--record-size", str(sizes[source]["avg_bytes"])])]
        if source == "impressions":
            # Random letters of the right size compress worse than JSON: also the real lines, as payloads.
            runs.append(("real lines", ["--payload-file", str(impression_files(self.source_dir)[0])]))
        result = {"partitions": partitions, "record_bytes": sizes[source]["avg_bytes"]}
        for label, payload in runs:
            topic = Topic(f"bench.scratch.{source}", partitions=partitions, retention_ms=DAY_MS, source=source)
            create_topics(self.broker_settings, [topic])
            started = time.time()
            producer = producer_perf_test(
                self.broker_settings, topic.name, records, payload, producer_config(source), client_properties
            )
            consumer = consumer_perf_test(self.broker_settings, topic.name, records, consumer_config)
            delete_topics(self.broker_settings, [topic.name])
            key = "perf" if label == "record size" else "perf_real_lines"
            result[key] = {
                "producer": producer,
                "consumer": consumer,
                "load_avg_1m": self.sampler.load(started, time.time()),
            }
            self.log(
                f"{source} limit ({label}): producer {producer['records_per_s']:,.0f}/s, "
                f"consumer {consumer['records_per_s']:,.0f}/s (fetch {consumer['fetch_records_per_s']:,.0f}/s)"
            )
        return result

    # --- 3 and 4: our path ---

    def produce(self, source: str, settings: Settings) -> dict:
        """The source's producer in this process, on the generated files."""
        from ingestion.streaming.rtb_bridge import bridge_bid_requests
        from ingestion.streaming.shipper import ship_impressions

        cpu, broker_cpu, started = time.process_time(), self.broker_cpu(), time.time()
        if source == "impressions":
            paths = str(impression_files(self.source_dir)[0].parent.parent / "dt=*" / "*.jsonl")
            ship = ship_impressions(settings, paths=paths)
            read, published, dead = ship.lines_read, ship.published, ship.dead_lettered_total
        else:
            paths = str(bid_request_files(self.source_dir)[0].parent.parent / "dt=*" / "*.avro")
            bridge = bridge_bid_requests(settings, paths=paths)
            read, published, dead = bridge.records_read, bridge.published, sum(bridge.dead_lettered.values())
        ended = time.time()
        offsets = end_offsets(settings, topics_of(source))
        in_topics = sum(sum(partitions.values()) for partitions in offsets.values())
        if in_topics != read:
            raise BenchError(f"{source}: the producer read {read} records but the topics hold {in_topics}")
        return {
            "events": read,
            "published": published,
            "dead_lettered": dead,
            "started": started,
            "ended": ended,
            "seconds": round(ended - started, 2),
            "events_per_s": round(read / (ended - started)),
            "cpu_s": round(time.process_time() - cpu, 2),
            "broker_cpu_s": round(self.broker_cpu() - broker_cpu, 1),
            "load_avg_1m": self.sampler.load(started, ended),
            "end_offsets": offsets,
        }

    def land_available_now(self, source: str, settings: Settings) -> dict:
        """`adx land --source S`: what the topics hold, then exit."""
        events_dir = settings.data_dir / "spark-events"
        events_dir.mkdir(parents=True)
        event_log = (
            f"--conf spark.eventLog.enabled=true --conf spark.eventLog.compress=false "
            f"--conf spark.eventLog.dir=file://{events_dir} pyspark-shell"
        )
        broker_cpu, started = self.broker_cpu(), time.time()
        process = subprocess.Popen(
            [ADX, "land", "--source", source],
            env=self.lander_env(settings, {"PYSPARK_SUBMIT_ARGS": event_log}),
            cwd=PROJECT_DIR,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.sampler.watch(process.pid)
        try:
            output, _ = process.communicate(timeout=LANDER_TIMEOUT_S)
        finally:
            kill_group(process)
        ended = time.time()
        cpu = self.sampler.unwatch()
        if process.returncode != 0:
            raise BenchError(f"adx land --source {source} failed ({process.returncode}):\n{output[-3000:]}")
        batches = checkpoint_batches(settings, source)
        if not batches:
            raise BenchError(f"adx land --source {source} committed no micro-batch:\n{output[-3000:]}")
        spark = spark_steps(events_dir, topics_query_name(source))
        in_batches = batches[-1]["committed"] - batches[0]["started"]
        return {
            "wall_s": round(ended - started, 1),
            "startup_s": round(batches[0]["started"] - started, 1),  # interpreter, JVM, metastore, query start
            "jvm_start_s": round(spark["app_started"] - started, 1),  # until the Spark application runs
            "metastore_and_tables_s": round(batches[0]["started"] - spark["app_started"], 1),  # then to batch 0
            "in_batches_s": round(in_batches, 1),
            "batch_steps": spark["steps"],  # Spark SQL executions inside the micro-batches, by what they do
            "batch_other_s": round(in_batches - sum(spark["steps"].values()), 1),  # driver, metastore, Python
            "shutdown_s": round(ended - batches[-1]["committed"], 1),
            "batches": [summarize_batch(b) for b in batches],
            "rows": landed_rows(output, source),
            "cpu_s": round(cpu, 1),
            "broker_cpu_s": round(self.broker_cpu() - broker_cpu, 1),
            "load_avg_1m": self.sampler.load(started, ended),
            "last_committed": batches[-1]["committed"],
        }

    def sequential(self, source: str) -> dict:
        """Producer, then the available-now lander: each stage alone."""
        settings = self.fresh_settings(f"sequential-{source}")
        producer = self.produce(source, settings)
        self.log(f"{source} producer: {producer['events']:,} events in {producer['seconds']} s")
        lander = self.land_available_now(source, settings)
        check_landed(source, lander["rows"], producer["events"])
        events = producer["events"]
        result = {
            "producer": public(producer),
            "lander": public(lander),
            "kafka_to_raw_events_per_s": round(events / lander["in_batches_s"]),
            "kafka_to_raw_wall_events_per_s": round(events / lander["wall_s"]),
            # End to end, one stage after the other: producer, then the lander's micro-batches (without its start).
            "e2e_events_per_s": round(events / (producer["seconds"] + lander["in_batches_s"])),
            "e2e_wall_events_per_s": round(events / (producer["seconds"] + lander["wall_s"])),
        }
        self.log(
            f"{source} lander: wall {lander['wall_s']} s, start-up {lander['startup_s']} s, "
            f"in {len(lander['batches'])} micro-batch(es) {lander['in_batches_s']} s"
        )
        return result

    def concurrent(self, source: str, extra_env: dict[str, str] | None = None, label: str = "concurrent") -> dict:
        """The continuous lander running while the producer publishes: sustained events/s end to end."""
        settings = self.fresh_settings(f"{re.sub(r'[^a-z0-9]+', '-', label)}-{source}")
        env = self.lander_env(settings, {"ADX_STREAM_TRIGGER_SECONDS": str(TRIGGER_SECONDS), **(extra_env or {})})
        launched = time.time()
        process = subprocess.Popen(
            [ADX, "land", "--source", source, "--continuous"],
            env=env,
            cwd=PROJECT_DIR,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
        reader.start()
        try:
            # Ready once its query has committed batch 0, which a new query runs at once even on empty topics
            # (no committed offsets yet): the producer then meets a lander that is running and idle.
            while not checkpoint_batches(settings, source):
                if process.poll() is not None or time.time() - launched > 300:
                    raise BenchError(f"the continuous lander did not start:\n{''.join(lines)[-3000:]}")
                time.sleep(0.2)
            ready = time.time()
            warm_up = checkpoint_batches(settings, source)
            broker_cpu = self.broker_cpu()
            self.sampler.watch(process.pid)
            producer = self.produce(source, settings)
            self.log(f"{source} producer ({label}): {producer['events']:,} events in {producer['seconds']} s")
            deadline = time.time() + LANDER_TIMEOUT_S
            while True:
                batches = checkpoint_batches(settings, source)
                if batches and reached(batches[-1]["end_offsets"], producer["end_offsets"]):
                    break
                if process.poll() is not None or time.time() > deadline:
                    raise BenchError(f"the continuous lander did not land everything:\n{''.join(lines)[-3000:]}")
                time.sleep(0.2)
            cpu = self.sampler.unwatch()
            caught_up = time.time()
            process.send_signal(signal.SIGINT)  # Ctrl-C: stops after the current micro-batch, prints the table
            process.wait(timeout=120)
            reader.join(timeout=10)
        finally:
            kill_group(process)
        output = "".join(lines)
        if process.returncode not in (0, None):
            raise BenchError(f"the continuous lander failed ({process.returncode}):\n{output[-3000:]}")
        rows = landed_rows(output, source)
        check_landed(source, rows, producer["events"])
        events, last = producer["events"], batches[-1]["committed"]
        result = {
            "trigger_s": TRIGGER_SECONDS,
            "extra_env": extra_env or {},
            "lander_ready_s": round(ready - launched, 1),  # start-up and batch 0 (empty)
            "empty_batch_0_s": round(warm_up[0]["committed"] - warm_up[0]["started"], 1),
            "producer": public(producer),
            "last_landed_after_s": round(last - producer["started"], 1),
            "landed_after_producer_s": round(last - producer["ended"], 1),
            "detected_after_commit_s": round(caught_up - last, 2),
            "batches": [summarize_batch(b) for b in batches if b["batch"] > 0],
            "rows": rows,
            "lander_cpu_s": round(cpu, 1),  # from the first record produced to the end
            "broker_cpu_s": round(self.broker_cpu() - broker_cpu, 1),
            "load_avg_1m": self.sampler.load(producer["started"], last),
            "e2e_events_per_s": round(events / (last - producer["started"])),
        }
        self.log(
            f"{source} {label}: {events:,} events landed {result['last_landed_after_s']} s after the first was "
            f"produced ({result['e2e_events_per_s']:,}/s), {len(result['batches'])} micro-batches"
        )
        return result


def summarize_batch(batch: dict) -> dict:
    return {
        "batch": batch["batch"],
        "records": batch["records"],
        "seconds": round(batch["committed"] - batch["started"], 2),
    }


def public(stage: dict) -> dict:
    """A stage's figures without the bookkeeping (absolute times, offsets)."""
    return {k: v for k, v in stage.items() if k not in ("started", "ended", "end_offsets", "last_committed")}


def check_landed(source: str, rows: list[tuple[int, int, int, int]], events: int) -> None:
    """The lander's own table: read = landed + quarantined per micro-batch, and read = what was produced."""
    read = sum(r[1] for r in rows)
    if read != events or any(r[1] != r[2] + r[3] for r in rows):
        raise BenchError(f"{source}: produced {events} events but the lander reports {rows}")


def kill_group(process: subprocess.Popen) -> None:
    """The lander and whatever is left of its process group (its JVM)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def measure(size: int, seed: int, work_dir: Path, variants: bool) -> dict:
    bench = StreamingBench(work_dir, size, seed)
    bench.sampler.start()
    result: dict = {
        "date": date.today().isoformat(),
        "command": " ".join(["python", *sys.orig_argv[1:]]),
        "size": size,
        "seed": seed,
        "cores": os.cpu_count(),
        "bootstrap": bench.bootstrap,
    }
    started = time.time()
    try:
        bench.broker.start()
        bench.log(f"broker on {bench.bootstrap}")
        result["generate"] = bench.generate()
        sizes = result["generate"]["record_sizes"]
        result["limits"] = {source: bench.limit(source, sizes) for source in SOURCES}
        result["sources"] = {}
        for source in SOURCES:
            result["sources"][source] = {
                "sequential": bench.sequential(source),
                "concurrent": bench.concurrent(source),
            }
        result["variants"] = []
        if variants:
            for name, env, change in VARIANTS:
                for source in SOURCES:
                    run = bench.concurrent(source, env, label=name)
                    result["variants"].append({"name": name, "change": change, "source": source, **run})
    finally:
        ended = time.time()
        bench.sampler.stop()
        bench.broker.stop()
    loads = [load for _, load in bench.sampler.loads]
    result["seconds"] = round(ended - started)
    result["load_avg_1m"] = {
        "min": round(min(loads), 2),
        "mean": round(sum(loads) / len(loads), 2),
        "max": round(max(loads), 2),
    }
    result["goals"] = goals(result)
    return result


def goals(result: dict) -> dict:
    """Per source: end-to-end events/s (concurrent run) against 200k/s and against half the producer-perf-test
    limit; and each stage against its perf test (producer alone / producer perf, lander in micro-batches / consumer
    perf)."""
    verdicts = {}
    for source, runs in result["sources"].items():
        limits = result["limits"][source]
        limit = limits["perf"]["producer"]["records_per_s"]
        e2e = runs["concurrent"]["e2e_events_per_s"]
        sequential = runs["sequential"]
        verdicts[source] = {
            "e2e_events_per_s": e2e,
            "producer_perf_limit": limit,
            "ratio_to_limit": round(e2e / limit, 3),
            "sequential_ratio_to_limit": round(sequential["e2e_events_per_s"] / limit, 3),
            "producer_ratio_to_producer_perf": round(sequential["producer"]["events_per_s"] / limit, 3),
            "kafka_to_raw_ratio_to_consumer_perf": round(
                sequential["kafka_to_raw_events_per_s"] / limits["perf"]["consumer"]["fetch_records_per_s"], 3
            ),
            "meets_200k": e2e >= GOAL_EVENTS_PER_S,
            "meets_half_limit": e2e >= GOAL_SHARE_OF_LIMIT * limit,
        }
        if "perf_real_lines" in limits:
            real = limits["perf_real_lines"]["producer"]["records_per_s"]
            verdicts[source]["producer_perf_limit_real_lines"] = real
            verdicts[source]["ratio_to_real_lines_limit"] = round(e2e / real, 3)
    return verdicts


def summary_markdown(result: dict) -> str:
    load = result["load_avg_1m"]
    lines = [
        f"# Streaming throughput, {result['date']}",
        "",
        f"`{result['command']}`: {result['size']:,} impressions/day on {result['cores']} cores, one fresh broker "
        f"(Kafka 4.1.1, KRaft, 127.0.0.1), {result['seconds']} s in all. 1-minute load average during the run: "
        f"min {load['min']}, mean {load['mean']}, max {load['max']} (the machine was shared).",
        "",
        "## Goals (end to end = the continuous lander running while the producer publishes)",
        "",
        "| source | events | end-to-end ev/s | producer-perf limit ev/s | ratio | >= 200k ev/s | >= 0.5 x limit "
        "| producer alone / producer perf | Kafka->raw / consumer perf |",
        "|---|---:|---:|---:|---:|:---|:---|---:|---:|",
    ]
    for source, g in result["goals"].items():
        events = result["sources"][source]["concurrent"]["producer"]["events"]
        limit = f"{g['producer_perf_limit']:,.0f}"
        ratio = f"{g['ratio_to_limit']:.2f}"
        if "producer_perf_limit_real_lines" in g:
            limit += f" ({g['producer_perf_limit_real_lines']:,.0f} with real lines)"
            ratio += f" ({g['ratio_to_real_lines_limit']:.2f})"
        lines.append(
            f"| {source} | {events:,} | {g['e2e_events_per_s']:,} | {limit} | {ratio} | {yes_no(g['meets_200k'])} "
            f"| {yes_no(g['meets_half_limit'])} | {g['producer_ratio_to_producer_perf']:.2f} "
            f"| {g['kafka_to_raw_ratio_to_consumer_perf']:.2f} |"
        )
    lines += [
        "",
        "## The limit: the broker's perf tools, our producer settings, a scratch topic with the same partitions",
        "",
        "| source | payload | record B | producer-perf ev/s | MB/s | avg latency ms | consumer-perf ev/s "
        "| (after group join) | load |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for source, limit in result["limits"].items():
        for key, payload in (("perf", "random letters"), ("perf_real_lines", "real lines")):
            if key in limit:
                p, c = limit[key]["producer"], limit[key]["consumer"]
                lines.append(
                    f"| {source} | {payload} | {limit['record_bytes']} | {p['records_per_s']:,.0f} | {p['mb_per_s']} "
                    f"| {p['avg_latency_ms']:.0f} | {c['records_per_s']:,.0f} | {c['fetch_records_per_s']:,.0f} "
                    f"| {limit[key]['load_avg_1m']} |"
                )
    lines += [
        "",
        "## Our path, stage by stage (producer alone, then `adx land` available-now)",
        "",
        "| source | producer s | ev/s | CPU s | broker CPU s | lander wall s | start-up s (JVM + metastore, tables) "
        "| in micro-batches s | batches | Kafka->raw ev/s | lander CPU s | e2e ev/s (w/o start-up) | e2e ev/s (wall) "
        "| load |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for source, runs in result["sources"].items():
        s = runs["sequential"]
        p, land = s["producer"], s["lander"]
        lines.append(
            f"| {source} | {p['seconds']} | {p['events_per_s']:,} | {p['cpu_s']} | {p['broker_cpu_s']} "
            f"| {land['wall_s']} | {land['startup_s']} ({land['jvm_start_s']} + {land['metastore_and_tables_s']}) "
            f"| {land['in_batches_s']} | {len(land['batches'])} "
            f"| {s['kafka_to_raw_events_per_s']:,} | {land['cpu_s']} | {s['e2e_events_per_s']:,} "
            f"| {s['e2e_wall_events_per_s']:,} | {land['load_avg_1m']} |"
        )
    lines += [
        "",
        "Inside the available-now micro-batches: seconds of the Spark SQL executions, from the lander's event log "
        "(other: driver, metastore and Python between them).",
        "",
        "| source | step | s |",
        "|---|---|---:|",
    ]
    for source, runs in result["sources"].items():
        land = runs["sequential"]["lander"]
        steps = [*land["batch_steps"].items(), ("other", land["batch_other_s"])]
        lines += [f"| {source} | {step} | {seconds} |" for step, seconds in steps]
    lines += [
        "",
        f"## Concurrent: `adx land --continuous` (trigger {TRIGGER_SECONDS} s) started first, then the producer",
        "",
        "| source | run | lander ready s | producer s | producer ev/s | producer CPU µs/ev | last landed after s "
        "| after producer end s | micro-batches (records) | lander CPU s | lander CPU µs/ev | broker CPU s "
        "| sustained ev/s | load |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    runs = [(source, "baseline", r["concurrent"]) for source, r in result["sources"].items()]
    runs += [(v["source"], v["change"], v) for v in result["variants"]]
    for source, name, run in runs:
        p = run["producer"]
        batches = ", ".join(f"{b['records']:,} in {b['seconds']:.0f} s" for b in run["batches"])
        lines.append(
            f"| {source} | {name} | {run['lander_ready_s']} | {p['seconds']} | {p['events_per_s']:,} | {p['cpu_s'] * 1e6 / p['events']:.1f} "
            f"| {run['last_landed_after_s']} | {run['landed_after_producer_s']} | {len(run['batches'])} ({batches}) "
            f"| {run['lander_cpu_s']} | {run['lander_cpu_s'] * 1e6 / p['events']:.0f} | {run['broker_cpu_s']} "
            f"| {run['e2e_events_per_s']:,} | {run['load_avg_1m']} |"
        )
    lines += [
        "",
        "Notes: the perf tests send keyless records without headers (ours carry a key and 2-3 headers), with the "
        "producers' acks, idempotence, linger.ms, batch.size, lz4 and queue size; random letters compress far worse "
        "than JSON. A lander's start-up includes creating the Derby metastore and the raw tables in its fresh data "
        "folder. The continuous lander is started first and has committed its (empty) batch 0 before the first "
        "record is produced. CPU seconds from /proc; wall times depend on the load of the shared machine.",
    ]
    return "\n".join(lines) + "\n"


def yes_no(value: bool) -> str:
    return "yes" if value else "**no**"


def run(size: int, seed: int = 42, variants: bool = True, work_dir: Path | None = None) -> dict:
    """Measure, write bench/results/streaming-<date>.json and .md, print the summary."""
    if work_dir is None:
        with tempfile.TemporaryDirectory(prefix=f"adx-bench-streaming-{size}-") as temporary:
            result = measure(size, seed, Path(temporary), variants)
    else:
        work_dir.mkdir(parents=True, exist_ok=False)
        result = measure(size, seed, work_dir, variants)
    write_results(f"streaming-{result['date']}", result, summary_markdown(result))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1_000_000, help="Impressions in the generated day.")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--no-variants", action="store_true", help="Skip the lander variants.")
    parser.add_argument("--work-dir", type=Path, help="Keep everything in this new folder instead of a tempdir.")
    args = parser.parse_args()
    run(args.size, args.seed, variants=not args.no_variants, work_dir=args.work_dir)


if __name__ == "__main__":
    main()
