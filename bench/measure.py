"""Helpers shared by the bench suites: a measurement in a process of its own, and the time of each dbt node."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ingestion.settings import PROJECT_DIR


def run_json(module: str, arguments: list[str]) -> dict:
    """`python -m <module> <arguments>` in a process of its own (its own JVM and Derby metastore); the last line of
    its output is a JSON result."""
    command = [sys.executable, "-m", module, *arguments]
    output = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True, cwd=PROJECT_DIR).stdout
    return json.loads(output.strip().splitlines()[-1])


def dbt_node_seconds(run_results_file: Path = PROJECT_DIR / "target" / "run_results.json") -> list[dict]:
    """Every node of the last dbt invocation with its seconds, slowest first."""
    results = json.loads(run_results_file.read_text())["results"]
    nodes = ({"node": r["unique_id"], "seconds": r["execution_time"]} for r in results)
    return sorted(nodes, key=lambda n: -n["seconds"])
