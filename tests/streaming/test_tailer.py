"""The tailer on real files: complete lines, the final unterminated line, positions, rotation and truncation."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ingestion.loader import count_lines
from ingestion.streaming.tailer import Chunk, Tailer, load_positions, save_positions


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _drain(tailer: Tailer, *, final: bool) -> list[tuple[str, bytes]]:
    """(file name, line) of every line handed out, each chunk done as a caller does it."""
    lines = []
    for chunk in tailer.poll(final=final):
        lines.extend((chunk.path.name, line) for line in chunk.lines)
        tailer.done(chunk)
    return lines


def _append(path: Path, data: bytes) -> None:
    with path.open("ab") as handle:
        handle.write(data)


def test_follow_mode_hands_out_complete_lines_and_waits_for_the_newline(tmp_path):
    log = tmp_path / "app.log"
    log.write_bytes(b'{"a": 1}\n{"a": 2}\n{"a": ')
    tailer = Tailer(str(tmp_path / "*.log"))
    assert _drain(tailer, final=False) == [("app.log", b'{"a": 1}'), ("app.log", b'{"a": 2}')]
    assert _drain(tailer, final=False) == []  # the partial line is not handed out
    _append(log, b'3}\n{"a": 4}\n')
    assert _drain(tailer, final=False) == [("app.log", b'{"a": 3}'), ("app.log", b'{"a": 4}')]
    assert tailer.positions()[_file_id(log)].offset == log.stat().st_size
    tailer.close()


def test_bounded_mode_ships_the_final_unterminated_line_as_the_loader_counts_it(tmp_path):
    files = {
        "terminated.jsonl": b"a\nb\n",
        "unterminated.jsonl": b"a\nb\nc",
        "blank_lines.jsonl": b"\n\na\n\n",
        "crlf.jsonl": b"a\r\nb\r\n\r\nc\r",
        "empty.jsonl": b"",
        "only_partial.jsonl": b"x",
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    with Tailer(str(tmp_path / "*.jsonl")) as tailer:
        lines = _drain(tailer, final=True)
    by_file = {name: [line for file, line in lines if file == name] for name in files}
    assert by_file == {
        "terminated.jsonl": [b"a", b"b"],
        "unterminated.jsonl": [b"a", b"b", b"c"],
        "blank_lines.jsonl": [b"", b"", b"a", b""],
        "crlf.jsonl": [b"a", b"b", b"", b"c"],  # "\r\n" and a final "\r" are stripped, as spark.read.text does
        "empty.jsonl": [],
        "only_partial.jsonl": [b"x"],
    }
    for name in files:
        assert len(by_file[name]) == count_lines(tmp_path / name, skip_header=False), name


def test_a_line_longer_than_a_chunk_is_read_whole(tmp_path):
    long_line = b"x" * 10_000
    (tmp_path / "a.log").write_bytes(b"short\n" + long_line + b"\nend\n")
    with Tailer(str(tmp_path / "*.log"), chunk_bytes=1024) as tailer:
        lines = [line for _, line in _drain(tailer, final=False)]
    assert lines == [b"short", long_line, b"end"]


def test_chunks_cover_the_file_and_join_back_to_it(tmp_path):
    data = b"".join(b'{"n": %d}\n' % n for n in range(5000))
    (tmp_path / "a.log").write_bytes(data)
    with Tailer(str(tmp_path / "*.log"), chunk_bytes=4096) as tailer:
        chunks: list[Chunk] = []
        for chunk in tailer.poll(final=True):
            chunks.append(chunk)
            tailer.done(chunk)
    assert len(chunks) > 10
    assert b"".join(c.data + b"\n" for c in chunks) == data
    assert all(a.end_offset == b.start_offset for a, b in zip(chunks, chunks[1:], strict=False))
    assert sum(len(c.lines) for c in chunks) == 5000


def test_positions_move_only_past_chunks_the_caller_has_done(tmp_path):
    log = tmp_path / "a.log"
    log.write_bytes(b"1\n2\n3\n")
    tailer = Tailer(str(tmp_path / "*.log"), chunk_bytes=2)  # one line per chunk
    chunks = tailer.poll(final=False)
    first = next(chunks)
    assert tailer.positions()[_file_id(log)].offset == 0
    tailer.done(first)
    assert tailer.positions()[_file_id(log)].offset == 2
    second = next(chunks)
    third = next(chunks)
    with pytest.raises(ValueError, match="stands at byte 2"):
        tailer.done(third)
    tailer.done(second)
    tailer.done(third)
    assert tailer.positions()[_file_id(log)].offset == 6
    tailer.close()


def test_a_restart_resumes_at_the_saved_position(tmp_path):
    log = tmp_path / "a.log"
    positions_file = tmp_path / "state" / "pos.json"
    log.write_bytes(b"1\n2\n")
    with Tailer(str(tmp_path / "*.log")) as tailer:
        assert [line for _, line in _drain(tailer, final=False)] == [b"1", b"2"]
        save_positions(positions_file, tailer.positions())
    _append(log, b"3\n")
    with Tailer(str(tmp_path / "*.log"), load_positions(positions_file)) as tailer:
        assert [line for _, line in _drain(tailer, final=False)] == [b"3"]


def test_the_position_file_is_json_keyed_by_device_and_inode_and_written_atomically(tmp_path):
    log = tmp_path / "a.log"
    log.write_bytes(b"1\n")
    positions_file = tmp_path / "pos.json"
    with Tailer(str(log)) as tailer:
        _drain(tailer, final=False)
        save_positions(positions_file, tailer.positions())
        save_positions(positions_file, tailer.positions())  # replaced, not appended to
    info = log.stat()
    document = json.loads(positions_file.read_text())
    assert document["version"] == 1
    assert list(document["files"]) == [f"{info.st_dev}:{info.st_ino}"]
    assert document["files"][f"{info.st_dev}:{info.st_ino}"]["path"] == str(log)
    assert document["files"][f"{info.st_dev}:{info.st_ino}"]["offset"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.log", "pos.json"]  # no temporary file left
    assert load_positions(tmp_path / "missing.json") == {}


def test_rotation_finishes_the_old_file_then_reads_the_new_one_from_its_start(tmp_path):
    clock = FakeClock()
    log = tmp_path / "access.log"
    log.write_bytes(b"old-1\nold-2\n")
    tailer = Tailer(str(log), rotate_wait_s=5.0, clock=clock)
    assert [line for _, line in _drain(tailer, final=False)] == [b"old-1", b"old-2"]

    os.rename(log, tmp_path / "access.log.1")  # logrotate: rename away, create anew
    _append(tmp_path / "access.log.1", b"old-3\nold-4")  # the server still writes to its open descriptor
    log.write_bytes(b"new-1\n")
    assert _drain(tailer, final=False) == [("access.log", b"old-3"), ("access.log", b"new-1")]

    _append(tmp_path / "access.log.1", b"-end\n")
    clock.now = 4.0
    assert _drain(tailer, final=False) == [("access.log", b"old-4-end")]
    _append(tmp_path / "access.log.1", b"old-5")
    clock.now = 6.0  # rotate_wait is over: the old file is finished, its last line without newline included
    assert _drain(tailer, final=False) == [("access.log", b"old-5")]
    assert list(tailer.positions()) == [_file_id(log)]  # the old file is forgotten
    _append(tmp_path / "access.log.1", b"\nlost\n")
    _append(log, b"new-2\n")
    assert _drain(tailer, final=False) == [("access.log", b"new-2")]
    tailer.close()


def test_a_file_renamed_within_the_glob_keeps_its_position(tmp_path):
    (tmp_path / "app.log").write_bytes(b"1\n2\n")
    tailer = Tailer(str(tmp_path / "app.log*"))
    assert len(_drain(tailer, final=False)) == 2
    os.rename(tmp_path / "app.log", tmp_path / "app.log.1")
    _append(tmp_path / "app.log.1", b"3\n")
    (tmp_path / "app.log").write_bytes(b"a\n")
    assert sorted(_drain(tailer, final=False)) == [("app.log", b"a"), ("app.log.1", b"3")]
    tailer.close()


def test_a_truncated_file_is_read_again_from_its_start(tmp_path):
    log = tmp_path / "app.log"
    log.write_bytes(b"first line\nsecond line\n")
    tailer = Tailer(str(log))
    assert len(_drain(tailer, final=False)) == 2
    with log.open("r+b") as handle:  # copytruncate
        handle.truncate(0)
    _append(log, b"after\n")
    assert _drain(tailer, final=False) == [("app.log", b"after")]
    assert tailer.restarts == 1
    tailer.close()


def test_a_file_truncated_and_grown_past_its_position_is_read_again(tmp_path):
    log = tmp_path / "app.log"
    log.write_bytes(b"1\n2\n")
    tailer = Tailer(str(log))
    assert len(_drain(tailer, final=False)) == 2
    with log.open("r+b") as handle:
        handle.truncate(0)
    _append(log, b"after truncation, longer than before\n")  # same inode, bigger than the old position
    assert _drain(tailer, final=False) == [("app.log", b"after truncation, longer than before")]
    tailer.close()


def test_a_saved_position_is_not_applied_to_other_content_with_the_same_identity(tmp_path):
    log = tmp_path / "app.log"
    log.write_bytes(b"one\ntwo\n")
    positions_file = tmp_path / "pos.json"
    with Tailer(str(log)) as tailer:
        _drain(tailer, final=False)
        save_positions(positions_file, tailer.positions())
    with log.open("r+b") as handle:  # rewritten in place while the shipper was down (as an inode reused)
        handle.write(b"ONE\nTWO\nthree\n")
    with Tailer(str(log), load_positions(positions_file)) as tailer:
        assert [line for _, line in _drain(tailer, final=False)] == [b"ONE", b"TWO", b"three"]


def test_files_are_found_by_a_recursive_glob_in_path_order(tmp_path):
    for day in ("dt=2026-11-02", "dt=2026-11-01"):
        (tmp_path / day).mkdir()
        for server in ("web-02", "web-01"):
            (tmp_path / day / f"{server}.jsonl").write_bytes(f"{day}/{server}\n".encode())
    (tmp_path / "dt=2026-11-01" / "ignored.txt").write_bytes(b"no\n")
    with Tailer(str(tmp_path / "**" / "*.jsonl")) as tailer:
        lines = [line for _, line in _drain(tailer, final=True)]
    assert lines == [
        b"dt=2026-11-01/web-01",
        b"dt=2026-11-01/web-02",
        b"dt=2026-11-02/web-01",
        b"dt=2026-11-02/web-02",
    ]


def _file_id(path: Path) -> tuple[int, int]:
    info = path.stat()
    return info.st_dev, info.st_ino
