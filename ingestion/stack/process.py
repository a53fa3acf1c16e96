"""What every local service of the stack shares: a long-running child process found again by its pid file.

A service is started by one `adx` command and stopped by another, so its state is never a Python object: it is
the pid file and the process it names. A pid is trusted only while that process's command line still carries
the service's marker (a path unique to the service's home), so a reused pid is never signalled.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


class StackError(RuntimeError):
    """A local service cannot be started, stopped or provisioned; the message says why and what to do."""


class PortInUseError(StackError):
    """A service's port is held by a process that is not that service."""


class ManagedProcess:
    """One server process of a service: started detached (it outlives the command that started it), recognised
    by `marker` on its command line, stopped by SIGTERM and, after a timeout, SIGKILL."""

    def __init__(self, label: str, pid_file: Path, marker: str, log_files: Sequence[Path]) -> None:
        self.label = label  # e.g. "the HDFS NameNode", used in messages
        self.pid_file = pid_file
        self.marker = marker.encode()
        self.log_files = tuple(log_files)  # the first one also receives the process's stdout and stderr
        self._child: subprocess.Popen | None = None  # set when this object started the process

    def pid(self) -> int | None:
        """The pid of the running process, else None."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if self._is_alive(pid) and self._is_ours(pid) else None

    def spawn(self, command: Sequence[str], *, cwd: Path, env: Mapping[str, str] | None = None) -> int:
        """Start `command` in its own session (a Ctrl-C in the terminal of `adx stack up` does not reach it),
        with stdout and stderr appended to the first log file, and record its pid."""
        if self.marker not in " ".join(command).encode():
            raise ValueError(f"the command of {self.label} does not carry its marker {self.marker!r}")
        self.log_files[0].parent.mkdir(parents=True, exist_ok=True)
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_files[0], "ab") as out:
            self._child = subprocess.Popen(
                list(command),
                cwd=cwd,
                env=dict(env) if env is not None else None,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid_file.write_text(f"{self._child.pid}\n")
        return self._child.pid

    def exit_code(self) -> int | None:
        """The exit code of a process this object started and that has exited, else None."""
        return self._child.poll() if self._child is not None else None

    def stop(self, timeout: float, signum: int = signal.SIGTERM) -> bool:
        """Send `signum`; SIGKILL if the process has not exited after `timeout`. Returns False if it had to be
        killed. Stopping a stopped process does nothing."""
        pid = self.pid()
        clean = True
        if pid is not None:
            send_signal(pid, signum)
            if not self.wait_for_exit(pid, timeout):
                clean = False
                send_signal(pid, signal.SIGKILL)
                if not self.wait_for_exit(pid, 10):
                    raise StackError(f"{self.label} (pid {pid}) did not exit even after SIGKILL")
        self.pid_file.unlink(missing_ok=True)
        self._child = None
        return clean

    def wait_for_exit(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self._is_alive(pid):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of each log file, for error messages."""
        parts = []
        for path in self.log_files:
            if path.exists() and path.stat().st_size:
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- last lines of {path}:\n" + "\n".join(tail))
        return "\n".join(parts) or f"(nothing logged by {self.label} yet)"

    def exited_error(self) -> StackError:
        code = self.exit_code()
        exited = f" with exit code {code}" if code is not None else ""
        return StackError(f"{self.label} exited{exited} before it was ready\n{self.log_tail()}")

    def _is_alive(self, pid: int) -> bool:
        if self._child is not None and self._child.pid == pid:
            return self._child.poll() is None
        return process_alive(pid)

    def _is_ours(self, pid: int) -> bool:
        """Whether the live process `pid` is this service, not another process that got a reused pid."""
        try:
            command_line = (Path("/proc") / str(pid) / "cmdline").read_bytes()
        except FileNotFoundError:
            return not Path("/proc/self").exists()  # no procfs (macOS): trust the pid file
        # Empty while the process exits (its memory is gone before it becomes a zombie): still ours.
        return not command_line or self.marker in command_line.replace(b"\0", b" ")


def wait_until(check, *, timeout: float, process: ManagedProcess, what: str) -> None:
    """Call `check()` until it returns None (ready); it returns a reason while not ready. Raises StackError with
    the process's log if the process exits or `timeout` passes first."""
    deadline = time.monotonic() + timeout
    reason = "no answer yet"
    while True:
        pid = process.pid()
        if pid is None:
            raise process.exited_error()
        reason = check() or ""
        if not reason:
            return
        if time.monotonic() > deadline:
            raise StackError(
                f"{process.label} (pid {pid}) is not {what} after {timeout:.0f} s: {reason}\n{process.log_tail()}"
            )
        time.sleep(0.25)


def ensure_ports_free(host: str, ports: Mapping[int, str], label: str) -> None:
    """Raise PortInUseError naming the setting to change if another process holds one of `ports`
    (port -> the setting that chooses it)."""
    for port, setting in ports.items():
        if port_in_use(host, port):
            raise PortInUseError(
                f"{host}:{port} is in use by another process, not by {label}; stop that process or set {setting} "
                "to another port"
            )


def java_binary() -> str:
    """`$JAVA_HOME/bin/java` if JAVA_HOME is set, else `java` from the PATH."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        java = Path(java_home) / "bin" / "java"
        if not java.is_file():
            raise StackError(f"JAVA_HOME is {java_home}, but {java} does not exist")
        return str(java)
    java = shutil.which("java")
    if java is None:
        raise StackError("no `java` on the PATH (and JAVA_HOME is not set): the stack's services need Java 17+")
    return java


def port_in_use(host: str, port: int) -> bool:
    """Whether binding host:port fails, the way a server's bind would (with SO_REUSEADDR, as Java does)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def port_open(host: str, port: int) -> bool:
    """Whether something accepts connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def process_alive(pid: int) -> bool:
    """Whether `pid` runs; a zombie (exited, not yet reaped by its parent) does not, and is reaped if it is ours."""
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        if Path("/proc/self").exists():
            return False
        try:  # no procfs (macOS)
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    if state not in ("Z", "X"):
        return True
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # someone else's zombie: gone as far as we are concerned
        return False
    # Our child: a JVM's main thread can be a zombie while its other threads still exit; until they have, the
    # process cannot be reaped and still holds its ports.
    return reaped == 0


def send_signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # exited in the meantime
        os.kill(pid, signum)
