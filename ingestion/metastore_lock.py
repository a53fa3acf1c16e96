"""One Spark process at a time on the embedded Derby metastore.

Embedded Derby admits one JVM: a second Spark process on the same metastore folder fails at its first catalog call
("Another instance of Derby may have already booted the database"). Every process that starts Spark on the
embedded warehouse (the CLI, the Airflow tasks, dbt run by Cosmos) first takes an exclusive lock on a file beside
the metastore and keeps it until the process exits, since its JVM lives that long. A second process waits its
turn instead of failing half-way. The stack's PostgreSQL metastore is shared and needs no lock.
"""

from __future__ import annotations

import fcntl
import os
import sys
import time
from pathlib import Path
from typing import IO

from ingestion.settings import Settings

POLL_SECONDS = 1.0
# Lock files this process holds, by path: the lock is the process's, taking it again is a no-op.
_held: dict[Path, IO[str]] = {}


class MetastoreBusyError(RuntimeError):
    """Another process kept the embedded metastore for longer than the wait allowed."""


def lock_path(settings: Settings) -> Path:
    return settings.data_dir / "metastore.lock"


def hold_embedded_metastore(settings: Settings, timeout_seconds: float | None = None) -> None:
    """Take the embedded metastore for the rest of this process's life; wait while another process has it.

    A no-op for a shared (PostgreSQL) metastore and when this process already holds it."""
    if not settings.metastore_is_derby:
        return
    path = lock_path(settings)
    if path in _held:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    timeout = settings.metastore_lock_timeout_seconds if timeout_seconds is None else timeout_seconds
    handle = path.open("a+")
    deadline = time.monotonic() + timeout
    announced = False
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            holder = _holder(handle)
            if time.monotonic() >= deadline:
                handle.close()
                raise MetastoreBusyError(
                    f"the embedded metastore in {settings.data_dir} is in use by process {holder} since more than "
                    f"{timeout:.0f} s (ADX_METASTORE_LOCK_TIMEOUT_SECONDS); one Spark process at a time can use it"
                ) from None
            if not announced:
                print(f"waiting for the embedded metastore, in use by process {holder} ...", file=sys.stderr)
                announced = True
            time.sleep(POLL_SECONDS)
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    _held[path] = handle


def _holder(handle: IO[str]) -> str:
    handle.seek(0)
    return handle.read().strip() or "unknown"
