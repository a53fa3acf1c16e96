"""promtool (Debian package `prometheus`, installed by `make prometheus`): Prometheus's own rule checker and
rule-test runner, and through a recording rule its PromQL parser."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest


def promtool() -> str:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool is not on the PATH: `make prometheus` installs it (Debian package prometheus)")
    return binary


def run_promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def check_expressions(expressions: list[str], folder: Path) -> subprocess.CompletedProcess:
    """Parse every expression with Prometheus's parser: each becomes a recording rule of a file that
    `promtool check rules` checks. JSON is YAML, so no quoting problems."""
    rules = {
        "groups": [
            {"name": "check", "rules": [{"record": f"check:expr_{i}", "expr": e} for i, e in enumerate(expressions)]}
        ]
    }
    path = folder / "expressions.rules.yml"
    path.write_text(json.dumps(rules))
    return run_promtool("check", "rules", str(path))
