"""The bench's peak-memory sampler sees memory held by a child process (as the Spark JVM is one), and only for the
stage it was held in."""

from __future__ import annotations

import subprocess
import sys

from bench.memory import PeakMemory

MIB = 2**20
HOLD = "import time; block = bytearray(300 * 2**20); time.sleep(1.0)"


def test_a_child_process_memory_counts_in_its_stage_only():
    peaks = PeakMemory()
    with peaks.stage("quiet"):
        subprocess.run([sys.executable, "-c", "import time; time.sleep(1.0)"], check=True)
    with peaks.stage("child holds 300 MiB"):
        subprocess.run([sys.executable, "-c", HOLD], check=True)

    assert peaks.bytes["child holds 300 MiB"] - peaks.bytes["quiet"] > 250 * MIB
