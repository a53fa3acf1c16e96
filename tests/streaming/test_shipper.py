"""The impressions shipper: which lines are dead letters (fast, no broker), then against a real broker: every line
published once with its key and headers, restarts, rotation and a broker that goes away.

The topics are shared by the test session: every assertion is about the records written since the test began
(TopicWatch, tests/streaming/conftest.py). The classification cases were checked against Spark 4.2's try_parse_json by
test_classification_agrees_with_the_spark_loader, which runs them through the loader's own parser.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from confluent_kafka import Message

from ingestion.generator import generate
from ingestion.loader import count_lines
from ingestion.settings import Settings
from ingestion.streaming.shipper import (
    _CANONICAL_LINE,
    MALFORMED_JSON,
    NOT_A_JSON_OBJECT,
    DeliveryError,
    ImpressionShipper,
    ShipSummary,
    _headers,
    classify_line,
    default_paths,
    ship_impressions,
)
from ingestion.streaming.tailer import load_positions
from ingestion.streaming.topics import (
    DLQ_REASON_HEADER,
    IMPRESSIONS_DLQ_TOPIC,
    IMPRESSIONS_TOPIC,
    INGEST_DATE_HEADER,
    SOURCE_FILE_HEADER,
)

M, N = MALFORMED_JSON, NOT_A_JSON_OBJECT
# (line, the loader's reason): Spark's try_parse_json (Jackson) where it and Python's json module disagree.
CASES: list[tuple[bytes, str | None]] = [
    (b'{"user_id": "u1", "a": 1}', None),
    # what the generator writes: truncated lines, arrays, strings, numbers
    (b'{"event_id": "imp-1", "event_time": "2026-11-01T00:00:00.075Z", "user_id": "u_0', M),
    (b'["imp-1", "2026-11-01T00:00:00.075Z", "u_002174"]', N),
    (b'"fluentd: buffer flush"', N),
    (b"421337", N),
    # blank and whitespace
    (b"", M),
    (b"   ", M),
    (b"\t", M),
    (b'  {"a": 1}', None),
    (b'\t{"a": 1}', N),  # valid JSON, but ltrim removes spaces only
    (b' \t {"a": 1}', N),
    (b'{"a": 1}\t ', None),
    (b'\x0c{"a": 1}', M),
    (b'\xc2\xa0{"a": 1}', M),
    (b'\xef\xbb\xbf{"a": 1}', M),  # a byte order mark
    # Python accepts, Jackson does not
    (b'{"a": NaN}', M),
    (b'{"a": Infinity}', M),
    (b'{"a": -Infinity}', M),
    (b"NaN", M),
    (b'{"a": 1, "a": 2}', M),
    (b'{"a": {"b": 1, "b": 2}}', M),
    (b'{"a": 1, "\\u0061": 2}', M),
    (b'[{"a": 1, "a": 2}]', M),
    (b'{"a": "\\ud800"}', M),
    (b'{"a": "\\ude00\\ud83d"}', M),
    (b'{"\\ud800": 1}', M),
    (b'{"a": ' + b"1" * 1001 + b"}", M),
    (b'{"a": ' + b"1" * 600 + b"." + b"5" * 600 + b"}", M),
    (b"[" * 1001 + b"]" * 1001, M),
    (b"42abc", M),
    (b"-5x", M),
    (b"42,", M),
    (b"truex", M),
    (b"true1", M),
    (b"null_", M),
    (b"true\xc3\xa9", M),
    (b"true\xc2\x80", M),
    # Jackson accepts, Python does not: whatever follows the first value is ignored
    (b'{"a": 1} x', None),
    (b'{"a": 1}}', None),
    (b'{"a": 1}{"b": 2}', None),
    (b'{"a": 1},', None),
    (b'{"a": 1}garbage{"unclosed', None),
    (b'{"a": 1}\x00', None),
    (b"[1]x", N),
    (b'"s"x', N),
    (b"42 abc", N),
    (b"1.5 z", N),
    (b"true,", N),
    (b"true x", N),
    (b"false$", N),
    (b"true-", N),
    # both agree
    (b'{"a": "\\ud83d\\ude00"}', None),
    (b'{"a": "\xff"}', None),  # invalid UTF-8 becomes U+FFFD inside a string
    (b'{"a": "x\x7fy"}', None),
    (b'{"a": "\x01"}', M),
    (b'{"a": "tab\there"}', M),
    (b'{"a": "\\x41"}', M),
    (b'{"a": "\\u12"}', M),
    (b'{"a": 1 /* c */}', M),
    (b"{'a': 1}", M),
    (b"{a: 1}", M),
    (b'{"a": 01}', M),
    (b'{"a": 1.}', M),
    (b'{"a": .5}', M),
    (b'{"a": +1}', M),
    (b'{"a": [1, 2,]}', M),
    (b'{"a": True}', M),
    (b'{"a": 1e400}', None),
    (b'{"a": ' + b"1" * 1000 + b"}", None),
    (b'{"a": -' + b"1" * 1000 + b"}", None),
    (b'{"a": 1.' + b"5" * 999 + b"}", None),
    (b"[" * 1000 + b"]" * 1000, N),
    (b'{"a": [1, 2]  ] }', M),
    (b'{"user_id": 5}', None),
    (b"{}", None),
    (b"[1, 2", M),
    (b'"abc', M),
    (b"-", M),
    (b"00", M),
    (b"1e", M),
    (b"tru", M),
    (b"0", N),
    (b"-0.0e+1", N),
    (b"null", N),
]

CONTRACT_LINE = (
    b'{"event_id": "imp-20261101-00000002", "event_time": "2026-11-01T00:00:00.075Z", "user_id": "u_002174", '
    b'"campaign_id": "cmp_023", "ad_id": "ad_023_1", "site_domain": "recipes.example.com", "device_type": null, '
    b'"country": "AU", "bid_request_id": null, "cost_micros": 3540, "currency": "USD", "server": "web-01"}'
)


# --- classification (no broker) ---


@pytest.mark.parametrize(("line", "reason"), CASES, ids=[repr(line[:40]) for line, _ in CASES])
def test_lines_are_dead_letters_exactly_when_the_loader_quarantines_them(line, reason):
    assert classify_line(line).reason == reason


def test_the_user_id_is_the_key_only_when_it_is_a_string():
    assert classify_line(b'{"user_id": "u_1"}').user_id == "u_1"
    assert classify_line(b'{"user_id": ""}').user_id == ""
    assert classify_line(b'{"user_id": 5}').user_id is None
    assert classify_line(b'{"user_id": null}').user_id is None
    assert classify_line(b'{"event_id": "e"}').user_id is None
    assert classify_line('{"user_id": "üser"}'.encode()).user_id == "üser"


def test_the_fast_pattern_matches_once_per_line_and_only_certain_objects():
    lines = [
        CONTRACT_LINE,
        b"",
        CONTRACT_LINE + b" trailing",
        CONTRACT_LINE.replace(b'"u_002174"', b'"u_\\u0030"'),  # an escape: the exact path decides
        CONTRACT_LINE.replace(b'"cost_micros": 3540', b'"cost_micros": NaN'),
        CONTRACT_LINE.replace(b'"server": "web-01"', b'"server": "web-01", "server": "x"'),
        CONTRACT_LINE.replace(b": ", b":"),  # another layout: the exact path decides
        CONTRACT_LINE[:-5],
        CONTRACT_LINE + b"\r",
        b"  " + CONTRACT_LINE,
    ]
    matches = _CANONICAL_LINE.findall(b"\n".join(lines))
    assert matches == [b"u_002174", b"", b"u_002174", b"", b"", b"", b"", b"", b"u_002174", b""]
    for line, match in zip(lines, matches, strict=True):
        if match:
            assert classify_line(line) == (None, match.decode())


def test_generated_lines_are_dead_letters_as_the_manifest_says(tmp_path):
    """Every bad line the generator writes gets the reason its manifest expects, and the fast pattern and the
    exact classification agree on every line."""
    generate(tmp_path, days=1, scale=4_000, seed=11, mess_rate=0.05)
    manifest = json.loads((tmp_path / "ground_truth" / "manifest.json").read_text())
    files = [f for f in manifest["files"] if f["source"] == "impressions"]
    assert files
    for entry in files:
        data = (tmp_path / entry["path"]).read_bytes()
        lines = data.removesuffix(b"\n").split(b"\n")
        verdicts = [classify_line(line) for line in lines]
        reasons = Counter(v.reason for v in verdicts if v.reason)
        assert reasons == Counter(entry["quarantine_reasons"]), entry["path"]
        assert len(lines) == entry["records"]
        for line, match, verdict in zip(
            lines, _CANONICAL_LINE.findall(data.removesuffix(b"\n")), verdicts, strict=True
        ):
            if match:
                assert verdict == (None, match.decode())
            elif verdict.reason is None:
                raise AssertionError(f"a valid line missed by the fast pattern: {line!r}")


def test_headers_carry_the_file_name_and_its_dt_folder_else_the_utc_date():
    assert _headers(Path("/x/impressions/dt=2026-11-03/web-02.jsonl")) == [
        (SOURCE_FILE_HEADER, b"web-02.jsonl"),
        (INGEST_DATE_HEADER, b"2026-11-03"),
    ]
    today = datetime.now(UTC).date().isoformat().encode()
    assert _headers(Path("/var/log/nginx/impressions.log")) == [
        (SOURCE_FILE_HEADER, b"impressions.log"),
        (INGEST_DATE_HEADER, today),
    ]


def test_the_default_glob_is_the_landing_layout(tmp_path):
    assert default_paths(Settings(data_dir=tmp_path)) == str(tmp_path / "landing" / "impressions" / "dt=*" / "*.jsonl")


# --- against Spark ---


@pytest.mark.integration
def test_classification_agrees_with_the_spark_loader(spark):
    from ingestion.loader import parse_json_lines
    from ingestion.sources import IMPRESSIONS

    rows = [(line.decode("utf-8", "replace"), f"case-{i}", date(2026, 11, 1)) for i, (line, _) in enumerate(CASES)]
    frame = spark.createDataFrame(rows, "payload string, _source_file string, _ingest_date date")
    landed, quarantined = parse_json_lines(frame, IMPRESSIONS)
    spark_reasons = {row["_source_file"]: row["reason"] for row in quarantined.collect()}
    landed_cases = {row["_source_file"] for row in landed.collect()}
    assert not landed_cases & set(spark_reasons)
    assert len(landed_cases) + len(spark_reasons) == len(CASES)
    differing = [
        (line[:60], spark_reasons.get(f"case-{i}"), classify_line(line).reason)
        for i, (line, _) in enumerate(CASES)
        if spark_reasons.get(f"case-{i}") != classify_line(line).reason
    ]
    assert differing == []


# --- against the broker ---


@pytest.fixture
def watch(watch_topics):
    return watch_topics(IMPRESSIONS_TOPIC.name, IMPRESSIONS_DLQ_TOPIC.name)


def _headers_of(message: Message) -> dict[str, str]:
    return {key: value.decode() for key, value in message.headers() or []}


def _lines(n: int, run: str, start: int = 0) -> list[bytes]:
    return [
        json.dumps({"event_id": f"{run}-{i:06d}", "user_id": f"u_{i % 7}", "cost_micros": i}).encode()
        for i in range(start, start + n)
    ]


def _write_lines(path: Path, lines: list[bytes], mode: str = "wb") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open(mode) as handle:
        handle.write(b"".join(line + b"\n" for line in lines))


def _wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def _check(summary: ShipSummary, *, read: int, published: int, dead: dict[str, int] | None = None) -> None:
    assert summary.reconciled
    assert (summary.lines_read, summary.published) == (read, published)
    assert summary.dead_lettered == {MALFORMED_JSON: 0, NOT_A_JSON_OBJECT: 0, **(dead or {})}


@pytest.mark.integration
def test_every_generated_line_is_published_once_with_its_key_and_headers(settings, watch):
    generate(settings.data_dir, days=2, scale=3_000, seed=3, mess_rate=0.05)
    manifest = json.loads((settings.data_dir / "ground_truth" / "manifest.json").read_text())
    files = {
        Path(f["path"]).name + "@" + f["arrival_date"]: f for f in manifest["files"] if f["source"] == "impressions"
    }
    read = sum(count_lines(settings.data_dir / f["path"], skip_header=False) for f in files.values())
    quarantined = Counter()
    for entry in files.values():
        quarantined.update(entry["quarantine_reasons"])

    summary = ship_impressions(settings)
    _check(summary, read=read, published=read - sum(quarantined.values()), dead=dict(quarantined))
    assert summary.files == len(files)

    published, dead = watch.new(IMPRESSIONS_TOPIC.name), watch.new(IMPRESSIONS_DLQ_TOPIC.name)
    assert len(published) == summary.published and len(dead) == summary.dead_lettered_total
    expected_values: Counter = Counter()
    expected_dead: Counter = Counter()
    for name, entry in files.items():
        for line in (settings.data_dir / entry["path"]).read_bytes().removesuffix(b"\n").split(b"\n"):
            verdict = classify_line(line)
            if verdict.reason is None:
                expected_values[(name, line)] += 1
            else:
                expected_dead[(name, line, verdict.reason)] += 1
    got_values: Counter = Counter()
    for message in published:
        headers = _headers_of(message)
        assert set(headers) == {SOURCE_FILE_HEADER, INGEST_DATE_HEADER}
        got_values[(f"{headers[SOURCE_FILE_HEADER]}@{headers[INGEST_DATE_HEADER]}", message.value())] += 1
        user_id = json.loads(message.value())["user_id"]
        assert message.key() == (user_id.encode() if isinstance(user_id, str) else None)
    assert got_values == expected_values  # every valid line once, byte for byte, from its file and date
    got_dead = Counter(
        (f"{h[SOURCE_FILE_HEADER]}@{h[INGEST_DATE_HEADER]}", m.value(), h[DLQ_REASON_HEADER])
        for m, h in ((m, _headers_of(m)) for m in dead)
    )
    assert got_dead == expected_dead

    again = ship_impressions(settings)  # nothing new: nothing shipped
    _check(again, read=0, published=0)
    assert len(watch.new(IMPRESSIONS_TOPIC.name)) == len(published)


@pytest.mark.integration
def test_a_stopped_run_resumes_without_sending_confirmed_lines_again(settings, watch):
    run = uuid.uuid4().hex[:8]
    day = settings.landing_dir / "impressions" / "dt=2026-11-05"
    _write_lines(day / "web-01.jsonl", _lines(20_000, run))
    _write_lines(day / "web-02.jsonl", _lines(5_000, run, start=20_000))

    class StopAfterTwoChunks(ImpressionShipper):
        def _publish(self, producer, chunk, summary) -> None:
            super()._publish(producer, chunk, summary)
            if summary.lines_read >= 2 * chunk_lines:
                self.stop()

    chunk_bytes = 64 * 1024
    chunk_lines = chunk_bytes // len(_lines(1, run, start=10_000)[0] + b"\n")
    first = StopAfterTwoChunks(settings, chunk_bytes=chunk_bytes).run()
    assert 0 < first.lines_read < 20_000
    positions = load_positions(settings.streaming_dir / "shipper" / "impressions.pos.json")
    assert [p.offset for p in positions.values()] == [sum(len(line) + 1 for line in _lines(first.lines_read, run))]

    _write_lines(day / "web-01.jsonl", _lines(1_000, run, start=30_000), mode="ab")  # it grew meanwhile
    second = ship_impressions(settings)
    _check(second, read=26_000 - first.lines_read, published=26_000 - first.lines_read)

    event_ids = Counter(json.loads(m.value())["event_id"] for m in watch.new(IMPRESSIONS_TOPIC.name))
    assert len(event_ids) == 26_000 and set(event_ids.values()) == {1}


@pytest.mark.integration
def test_a_failed_run_ships_again_what_it_had_not_checkpointed(settings, watch):
    """At least once: a run that dies ships again, on the next start, the lines after its last checkpoint."""
    run = uuid.uuid4().hex[:8]
    _write_lines(settings.landing_dir / "impressions" / "dt=2026-11-06" / "web-01.jsonl", _lines(3_000, run))

    class DiesAfterOneChunk(ImpressionShipper):
        def _publish(self, producer, chunk, summary) -> None:
            if summary.lines_read:
                producer.flush(30)  # the first chunk is delivered, but the run dies before its checkpoint
                raise RuntimeError("killed")
            super()._publish(producer, chunk, summary)

    with pytest.raises(RuntimeError, match="killed"):
        DiesAfterOneChunk(settings, chunk_bytes=16 * 1024, checkpoint_interval_s=3600).run()
    assert not (settings.streaming_dir / "shipper" / "impressions.pos.json").exists()
    _check(ship_impressions(settings), read=3_000, published=3_000)
    event_ids = Counter(json.loads(m.value())["event_id"] for m in watch.new(IMPRESSIONS_TOPIC.name))
    assert len(event_ids) == 3_000
    assert 0 < sum(count - 1 for count in event_ids.values()) < 3_000  # the first chunk went out twice


class _FollowRun:
    """A follow-mode shipper in a thread, as `ship_impressions(follow=True)` runs in the main one."""

    def __init__(self, shipper: ImpressionShipper) -> None:
        self.shipper = shipper
        self.summary: ShipSummary | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.summary = self.shipper.run(follow=True)
        except BaseException as error:  # noqa: BLE001 - handed to the test
            self.error = error

    def offsets(self) -> list[tuple[str, int]]:
        """(file name, offset) in the position file."""
        positions = load_positions(self.shipper.position_file)
        return sorted((Path(p.path).name, p.offset) for p in positions.values())

    def stop(self) -> ShipSummary:
        self.shipper.stop()
        self.thread.join(60)
        if self.error is not None:
            raise self.error
        assert self.summary is not None
        return self.summary


@pytest.mark.integration
def test_follow_mode_ships_a_rotated_file_to_its_end_and_the_new_file_from_its_start(settings, watch, tmp_path):
    run = uuid.uuid4().hex[:8]
    log = tmp_path / "logs" / "impressions.log"
    _write_lines(log, _lines(100, run))
    follow = _FollowRun(
        ImpressionShipper(settings, paths=str(log), poll_interval_s=0.1, checkpoint_interval_s=0.1, rotate_wait_s=1.0)
    )
    try:
        _wait_for(lambda: follow.offsets() == [("impressions.log", log.stat().st_size)])
        with log.open("ab") as handle:  # a line being written: not shipped until its newline arrives
            handle.write(_lines(1, run, start=100)[0][:10])
        log.rename(log.with_name("impressions.log.1"))  # rotated; the server still appends to it
        _write_lines(
            log.with_name("impressions.log.1"), [_lines(1, run, start=100)[0][10:], *_lines(49, run, 101)], "ab"
        )
        _write_lines(log, _lines(30, run, start=1_000))  # the new file
        _wait_for(lambda: follow.offsets() == [("impressions.log", log.stat().st_size)])  # old one finished
        _write_lines(log, _lines(20, run, start=1_030), mode="ab")
        _wait_for(lambda: follow.offsets() == [("impressions.log", log.stat().st_size)])
    finally:
        summary = follow.stop()
    _check(summary, read=200, published=200)
    messages = watch.new(IMPRESSIONS_TOPIC.name)
    event_ids = Counter(json.loads(m.value())["event_id"] for m in messages)
    expected = {f"{run}-{i:06d}" for i in (*range(150), *range(1_000, 1_050))}
    assert set(event_ids) == expected and set(event_ids.values()) == {1}
    today = datetime.now(UTC).date().isoformat()
    assert {(_headers_of(m)[SOURCE_FILE_HEADER], _headers_of(m)[INGEST_DATE_HEADER]) for m in messages} == {
        ("impressions.log", today)
    }


@pytest.mark.integration
def test_a_broker_restarted_while_shipping_loses_and_doubles_nothing(settings, watch, kafka_broker):
    """With the default delivery timeout the producer rides out a broker restart: it retries, and idempotence
    keeps its retries from doubling a record."""
    run = uuid.uuid4().hex[:8]
    path = settings.landing_dir / "impressions" / "dt=2026-11-09" / "web-02.jsonl"
    _write_lines(path, _lines(100, run))
    follow = _FollowRun(ImpressionShipper(settings, poll_interval_s=0.1, checkpoint_interval_s=0.1))
    try:
        _wait_for(lambda: follow.offsets() == [("web-02.jsonl", path.stat().st_size)])
        kafka_broker.broker.stop()
        _write_lines(path, _lines(50, run, start=100), mode="ab")  # shipped while the broker is down
        time.sleep(2)
    finally:
        kafka_broker.broker.start()
    _wait_for(lambda: follow.offsets() == [("web-02.jsonl", path.stat().st_size)], timeout=120)
    summary = follow.stop()
    assert (summary.lines_read, summary.published) == (150, 150)
    event_ids = Counter(json.loads(m.value())["event_id"] for m in watch.new(IMPRESSIONS_TOPIC.name))
    assert len(event_ids) == 150 and set(event_ids.values()) == {1}


@pytest.mark.integration
def test_a_broker_outage_fails_the_run_and_keeps_the_undelivered_lines_for_the_next(settings, watch, kafka_broker):
    run = uuid.uuid4().hex[:8]
    path = settings.landing_dir / "impressions" / "dt=2026-11-07" / "web-01.jsonl"
    _write_lines(path, _lines(100, run))
    follow = _FollowRun(
        ImpressionShipper(
            settings,
            producer_config={"delivery.timeout.ms": 4_000},
            poll_interval_s=0.1,
            checkpoint_interval_s=0.1,
        )
    )
    delivered = path.stat().st_size
    try:
        _wait_for(lambda: follow.offsets() == [("web-01.jsonl", delivered)])
        kafka_broker.broker.stop()
        _write_lines(path, _lines(50, run, start=100), mode="ab")
        follow.thread.join(60)
        assert isinstance(follow.error, DeliveryError), follow.error
        assert follow.offsets() == [("web-01.jsonl", delivered)]  # not past the undelivered lines
    finally:
        kafka_broker.broker.start()
    _check(ship_impressions(settings), read=50, published=50)
    event_ids = Counter(json.loads(m.value())["event_id"] for m in watch.new(IMPRESSIONS_TOPIC.name))
    assert len(event_ids) == 150 and set(event_ids.values()) == {1}


@pytest.mark.integration
@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_ends_follow_mode_cleanly_with_its_position_saved(settings, watch, stop_signal):
    run = uuid.uuid4().hex[:8]
    path = settings.landing_dir / "impressions" / "dt=2026-11-08" / f"{run}.jsonl"
    _write_lines(path, _lines(500, run))
    script = (
        "import json\n"
        "from ingestion.settings import Settings\n"
        "from ingestion.streaming.shipper import ship_impressions\n"
        "summary = ship_impressions(Settings(), follow=True)\n"
        "print(json.dumps({'read': summary.lines_read, 'published': summary.published}))\n"
    )
    env = {
        **os.environ,
        "ADX_DATA_DIR": str(settings.data_dir),
        "ADX_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "ADX_KAFKA_SECRETS_DIR": str(settings.resolved_kafka_secrets_dir),
    }
    process = subprocess.Popen(
        [sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    position_file = settings.streaming_dir / "shipper" / "impressions.pos.json"
    try:
        _wait_for(lambda: [p.offset for p in load_positions(position_file).values()] == [path.stat().st_size])
        process.send_signal(stop_signal)
        output, errors = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, errors
    assert json.loads(output) == {"read": 500, "published": 500}
    assert len(watch.new(IMPRESSIONS_TOPIC.name)) == 500
