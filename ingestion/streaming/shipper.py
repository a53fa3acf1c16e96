"""The impressions shipper: tails the web servers' JSON-lines logs and publishes every line to Kafka.

Each line becomes one record of `IMPRESSIONS_TOPIC` (value: the line's bytes as in the file, without "\\n" or
"\\r\\n"; key: the object's `user_id` when it is a string; headers: the file's name and arrival date), unless it
cannot be parsed: then it goes to `IMPRESSIONS_DLQ_TOPIC` with the reason the batch loader would quarantine it
for (`malformed_json`, `not_a_json_object`), so that the same files reconcile the same way on both paths.

Delivery is at least once. The producer is idempotent (`enable.idempotence`, `acks=all`), so its own retries
never duplicate a record; the position file (`<streaming_dir>/shipper/impressions.pos.json`, see
ingestion.streaming.tailer) is written only after `flush()` has confirmed every record up to its offsets, at
a checkpoint every `checkpoint_interval_s` (between chunks of up to CHUNK_BYTES) and at the end. So delivery is
at least once at checkpoint granularity: a run that fails or is killed ships again, on its next start, the lines
read after its last checkpoint (they may be in the topic twice). Any delivery error fails the run
(DeliveryError) and leaves the position file at the last checkpoint: nothing is dropped silently.

`ship_impressions(settings)` ships what is there and returns (bounded mode; the final unterminated line of a file
is shipped, as the batch loader counts it); `follow=True` keeps polling the files every `poll_interval_s` and
waits for each line's newline, until SIGTERM or Ctrl-C, which end it cleanly after the chunk being published
(last checkpoint, then return; in bounded mode too, with the rest left for the next run).

Throughput: most lines are checked by one regular expression over a whole chunk (`_CANONICAL_LINE`: the
generator's and the web servers' field order, flat values, no escapes), which proves them valid JSON objects
with unique keys and finds their `user_id`. Every other line goes through `classify_line`, which follows Spark's
`try_parse_json` (Jackson) where Python's json module does not. Delivery reports are requested for failures
only (`delivery.report.only.error`): a successful `flush()` with no failure reported confirms the rest.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import signal
import sys
import threading
import time
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from ingestion.kafka_access import KafkaUser, client_config
from ingestion.loader import DT_FOLDER
from ingestion.settings import Settings
from ingestion.sources import IMPRESSIONS
from ingestion.streaming.tailer import (
    CHUNK_BYTES,
    ROTATE_WAIT_S,
    Chunk,
    FileId,
    Position,
    Tailer,
    load_positions,
    save_positions,
)
from ingestion.streaming.topics import (
    DLQ_REASON_HEADER,
    IMPRESSIONS_DLQ_TOPIC,
    IMPRESSIONS_TOPIC,
    INGEST_DATE_HEADER,
    SOURCE_FILE_HEADER,
)

log = logging.getLogger(__name__)

MALFORMED_JSON = "malformed_json"  # the loader's reasons (ingestion.loader.parse_json_lines)
NOT_A_JSON_OBJECT = "not_a_json_object"
REASONS = (MALFORMED_JSON, NOT_A_JSON_OBJECT)

POSITION_FILE = Path("shipper") / "impressions.pos.json"  # under settings.streaming_dir
POLL_INTERVAL_S = 1.0  # follow mode: how often the files are looked at
CHECKPOINT_INTERVAL_S = 2.0  # flush and save positions at least this often while shipping
DELIVERY_TIMEOUT_MS = 120_000  # a record not acknowledged by then fails the run

PRODUCER_CONFIG: dict[str, Any] = {
    "client.id": "adx-impressions-shipper",
    "enable.idempotence": True,  # retries never duplicate or reorder a record
    "acks": "all",
    "delivery.timeout.ms": DELIVERY_TIMEOUT_MS,
    "linger.ms": 50,
    "batch.size": 1_000_000,  # bytes per partition batch (at most the broker's message.max.bytes)
    "compression.type": "lz4",
    "queue.buffering.max.messages": 500_000,
    "queue.buffering.max.kbytes": 256 * 1024,
    "partitioner": "murmur2_random",  # the Java client's: a user_id lands where a Java producer would put it
    "delivery.report.only.error": True,  # no Python callback per record; flush() confirms the rest
}


class ShipperError(RuntimeError):
    """The shipper cannot run or could not publish; the position file is left at its last checkpoint."""


class DeliveryError(ShipperError):
    """The broker did not confirm records (delivery failed, or not within the flush timeout)."""


class ShipReconciliationError(ShipperError):
    """Lines read differ from lines published plus dead-lettered."""


@dataclass
class ShipSummary:
    lines_read: int = 0  # lines in the bytes shipped, counted as ingestion.loader.count_lines counts them
    published: int = 0  # to IMPRESSIONS_TOPIC, confirmed by the broker
    dead_lettered: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REASONS, 0))  # by reason
    files: int = 0  # files that had lines to ship
    seconds: float = 0.0

    @property
    def dead_lettered_total(self) -> int:
        return sum(self.dead_lettered.values())

    @property
    def reconciled(self) -> bool:
        return self.lines_read == self.published + self.dead_lettered_total

    @property
    def lines_per_second(self) -> float:
        return self.lines_read / self.seconds if self.seconds > 0 else 0.0


def default_paths(settings: Settings) -> str:
    """The generator's landing layout: <landing>/impressions/dt=YYYY-MM-DD/*.jsonl."""
    return str(settings.landing_dir / IMPRESSIONS.landing_subdir / "dt=*" / IMPRESSIONS.file_glob)


