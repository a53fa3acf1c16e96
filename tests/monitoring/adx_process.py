"""`adx` as an operator runs it: a command in its own process (its own JVM and Derby metastore), on the data
folder its environment names; the output is printed for the test log."""

from __future__ import annotations

import subprocess
import sys

from ingestion.settings import PROJECT_DIR

ADX = [sys.executable, "-m", "ingestion.cli"]


def adx(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([*ADX, *args], cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=900)
    print(f"$ adx {' '.join(args)}  -> exit {done.returncode}\n{done.stdout[-4000:]}\n{done.stderr[-2000:]}")
    return done
