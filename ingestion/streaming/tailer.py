"""Tail JSON-lines log files like Fluentd's `in_tail`: a path glob, a position file, rotation and truncation.

The tailer reads the files matching a glob and hands out their complete lines in chunks; it knows nothing of
Kafka. Which lines have been dealt with is the caller's business: the offset of a file moves past a chunk only
when the caller says it is done with it (`done(chunk)`), and `positions()` is what the caller saves with
`save_positions()` once everything up to those offsets is safe elsewhere.

Files are identified by (device, inode), as Fluentd's `pos_file` does, so that:
- a file renamed within the glob keeps its position (its lines are not read twice);
- a file renamed out of the glob or deleted (a rotated log) is read to its end through the descriptor that is
  still open, for up to `rotate_wait_s` in follow mode (the writer may still append to it), then closed;
- a new file at the same path is a new identity and is read from its first byte;
- a file that became shorter than its position, or whose first bytes changed (copytruncate, or an inode number
  reused by a new file), is read again from its first byte.

Lines: every `\\n`-terminated line, with the `\\n` and one `\\r` before it removed (`spark.read.text` strips `\\n`
and `\\r\\n` the same way); blank lines are lines. A final line without `\\n` is still being written in follow
mode and waits for its newline. In bounded mode (`final=True`) it is handed out: the batch loader counts it as a
record (`ingestion.loader.count_lines`), and both paths must see the same records in the same files. A line the
writer completes after a bounded run has shipped its first part arrives as a second, broken line.

Not handled: a lone `\\r` inside a line is part of the line (Spark's text reader would split there, but the
loader's line count does not, so the loader itself would not reconcile such a file). With copytruncate, the
glob must not match the copies (they are new identities and would be read again in full).
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import logging
import os
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

FileId = tuple[int, int]  # (st_dev, st_ino)

CHUNK_BYTES = 8 << 20  # bytes read at a time; a longer line is read whole
HEAD_BYTES = 256  # the first bytes of a file, fingerprinted to tell a rewritten file from the one we read
ROTATE_WAIT_S = 5.0  # follow mode: how long a rotated-away file is still read (Fluentd's rotate_wait)
POSITION_FILE_VERSION = 1


@dataclass(frozen=True)
class Position:
    """How far a file has been read: `offset` bytes, all of them complete lines (in bounded mode also the final
    unterminated one). `head` is the SHA-256 of its first min(offset, HEAD_BYTES) bytes."""

    path: str
    offset: int
    head: str


@dataclass(frozen=True)
class Chunk:
    """Consecutive lines of one file, read from `start_offset` to `end_offset`."""

    path: Path
    file_id: FileId
    data: bytes  # the lines as in the file, separated by b"\n", without the last newline
    lines: list[bytes]  # data split into lines, each without its "\n" or "\r\n"
    start_offset: int
    end_offset: int  # after the last line's newline (or the end of a final unterminated line)


@dataclass
class _TrackedFile:
    file_id: FileId
    path: Path
    fd: int | None  # None once a bounded read has finished it
    offset: int
    head: str  # SHA-256 of the first min(offset, HEAD_BYTES) bytes
    head_length: int
    gone_since: float | None = None  # when it was first missing from the glob (rotated away or deleted)


# --- the position file ---


def load_positions(path: Path) -> dict[FileId, Position]:
    """The positions saved by `save_positions`; none if the file does not exist yet."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    if document.get("version") != POSITION_FILE_VERSION:
        raise ValueError(f"{path}: unknown position file version {document.get('version')!r}")
    positions = {}
    for key, entry in document["files"].items():
        device, inode = (int(part) for part in key.split(":"))
        positions[(device, inode)] = Position(path=entry["path"], offset=int(entry["offset"]), head=entry["head"])
    return positions