def ship_impressions(settings: Settings, *, follow: bool = False, paths: str | None = None) -> ShipSummary:
    """Publish the impression lines of the files matching `paths` (a glob; default: the landing layout) to
    Kafka, resuming at the saved positions. Bounded (default): everything there now, then return. follow=True:
    until SIGTERM or Ctrl-C. Raises ShipperError (DeliveryError, ShipReconciliationError) on failure."""
    shipper = ImpressionShipper(settings, paths=paths)
    with _stop_on_signals(shipper):
        return shipper.run(follow=follow)


class ImpressionShipper:
    """The shipper with every knob (tests and benchmarks turn them); `ship_impressions` runs one with the defaults."""

    def __init__(
        self,
        settings: Settings,
        *,
        paths: str | None = None,
        producer_config: dict[str, Any] | None = None,
        poll_interval_s: float = POLL_INTERVAL_S,
        checkpoint_interval_s: float = CHECKPOINT_INTERVAL_S,
        rotate_wait_s: float = ROTATE_WAIT_S,
        chunk_bytes: int = CHUNK_BYTES,
    ) -> None:
        self.settings = settings
        self.pattern = paths or default_paths(settings)
        self.position_file = settings.streaming_dir / POSITION_FILE
        self.poll_interval_s = poll_interval_s
        self.checkpoint_interval_s = checkpoint_interval_s
        self.rotate_wait_s = rotate_wait_s
        self.chunk_bytes = chunk_bytes
        self.producer_config = {
            **PRODUCER_CONFIG,
            **(producer_config or {}),
            **client_config(settings, KafkaUser.SHIPPER),
            "on_delivery": self._on_delivery,
            "error_cb": self._on_error,
        }
        timeout_ms = self.producer_config.get("delivery.timeout.ms") or self.producer_config.get("message.timeout.ms")
        self.flush_timeout_s = int(timeout_ms or DELIVERY_TIMEOUT_MS) / 1000 + 30
        self._stop = threading.Event()
        self._failures: list[str] = []
        self._failed = 0
        self._saved_positions: dict[FileId, Position] | None = None
        self._last_client_error: str | None = None

    def stop(self) -> None:
        """End the run after the chunk being published (safe from a signal handler or another thread)."""
        self._stop.set()

    def run(self, *, follow: bool = False) -> ShipSummary:
        """Ship until done (bounded) or stopped (follow); see the module's docstring."""
        started = time.monotonic()
        self._failures, self._failed, self._saved_positions = [], 0, None
        summary = ShipSummary()
        files: set[FileId] = set()
        producer = Producer(self.producer_config)
        self._check_topics(producer)
        tailer = Tailer(
            self.pattern,
            load_positions(self.position_file),
            chunk_bytes=self.chunk_bytes,
            rotate_wait_s=self.rotate_wait_s,
        )
        try:
            last_checkpoint = time.monotonic()
            while not self._stop.is_set():
                for chunk in tailer.poll(final=not follow):
                    self._publish(producer, chunk, summary)
                    tailer.done(chunk)
                    files.add(chunk.file_id)
                    if time.monotonic() - last_checkpoint >= self.checkpoint_interval_s:
                        self._checkpoint(producer, tailer, summary)
                        last_checkpoint = time.monotonic()
                    if self._stop.is_set():
                        break
                if not follow:
                    break
                self._checkpoint(producer, tailer, summary)
                last_checkpoint = time.monotonic()
                self._stop.wait(self.poll_interval_s)
            self._checkpoint(producer, tailer, summary)
        except BaseException:
            # Unconfirmed records are dropped from the queue; their lines stay after the saved positions.
            producer.purge()
            producer.flush(0)
            raise
        finally:
            tailer.close()
        summary.files = len(files)
        summary.seconds = time.monotonic() - started
        return summary

    # --- publishing ---

    def _publish(self, producer: Producer, chunk: Chunk, summary: ShipSummary) -> None:
        """Produce every line of a chunk; the hot loop of the shipper."""
        lines = chunk.lines
        user_ids = _CANONICAL_LINE.findall(chunk.data)  # the user_id of each canonical line, b"" for the others
        if len(user_ids) != len(lines):
            raise AssertionError(f"{chunk.path}: {len(lines)} lines but {len(user_ids)} pattern matches")
        headers = _headers(chunk.path)
        produce = producer.produce
        topic = IMPRESSIONS_TOPIC.name
        published = 0
        for line, user_id in zip(lines, user_ids, strict=True):
            key: bytes | str | None = user_id
            if not user_id:
                verdict = classify_line(line)
                if verdict.reason is not None:
                    dlq_headers = [*headers, (DLQ_REASON_HEADER, verdict.reason.encode())]
                    self._produce(producer, IMPRESSIONS_DLQ_TOPIC.name, line, None, dlq_headers)
                    summary.dead_lettered[verdict.reason] += 1
                    continue
                key = verdict.user_id
            try:
                produce(topic, line, key, headers=headers)
            except BufferError:
                self._produce(producer, topic, line, key, headers)
            published += 1
        summary.published += published
        summary.lines_read += len(lines)  # the tailer splits lines as ingestion.loader.count_lines counts them
        producer.poll(0)  # serve delivery reports (failures only) and errors
        self._raise_on_failures()

    def _produce(
        self, producer: Producer, topic: str, value: bytes, key: bytes | str | None, headers: list[tuple[str, bytes]]
    ) -> None:
        """produce(), waiting for room while the local queue is full."""
        while True:
            try:
                producer.produce(topic, value, key, headers=headers)
                return
            except BufferError:
                producer.poll(0.05)
                self._raise_on_failures()

    def _checkpoint(self, producer: Producer, tailer: Tailer, summary: ShipSummary) -> None:
        """Wait until the broker has confirmed every record produced so far, check that every line read was
        published or dead-lettered, then save the positions."""
        remaining = producer.flush(self.flush_timeout_s)
        self._raise_on_failures()
        if remaining:
            raise DeliveryError(f"{remaining} records not confirmed by the broker after {self.flush_timeout_s:.0f} s")
        if not summary.reconciled:
            raise ShipReconciliationError(
                f"read {summary.lines_read} lines but published {summary.published} and dead-lettered "
                f"{summary.dead_lettered_total}"
            )
        positions = tailer.positions()
        if positions != self._saved_positions:  # lines shipped, or files found, rotated away or truncated
            save_positions(self.position_file, positions)
            self._saved_positions = positions

    def _check_topics(self, producer: Producer) -> None:
        bootstrap = self.settings.kafka_bootstrap_servers
        try:
            topics = producer.list_topics(timeout=15).topics
        except KafkaException as error:
            # A refused login shows only in the error callback; the metadata request just times out.
            reason = self._last_client_error or error.args[0]
            raise ShipperError(f"cannot reach Kafka at {bootstrap}: {reason}") from error
        missing = [t.name for t in (IMPRESSIONS_TOPIC, IMPRESSIONS_DLQ_TOPIC) if t.name not in topics]
        if missing:
            raise ShipperError(f"topics missing on {bootstrap}: {', '.join(missing)} (`adx stack up` creates them)")

    # --- delivery reports (called from poll() and flush(), in this thread) ---

    def _on_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self._failed += 1
            if len(self._failures) < 5:
                self._failures.append(f"{message.topic()}: {error.str()}")

    def _on_error(self, error: KafkaError) -> None:
        if error.fatal():
            self._failed += 1
            self._failures.append(f"fatal producer error: {error.str()}")
        else:  # the client retries (broker down, connection reset...): records fail only at the delivery timeout
            self._last_client_error = error.str()
            log.warning("kafka: %s", error.str())

    def _raise_on_failures(self) -> None:
        if self._failed:
            raise DeliveryError(f"{self._failed} records not delivered; first: {'; '.join(self._failures)}")


