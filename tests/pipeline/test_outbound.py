"""Zero outbound traffic: the main job (`adx run`, what `make run` runs) in its own process under strace, which logs
the connect() calls of every thread and child process (the CLI, the Spark JVM, dbt in-process, their helpers). Each
one goes to a loopback address or a local socket, and none to a name server: a DNS lookup, even through a resolver
on 127.0.0.x, is a connect() to port 53, so a lookup of an outside host fails the test too. A control proves the
trace and its reading see such traffic."""

from __future__ import annotations

import ipaddress
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ingestion.settings import PROJECT_DIR

pytestmark = pytest.mark.integration

# strace's rendering of an internet socket address: inet_addr("127.0.0.1") or inet_pton(AF_INET6, "::1", ...).
_INET_CONNECT = re.compile(
    r"connect\(\d+, \{sa_family=AF_INET6?, sin6?_port=htons\((?P<port>\d+)\), .*?"
    r'(?:inet_addr\("(?P<v4>[^"]+)"\)|inet_pton\(AF_INET6, "(?P<v6>[^"]+)")'
)
DNS_PORT = 53


def traced(command: list[str], trace: Path, env: dict[str, str], timeout: int) -> subprocess.CompletedProcess:
    """Run command under strace, logging every connect() of it and its descendants to trace."""
    strace = ["strace", "--follow-forks", "--seccomp-bpf", "--trace=connect", "--output", str(trace)]
    done = subprocess.run(
        [*strace, *command], cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=timeout
    )
    print(f"$ {' '.join(command)}  -> exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}")
    return done


def internet_connections(trace_text: str) -> list[tuple[str, int]]:
    """(address, port) of every connect() to an internet socket in an strace log."""
    return [
        (match["v4"] or match["v6"], int(match["port"]))
        for match in map(_INET_CONNECT.search, trace_text.splitlines())
        if match
    ]


def outbound(connections: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """The connections that leave the machine, or ask a name server."""
    return [(address, port) for address, port in connections if port == DNS_PORT or not _is_loopback(address)]


def _is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return ip.is_loopback or (ip.version == 6 and ip.ipv4_mapped is not None and ip.ipv4_mapped.is_loopback)


def test_the_main_job_connects_to_nothing_outside_the_machine(tmp_path):
    trace = tmp_path / "connect.trace"
    env = {**os.environ, "ADX_DATA_DIR": str(tmp_path / "data"), "ADX_SPARK_DRIVER_MEMORY": "1g"}

    done = traced([sys.executable, "-m", "ingestion.cli", "run", "--scale", "2000"], trace, env, timeout=900)

    assert done.returncode == 0
    connections = internet_connections(trace.read_text())
    assert connections, "the trace saw no connection at all (PySpark's gateway is one): it proves nothing"
    assert outbound(connections) == []


def test_the_trace_sees_an_outside_connection_and_a_name_lookup(tmp_path):
    trace = tmp_path / "connect.trace"
    reach_out = (
        "import socket\n"
        "s = socket.socket(); s.setblocking(False)\n"
        "s.connect_ex(('192.0.2.10', 9))\n"  # TEST-NET-1: routed nowhere, the attempt is what counts
        "try: socket.getaddrinfo('pypi.org', 443)\n"
        "except OSError: pass\n"
    )

    done = traced([sys.executable, "-c", reach_out], trace, dict(os.environ), timeout=120)

    assert done.returncode == 0
    found = outbound(internet_connections(trace.read_text()))
    assert ("192.0.2.10", 9) in found
    assert any(port == DNS_PORT for _, port in found), found