def save_positions(path: Path, positions: dict[FileId, Position]) -> None:
    """Write the position file atomically: a temporary file in the same folder, fsync, then rename over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "version": POSITION_FILE_VERSION,
        "files": {
            f"{device}:{inode}": {"path": p.path, "offset": p.offset, "head": p.head}
            for (device, inode), p in sorted(positions.items(), key=lambda item: item[1].path)
        },
    }
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(document, out, indent=2)
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


# --- the tailer ---


class Tailer:
    """Reads the files matching `pattern` (a glob; `**` matches folders recursively), resuming at `positions`."""

    def __init__(
        self,
        pattern: str,
        positions: dict[FileId, Position] | None = None,
        *,
        chunk_bytes: int = CHUNK_BYTES,
        rotate_wait_s: float = ROTATE_WAIT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pattern = pattern
        self.chunk_bytes = chunk_bytes
        self.rotate_wait_s = rotate_wait_s
        self._clock = clock
        self._saved = dict(positions or {})  # positions of a previous run, used when a file is first seen
        self._files: dict[FileId, _TrackedFile] = {}
        self.restarts = 0  # files read again from their first byte (truncated or rewritten)

    def poll(self, *, final: bool = False) -> Iterator[Chunk]:
        """Every chunk of lines that can be read now, file by file: first the files already open (a rotated-away
        file before the new file at its path), then new files in glob order.

        final=False (follow mode): complete lines only; rotated-away files are read for `rotate_wait_s` more.
        final=True (bounded mode): also each file's final unterminated line; every file is finished and closed.
        """
        present = self._scan()
        for file_id in list(self._files):
            tracked = self._files[file_id]
            if file_id in present:
                tracked.path = present[file_id]  # it may have been renamed within the glob
                tracked.gone_since = None
                if tracked.fd is None and not self._reopen(tracked):
                    continue
                self._restart_if_rewritten(tracked)
                yield from self._read(tracked, final=final)
                if final:
                    self._close(tracked)
            else:
                if tracked.gone_since is None:
                    tracked.gone_since = self._clock()
                finished = final or self._clock() - tracked.gone_since >= self.rotate_wait_s
                if tracked.fd is not None:
                    yield from self._read(tracked, final=finished)
                if finished:
                    log.info("%s (inode %d) rotated away or deleted: read to its end", tracked.path, file_id[1])
                    self._close(tracked)
                    del self._files[file_id]
        for file_id, path in present.items():
            if file_id in self._files:
                continue
            tracked = self._open(file_id, path)
            if tracked is None:
                continue
            self._files[file_id] = tracked
            yield from self._read(tracked, final=final)
            if final:
                self._close(tracked)

    def done(self, chunk: Chunk) -> None:
        """The caller has dealt with every line of `chunk`: the file's position moves past it. Chunks of a file
        must be done in the order they were handed out."""
        tracked = self._files[chunk.file_id]
        if chunk.start_offset != tracked.offset:
            raise ValueError(
                f"{chunk.path}: chunk at byte {chunk.start_offset} done, but the file stands at byte {tracked.offset}"
            )
        tracked.offset = chunk.end_offset
        self._update_head(tracked)

    def positions(self) -> dict[FileId, Position]:
        """Where every known file stands: past the chunks the caller has done."""
        return {file_id: Position(path=str(f.path), offset=f.offset, head=f.head) for file_id, f in self._files.items()}

    def close(self) -> None:
        for tracked in self._files.values():
            self._close(tracked)

    def __enter__(self) -> Tailer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- files ---

    def _scan(self) -> dict[FileId, Path]:
        """The regular files matching the glob now, by identity, in path order."""
        present: dict[FileId, Path] = {}
        for name in sorted(glob.glob(self.pattern, recursive=True)):
            try:
                info = os.stat(name)
            except FileNotFoundError:  # removed between glob and stat
                continue
            if stat.S_ISREG(info.st_mode):
                present.setdefault((info.st_dev, info.st_ino), Path(name))
        return present

    def _open(self, file_id: FileId, path: Path) -> _TrackedFile | None:
        """Open a file seen for the first time in this run, at its saved position if that is still its content."""
        fd = self._open_identity(file_id, path)
        if fd is None:
            return None
        tracked = _TrackedFile(file_id=file_id, path=path, fd=fd, offset=0, head=_sha256(b""), head_length=0)
        saved = self._saved.pop(file_id, None)
        if saved is not None and saved.offset > 0:
            tracked.offset = saved.offset
            tracked.head = saved.head
            tracked.head_length = min(saved.offset, HEAD_BYTES)
            self._restart_if_rewritten(tracked)
        return tracked

    def _reopen(self, tracked: _TrackedFile) -> bool:
        tracked.fd = self._open_identity(tracked.file_id, tracked.path)
        return tracked.fd is not None

    @staticmethod
    def _open_identity(file_id: FileId, path: Path) -> int | None:
        """A descriptor of `path` if it is still the file `file_id`, else None."""
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        info = os.fstat(fd)
        if (info.st_dev, info.st_ino) != file_id:  # replaced between the scan and the open: next poll
            os.close(fd)
            return None
        return fd

    @staticmethod
    def _close(tracked: _TrackedFile) -> None:
        if tracked.fd is not None:
            os.close(tracked.fd)
            tracked.fd = None

    def _restart_if_rewritten(self, tracked: _TrackedFile) -> None:
        """Back to the first byte if the file is now shorter than its position (truncated) or its first bytes
        are not those read before (truncated and written again, or a new file that got a reused inode)."""
        if tracked.offset == 0 or tracked.fd is None:
            return
        size = os.fstat(tracked.fd).st_size
        head = os.pread(tracked.fd, tracked.head_length, 0)
        if size < tracked.offset or _sha256(head) != tracked.head:
            log.warning("%s was truncated or rewritten: reading it again from its first byte", tracked.path)
            tracked.offset = 0
            tracked.head, tracked.head_length = _sha256(b""), 0
            self.restarts += 1

    @staticmethod
    def _update_head(tracked: _TrackedFile) -> None:
        """Fingerprint the first min(offset, HEAD_BYTES) bytes (fixed once HEAD_BYTES have been read)."""
        wanted = min(tracked.offset, HEAD_BYTES)
        if wanted != tracked.head_length and tracked.fd is not None:
            tracked.head = _sha256(os.pread(tracked.fd, wanted, 0))
            tracked.head_length = wanted

    # --- lines ---

    def _read(self, tracked: _TrackedFile, *, final: bool) -> Iterator[Chunk]:
        """Chunks from the file's offset to its end (the offset itself moves in `done`)."""
        start = tracked.offset
        while True:
            chunk = self._next_chunk(tracked, start, final=final)
            if chunk is None:
                return
            yield chunk
            start = chunk.end_offset

    def _next_chunk(self, tracked: _TrackedFile, start: int, *, final: bool) -> Chunk | None:
        assert tracked.fd is not None
        if os.fstat(tracked.fd).st_size <= start:
            return None
        data = os.pread(tracked.fd, self.chunk_bytes, start)
        cut = data.rfind(b"\n")
        while cut < 0:  # no newline in a whole chunk: a long line, read on until its end
            more = os.pread(tracked.fd, self.chunk_bytes, start + len(data))
            if not more:
                break
            searched = len(data)
            data += more
            cut = data.find(b"\n", searched)
        if cut >= 0:
            body, end = data[:cut], start + cut + 1
        elif final and data:
            body, end = data, start + len(data)  # the final line has no newline: bounded mode ships it
        else:
            return None  # a line still being written
        lines = body.split(b"\n")
        if b"\r" in body:
            lines = [line[:-1] if line.endswith(b"\r") else line for line in lines]
        return Chunk(
            path=tracked.path,
            file_id=tracked.file_id,
            data=body,
            lines=lines,
            start_offset=start,
            end_offset=end,
        )


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