def _headers(path: Path) -> list[tuple[str, bytes]]:
    """SOURCE_FILE and INGEST_DATE: the file's name, and its dt= folder's date, else today's UTC date."""
    match = DT_FOLDER.match(path.parent.name)
    ingest_date = match.group(1) if match else datetime.now(UTC).date().isoformat()
    return [(SOURCE_FILE_HEADER, path.name.encode()), (INGEST_DATE_HEADER, ingest_date.encode())]


@contextlib.contextmanager
def _stop_on_signals(shipper: ImpressionShipper) -> Iterator[None]:
    """SIGTERM and SIGINT stop the run cleanly instead of killing it (main thread only: Python's rule)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: object) -> None:
        log.info("%s: stopping after the current chunk", signal.Signals(signum).name)
        shipper.stop()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            if old is not None:  # None: a handler not set from Python, which cannot be put back
                signal.signal(sig, old)


# --- which lines Spark would parse: the loader's rules, `try_parse_json(payload)` then `ltrim(payload)` ---


class LineVerdict(NamedTuple):
    reason: str | None  # None: a JSON object, published
    user_id: str | None  # the object's user_id if it is a string


MAX_NUMBER_DIGITS = 1000  # Jackson's StreamReadConstraints: longer numbers make parse_json fail
MAX_NESTING_DEPTH = 1000  # ... and deeper nesting
_JSON_WHITESPACE = " \t\n\r"


def _canonical_line_pattern() -> re.Pattern[bytes]:
    """One match per line of a chunk: the user_id of a line that is certainly a valid JSON object with unique
    keys, else b"". Certain: the contract's layout (docs/data_contract.md, the writers' `impression_line`): the
    impression fields in their order, separated by ", " and ": ", each value a string without escapes or control
    characters, an integer of up to 18 digits, null, true or false. (Optional whitespace around the separators
    costs about half as much again.) Lines laid out otherwise are classified exactly by classify_line, slower."""
    string = rb'"[^"\\\x00-\x1f]*+"'
    value = rb"(?:" + string + rb"|-?+(?:0|[1-9][0-9]{0,17}+)|null|true|false)"
    user_id = rb'"([\x20\x21\x23-\x5b\x5d-\x7e]++)"'  # non-empty printable ASCII: the key bytes classify_line gives
    pairs = b", ".join(
        b'"' + re.escape(column.encode()) + b'": ' + (user_id if column == "user_id" else value)
        for column in IMPRESSIONS.columns
    )
    # After the closing brace anything may follow: parse_json reads one value and ignores the rest.
    return re.compile(rb"^(?:\{" + pairs + rb"\}[^\n]*+|[^\n]*+)$", re.MULTILINE)


_CANONICAL_LINE = _canonical_line_pattern()


def classify_line(line: bytes) -> LineVerdict:
    """What the batch loader does with a line: quarantine it as `malformed_json` when Spark's try_parse_json
    gives null, as `not_a_json_object` when it parses but does not start with "{" after ltrim (spaces only),
    else land it.

    Spark's parse_json (Jackson) differs from Python's json.loads, and Spark's rules win: it reads the first
    JSON value and ignores whatever follows (`{"a": 1} x` parses), but rejects NaN and Infinity, duplicate keys
    (also nested), lone surrogates (`"\\ud800"`), numbers of more than 1000 digits and nesting deeper than 1000;
    a number at the top level must be followed by whitespace or the end, and true/false/null by no letter or
    digit. Invalid UTF-8 is replaced by U+FFFD, as Spark does when it turns the line into a string.
    """
    text = line.decode("utf-8", "replace")
    start = len(text) - len(text.lstrip(_JSON_WHITESPACE))
    try:
        value, end = _scan_value(text, start)  # StopIteration when no value starts there (a blank line too)
        _check_after_top_level_scalar(text, start, end)
        if "\\u" in text or len(text) > 2 * MAX_NESTING_DEPTH:
            _check_nesting_and_surrogates(value)
    except (ValueError, StopIteration, RecursionError):
        return LineVerdict(MALFORMED_JSON, None)
    if not text.lstrip(" ").startswith("{"):
        return LineVerdict(NOT_A_JSON_OBJECT, None)
    user_id = value.get("user_id")
    return LineVerdict(None, user_id if isinstance(user_id, str) else None)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("duplicate key")
    return obj


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def _digits(text: str) -> int:
    return sum(character.isdigit() for character in text)


def _parse_int(text: str) -> int:
    if len(text) > MAX_NUMBER_DIGITS and _digits(text) > MAX_NUMBER_DIGITS:
        raise ValueError("number too long")
    return int(text)


def _parse_float(text: str) -> float:
    if len(text) > MAX_NUMBER_DIGITS and _digits(text) > MAX_NUMBER_DIGITS:
        raise ValueError("number too long")
    return float(text)


_DECODER = json.JSONDecoder(
    object_pairs_hook=_unique_keys, parse_constant=_reject_constant, parse_int=_parse_int, parse_float=_parse_float
)


def _scan_value(text: str, start: int) -> tuple[Any, int]:
    """The first JSON value at `start` and where it ends."""
    try:
        return _DECODER.scan_once(text, start)
    except RecursionError:
        # CPython's recursion limit (all frames) can stop short of Jackson's 1000 levels: try with room for them.
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(limit + 2 * MAX_NESTING_DEPTH)
        try:
            return _DECODER.scan_once(text, start)
        finally:
            sys.setrecursionlimit(limit)


def _check_after_top_level_scalar(text: str, start: int, end: int) -> None:
    """Jackson's checks after a top-level number (whitespace must follow) or true/false/null (no identifier
    character may follow); after a string, array or object nothing is checked."""
    if end >= len(text):
        return
    first, after = text[start], text[end]
    if first in "-0123456789" and after not in " \t\r\n":
        raise ValueError("a top-level number must be followed by whitespace")
    if first in "tfn" and after >= "0" and after not in "]}" and _is_java_identifier_part(after):
        raise ValueError(f"unrecognised token {text[start : end + 1]!r}")


def _is_java_identifier_part(character: str) -> bool:
    """Java's Character.isJavaIdentifierPart, for the characters Jackson looks at after a literal."""
    return unicodedata.category(character) in _JAVA_IDENTIFIER_CATEGORIES or "\x7f" <= character <= "\x9f"


_JAVA_IDENTIFIER_CATEGORIES = frozenset({"Lu", "Ll", "Lt", "Lm", "Lo", "Nl", "Nd", "Sc", "Pc", "Mn", "Mc", "Cf"})


def _check_nesting_and_surrogates(value: Any) -> None:
    """Raise ValueError for nesting deeper than Jackson's limit or a string with a lone surrogate."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_NESTING_DEPTH:
                raise ValueError("nested too deeply")
            if isinstance(item, dict):
                for key in item:
                    key.encode("utf-8")  # UnicodeEncodeError (a ValueError) for a lone surrogate
                stack.extend((child, depth + 1) for child in item.values())
            else:
                stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            item.encode("utf-8")
