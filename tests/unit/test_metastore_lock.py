"""One process at a time on the embedded Derby metastore: the second waits, then fails naming the holder."""

import subprocess
import sys
import textwrap
import time

import pytest

from ingestion.metastore_lock import MetastoreBusyError, hold_embedded_metastore, lock_path
from ingestion.settings import Settings

HOLDER = textwrap.dedent(
    """
    import sys, time
    from ingestion.metastore_lock import hold_embedded_metastore
    from ingestion.settings import Settings
    hold_embedded_metastore(Settings(data_dir=sys.argv[1]))
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
    """
)


def _start_holder(data_dir, seconds: float) -> subprocess.Popen:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(data_dir), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_process_fails_after_its_wait_naming_the_holder(tmp_path):
    holder = _start_holder(tmp_path, 30)
    try:
        started = time.monotonic()
        with pytest.raises(MetastoreBusyError, match=rf"in use by process {holder.pid} since more than 1 s"):
            hold_embedded_metastore(Settings(data_dir=tmp_path), timeout_seconds=1)
        assert time.monotonic() - started >= 1
    finally:
        holder.kill()
        holder.wait()


def test_a_waiting_process_gets_the_metastore_when_the_holder_exits(tmp_path, capfd):
    holder = _start_holder(tmp_path, 2)
    hold_embedded_metastore(Settings(data_dir=tmp_path), timeout_seconds=60)
    assert holder.wait() == 0
    assert f"in use by process {holder.pid}" in capfd.readouterr().err
    assert lock_path(Settings(data_dir=tmp_path)).read_text().strip() == str(__import__("os").getpid())
    hold_embedded_metastore(Settings(data_dir=tmp_path), timeout_seconds=0)  # this process holds it: no-op


def test_a_shared_postgres_metastore_takes_no_lock(tmp_path):
    holder = _start_holder(tmp_path, 30)
    try:
        settings = Settings(data_dir=tmp_path, metastore_url="jdbc:postgresql://127.0.0.1:1/metastore")
        hold_embedded_metastore(settings, timeout_seconds=0)  # returns at once although the file is locked
    finally:
        holder.kill()
        holder.wait()
