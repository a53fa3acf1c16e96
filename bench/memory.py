"""Peak resident memory of a bench stage: this process and its descendants (the Spark JVM that py4j starts),
sampled from /proc while the stage runs. Linux only, like the machines the bench runs on."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SAMPLE_SECONDS = 0.2


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of the process and all its descendants."""
    total = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            for task in Path(f"/proc/{current}/task").iterdir():
                pending.extend(int(child) for child in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            continue  # it ended between two reads
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


class PeakMemory:
    """`with peaks.stage("load"): ...` records the stage's peak in `peaks.bytes["load"]`."""

    def __init__(self) -> None:
        self.bytes: dict[str, int] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        stop = threading.Event()
        peak = tree_rss_bytes(os.getpid())

        def sample() -> None:
            nonlocal peak
            while not stop.wait(SAMPLE_SECONDS):
                peak = max(peak, tree_rss_bytes(os.getpid()))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            yield
        finally:
            stop.set()
            sampler.join()
            self.bytes[name] = max(peak, tree_rss_bytes(os.getpid()))
