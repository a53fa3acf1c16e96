"""The PostgreSQL server that holds the Hive metastore of the stack warehouse (ADX_WAREHOUSE=stack).

A cluster of its own, not the system's: `initdb` on first start with the PostgreSQL binaries installed on the
machine (scripts/install-postgres.sh), run by the project. Its home folder is `<stack_dir>/postgres`:

    data/                   the cluster (mode 0700, owned by the server's OS user); pg_hba.conf written on every start
    run/                    the Unix socket, for the provisioning connection of the superuser only
    logs/postgres.log       the server's log (stdout and stderr)
    logs/initdb.log         the output of initdb
    metastore.password      the password generated for the metastore user when ADX_METASTORE_PASSWORD is unset
    postgres.pid            the pid of the running server

It listens on 127.0.0.1:<ADX_METASTORE_DB_PORT> only. Who may connect (pg_hba.conf):

    local  all  postgres               trust            the superuser, through the socket of run/ (mode 0700:
                                                        only the server's OS user and root reach it)
    host   all  all       127.0.0.1/32 scram-sha-256    everybody else: a password, over TCP

Every start provisions, idempotently: the role ADX_METASTORE_USER (LOGIN, not superuser) with the password of
`settings.resolved_metastore_password()` (ADX_METASTORE_PASSWORD, else the generated one), and the database
`metastore` owned by it; and the role ADX_METASTORE_READER_USER, which may only read the metastore's tables (the
analysts' Thrift server's), with a generated password (metastore-reader.password). PostgreSQL refuses to run as root: when `adx` runs as root, initdb and the server run
as the `postgres` OS user (through setpriv, which execs, so the recorded pid is the server's own).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import secrets
import shutil
import signal
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from ingestion.secret_files import read_or_create
from ingestion.settings import Settings
from ingestion.stack.metastore_schema import create_metastore_schema
from ingestion.stack.process import ManagedProcess, StackError, ensure_ports_free, port_in_use, wait_until

HOST = "127.0.0.1"
DATABASE = "metastore"
SUPERUSER = "postgres"  # the bootstrap superuser of the cluster (initdb -U); it logs in through the socket only
SERVER_OS_USER = "postgres"  # the OS user that runs the server when `adx` runs as root
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
SOCKET_PATH_MAX = 107  # sun_path holds 108 bytes, with the terminating NUL
JDBC_URL = re.compile(r"^jdbc:postgresql://(?P<host>\[[^\]]+\]|[^/:?,]+)(?::(?P<port>\d+))?/(?P<database>[^?;/]+)")


class MetastoreError(StackError):
    """The metastore database cannot be reached or refuses the login; the one-line message names the setting."""


@dataclass(frozen=True)
class PostgresStatus:
    running: bool
    pid: int | None
    address: str
    healthy: bool  # the metastore user logs in over TCP and runs a query
    tables: int | None = None  # tables of the metastore database (outside pg_catalog and information_schema)
    error: str | None = None  # why it is not running or not healthy, when known

    name = "postgres"  # not a field: the service name shown by `adx stack status`

    @property
    def detail(self) -> str:
        if self.error:
            return self.error
        return f"database {DATABASE}, {self.tables} tables"


@dataclass(frozen=True)
class MetastoreAddress:
    """Where a Postgres metastore database is, from a jdbc:postgresql:// URL."""

    host: str
    port: int
    database: str

    @property
    def display(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_metastore_url(url: str) -> MetastoreAddress:
    """The first host, the port (default 5432) and the database of a jdbc:postgresql://host[:port]/database URL;
    the query string (?ssl=...) is left to the JDBC driver."""
    match = JDBC_URL.match(url)
    if match is None:
        raise MetastoreError(
            f"ADX_METASTORE_URL is {url!r}, not jdbc:postgresql://<host>[:<port>]/<database> (nor a Derby URL)"
        )
    host = match["host"].strip("[]")
    return MetastoreAddress(host=host, port=int(match["port"] or 5432), database=match["database"])


def check_metastore(settings: Settings, timeout: float = 5.0) -> None:
    """Log in to the metastore database of `settings.resolved_metastore_url` as ADX_METASTORE_USER with the resolved
    password and run a query; MetastoreError (one line, naming the setting to fix) if that fails. Nothing to check
    for an embedded Derby metastore."""
    if settings.metastore_is_derby:
        return
    address = parse_metastore_url(settings.resolved_metastore_url)
    with _login(address, settings.metastore_user, settings.resolved_metastore_password(), settings, timeout) as conn:
        conn.execute("select 1")


class PostgresMetastoreDb:
    """Start, stop and inspect the local PostgreSQL server of the metastore. Every method can be called from any
    process: the state is the pid file and the process it names, not this object."""

    name = "postgres"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = settings.metastore_db_port
        self.address = MetastoreAddress(HOST, self.port, DATABASE)
        self.user = settings.metastore_user
        # Absolute: the data folder is the marker on the server's command line and the socket path must be absolute.
        self.home = settings.stack_dir.absolute() / "postgres"
        self.data_dir = self.home / "data"
        self.socket_dir = self.home / "run"
        self.logs_dir = self.home / "logs"
        self.password_file = settings.metastore_password_file.absolute()
        self.process = ManagedProcess(
            "the PostgreSQL metastore database",
            pid_file=self.home / "postgres.pid",
            # `-D <data> ` (with the space) tells this home's server from any other, including one of `<data>-old`.
            marker=f"-D {self.data_dir} ",
            log_files=[self.logs_dir / "postgres.log", self.logs_dir / "initdb.log"],
        )

    # --- lifecycle -------------------------------------------------------------------------------------------

    def start(self, timeout: float = 90.0) -> None:
        """Start the server (initdb on first start), provision the metastore user and database, and wait until the
        metastore user can log in. A running server is only provisioned again (which changes nothing unless the
        password changed)."""
        if self.pid() is not None:
            self._wait_for_socket(timeout)
            self._provision()
            self.wait_until_healthy(timeout)
            self._ensure_metastore_schema()
            self._provision_reader()
            return
        ensure_ports_free(HOST, {self.port: "ADX_METASTORE_DB_PORT"}, f"the PostgreSQL server of {self.home}")
        if self.user == SUPERUSER:
            raise StackError(f"ADX_METASTORE_USER is {SUPERUSER}, the superuser of the cluster: choose another user")
        socket_file = self.socket_dir / f".s.PGSQL.{self.port}"
        if len(str(socket_file).encode()) > SOCKET_PATH_MAX:
            raise StackError(
                f"the socket path {socket_file} is longer than {SOCKET_PATH_MAX} bytes, the limit of a Unix socket: "
                "set ADX_DATA_DIR to a shorter folder"
            )
        bindir = postgres_bindir(self._cluster_version())
        owner = _server_owner()

        self.home.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        if owner is not None:
            _make_traversable(self.home, owner)
        _own_dir(self.socket_dir, owner)
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb(bindir, owner)
        elif owner is not None and self.data_dir.stat().st_uid != owner.uid:
            _chown_tree(self.data_dir, owner)  # e.g. first started by a user, now by root
        self._write_hba(owner)

        command = [
            *_run_as(owner),
            str(bindir / "postgres"),
            "-D",
            str(self.data_dir),
            "-k",
            str(self.socket_dir),
            "-p",
            str(self.port),
            "-c",
            f"listen_addresses={HOST}",
            "-c",
            "unix_socket_permissions=0700",
            "-c",
            "password_encryption=scram-sha-256",
        ]
        self.process.spawn(command, cwd=self.home, env=_server_env(owner))
        try:
            self._wait_for_socket(timeout)
            self._provision()
            self.wait_until_healthy(timeout)
            self._ensure_metastore_schema()
            self._provision_reader()
        except StackError:
            self.stop(timeout=10)
            raise

    def stop(self, timeout: float = 60.0) -> bool:
        """SIGINT: a "fast" shutdown (SIGTERM would be a "smart" one, which waits for every client, e.g. a running
        Thrift server, to disconnect): open transactions are rolled back, clients disconnected, a checkpoint
        written. SIGKILL only if it has not exited after `timeout`. Returns False if it had to be killed."""
        return self.process.stop(timeout, signal.SIGINT)

    def status(self) -> PostgresStatus:
        pid = self.pid()
        address = self.address.display
        if pid is None:
            error = "stopped"
            if port_in_use(HOST, self.port):
                error = f"stopped, and port {self.port} is in use by another process"
            return PostgresStatus(running=False, pid=None, address=address, healthy=False, error=error)
        try:
            tables = self._count_tables()
        except StackError as error:
            return PostgresStatus(True, pid, address, healthy=False, error=str(error))
        return PostgresStatus(True, pid, address, healthy=True, tables=tables)

    def pid(self) -> int | None:
        """The pid of this home's server if it is running, else None."""
        return self.process.pid()

    def wait_until_healthy(self, timeout: float = 90.0) -> None:
        """Wait until the metastore user logs in over TCP. Raises StackError, with the end of the server's log, if
        the server exits or `timeout` passes first."""

        def not_ready() -> str | None:
            try:
                self._count_tables()
            except MetastoreError as error:
                return str(error)
            return None

        wait_until(not_ready, timeout=timeout, process=self.process, what="healthy")

    def log_tail(self, lines: int = 30) -> str:
        return self.process.log_tail(lines)

    # --- internals -------------------------------------------------------------------------------------------

    def _cluster_version(self) -> str | None:
        try:
            return (self.data_dir / "PG_VERSION").read_text().strip()
        except FileNotFoundError:
            return None

    def _initdb(self, bindir: Path, owner: _Owner | None) -> None:
        """A new cluster in data/, built in data.init/ and renamed: an initdb that fails half-way leaves no data/."""
        staging = self.home / "data.init"
        shutil.rmtree(staging, ignore_errors=True)
        _own_dir(staging, owner)
        command = [
            *_run_as(owner),
            str(bindir / "initdb"),
            "-D",
            str(staging),
            "-U",
            SUPERUSER,
            "--encoding=UTF8",
            "--locale=C",  # byte-order collation: what the Hive schema expects, and the same on every machine
            "--auth-host=scram-sha-256",
            "--auth-local=trust",  # replaced by pg_hba.conf below: trust for the superuser on the socket only
        ]
        result = subprocess.run(command, env=_server_env(owner), capture_output=True, text=True, check=False)
        log = self.process.log_files[1]
        log.write_text(f"$ {' '.join(command)}\n{result.stdout}{result.stderr}")
        if result.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            raise StackError(f"initdb of {self.data_dir} failed (exit code {result.returncode}):\n{log.read_text()}")
        staging.rename(self.data_dir)

    def _write_hba(self, owner: _Owner | None) -> None:
        hba = self.data_dir / "pg_hba.conf"
        hba.write_text(
            "# Written by ingestion/stack/postgres.py on every start; edit that, not this file.\n"
            "# TYPE  DATABASE  USER       ADDRESS        METHOD\n"
            f"local   all       {SUPERUSER}                  trust\n"
            f"host    all       all        {HOST}/32   scram-sha-256\n"
        )
        hba.chmod(0o600)
        if owner is not None:
            os.chown(hba, owner.uid, owner.gid)

    def _superuser(self, dbname: str = "postgres", timeout: float = 5.0) -> psycopg.Connection:
        return psycopg.connect(
            host=str(self.socket_dir),
            port=self.port,
            user=SUPERUSER,
            dbname=dbname,
            connect_timeout=max(2, int(timeout)),
            autocommit=True,
            application_name="adx stack",
        )

    def _wait_for_socket(self, timeout: float) -> None:
        def not_ready() -> str | None:
            try:
                with self._superuser(timeout=2):
                    return None
            except psycopg.OperationalError as error:
                return _one_line(str(error))

        wait_until(not_ready, timeout=timeout, process=self.process, what="accepting connections")

    def _provision(self) -> None:
        """The metastore role with the resolved password, and the metastore database owned by it."""
        password = self._metastore_password()
        role = sql.Identifier(self.user)
        try:
            with self._superuser() as conn:
                exists = conn.execute("select 1 from pg_roles where rolname = %s", [self.user]).fetchone()
                verb = sql.SQL("alter" if exists else "create")
                # Setting the password on every start makes ADX_METASTORE_PASSWORD (or the file) the truth.
                conn.execute(
                    sql.SQL("{} role {} with login nosuperuser nocreaterole password {}").format(
                        verb, role, sql.Literal(password)
                    )
                )
                owner = conn.execute(
                    "select pg_get_userbyid(datdba) from pg_database where datname = %s", [DATABASE]
                ).fetchone()
                if owner is None:
                    conn.execute(
                        sql.SQL("create database {} owner {} encoding 'UTF8'").format(sql.Identifier(DATABASE), role)
                    )
                elif owner[0] != self.user:
                    conn.execute(sql.SQL("alter database {} owner to {}").format(sql.Identifier(DATABASE), role))
        except psycopg.Error as error:
            raise StackError(f"provisioning the metastore database failed: {_one_line(str(error))}") from error

    def _provision_reader(self) -> None:
        """The read-only role: it may connect to the metastore database and SELECT its tables, nothing else."""
        reader = self.settings.metastore_reader_user
        if reader in (self.user, SUPERUSER):
            raise StackError(f"ADX_METASTORE_READER_USER is {reader}: choose a user of its own")
        role = sql.Identifier(reader)
        try:
            with self._superuser(dbname=DATABASE) as conn:
                exists = conn.execute("select 1 from pg_roles where rolname = %s", [reader]).fetchone()
                verb = sql.SQL("alter" if exists else "create")
                conn.execute(
                    sql.SQL("{} role {} with login nosuperuser nocreaterole nocreatedb password {}").format(
                        verb, role, sql.Literal(metastore_reader_password(self.settings))
                    )
                )
                conn.execute(sql.SQL("grant connect on database {} to {}").format(sql.Identifier(DATABASE), role))
                conn.execute(sql.SQL("revoke create on schema public from {}").format(role))
                conn.execute(sql.SQL("grant usage on schema public to {}").format(role))
                conn.execute(sql.SQL("grant select on all tables in schema public to {}").format(role))
        except psycopg.Error as error:
            raise StackError(f"provisioning the read-only metastore user failed: {_one_line(str(error))}") from error

    def _ensure_metastore_schema(self) -> None:
        """The Hive metastore's tables, created at once on first start (see metastore_schema.py)."""
        with self._superuser(dbname=DATABASE) as conn:
            if conn.execute("""select to_regclass('public."DBS"')""").fetchone()[0] is not None:
                return
        create_metastore_schema(
            self.settings,
            jdbc_url=f"jdbc:postgresql://{HOST}:{self.port}/{DATABASE}",
            password=self._metastore_password(),
        )

    def _metastore_password(self) -> str:
        """ADX_METASTORE_PASSWORD if set (never written to disk), else the one in the password file, generated
        (mode 0600) if there is none yet."""
        if self.settings.metastore_password is not None:
            password = self.settings.metastore_password.get_secret_value()
            if not password:
                raise StackError(
                    "ADX_METASTORE_PASSWORD is set but empty: unset it (a password is generated) or set one"
                )
            return password
        return read_or_create(self.password_file, lambda: secrets.token_urlsafe(24))

    def _count_tables(self) -> int:
        password = self.settings.resolved_metastore_password()
        with _login(self.address, self.user, password, self.settings, timeout=3.0) as conn:
            row = conn.execute(
                "select count(*) from pg_tables where schemaname not in ('pg_catalog', 'information_schema')"
            ).fetchone()
        return int(row[0]) if row else 0


# --- logging in, with messages that say what to fix ----------------------------------------------------------


def _login(
    address: MetastoreAddress, user: str, password: str, settings: Settings, timeout: float
) -> psycopg.Connection:
    try:
        return psycopg.connect(
            host=address.host,
            port=address.port,
            dbname=address.database,
            user=user,
            password=password,
            connect_timeout=max(2, int(timeout)),
            autocommit=True,
            application_name="adx",
        )
    except psycopg.OperationalError as error:
        raise MetastoreError(_login_error(address, user, password, settings, error)) from None


def _login_error(
    address: MetastoreAddress, user: str, password: str, settings: Settings, error: psycopg.OperationalError
) -> str:
    """One line for a failed login: what happened and which setting to check."""
    at = address.display
    text = str(error)
    reason = _one_line(text)
    if "password authentication failed" in text:  # also for an unknown user: the server does not tell them apart
        return (
            f"the PostgreSQL metastore at {at} refused the password of user {user}: check ADX_METASTORE_PASSWORD "
            "(and ADX_METASTORE_USER)"
        )
    if "no password supplied" in text or (not password and "password" in text):
        return (
            f"no password for user {user} of the PostgreSQL metastore at {at}: set ADX_METASTORE_PASSWORD, or start "
            f"the stack with `adx stack up`, which generates {settings.metastore_password_file}"
        )
    if f'database "{address.database}" does not exist' in text:
        return f"the PostgreSQL server at {at} has no database {address.database}: check ADX_METASTORE_URL"
    if f'role "{user}" does not exist' in text:
        return f"the PostgreSQL metastore at {at} has no user {user}: check ADX_METASTORE_USER"
    if "no pg_hba.conf entry" in text:
        return f"the PostgreSQL metastore at {at} does not let user {user} connect from here (pg_hba.conf): {reason}"
    if "starting up" in text or "shutting down" in text:
        return f"the PostgreSQL metastore at {at} is starting up or shutting down; try again in a moment"
    if "failed to resolve host" in text or "could not translate host name" in text:
        return f"no PostgreSQL metastore at {at} (ADX_METASTORE_URL): the host name {address.host} does not resolve"
    if "Connection refused" in text or "timeout expired" in text:
        hint = "; start it with `adx stack up`" if address.host in LOCAL_HOSTS else f": {_libpq_reason(text)}"
        return f"no PostgreSQL metastore at {at} (ADX_METASTORE_URL){hint}"
    return f"cannot log in to the PostgreSQL metastore at {at} (ADX_METASTORE_URL) as user {user}: {reason}"


def _libpq_reason(text: str) -> str:
    """`Connection refused` out of `connection failed: connection to server at "h" (h), port p failed: ...`."""
    return _one_line(text.split("failed:")[-1]) if "failed:" in text else _one_line(text)


def _one_line(text: str) -> str:
    return " ".join(text.split())


# --- binaries and the server's OS user -----------------------------------------------------------------------


def postgres_bindir(version: str | None = None) -> Path:
    """The folder of `initdb` and `postgres`: /usr/lib/postgresql/<version>/bin (Debian, Ubuntu; the newest if
    `version` is None), else `pg_config --bindir`, else the PATH. With `version` (the PG_VERSION of an existing
    cluster), only binaries of that major version will do: a cluster cannot be opened by another major version."""
    candidates: list[Path] = sorted(
        (p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/initdb")),
        key=lambda p: _version_key(p.parent.name),
        reverse=True,
    )
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True).stdout
        candidates.append(Path(out.strip()))
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    found = [p for p in dict.fromkeys(candidates) if (p / "initdb").is_file() and (p / "postgres").is_file()]
    if not found:
        raise StackError(
            "no PostgreSQL server binaries (initdb, postgres) in /usr/lib/postgresql/*/bin, `pg_config --bindir` "
            "or the PATH: run scripts/install-postgres.sh"
        )
    if version is None:
        return found[0]
    for bindir in found:
        if _major_version(bindir) == version:
            return bindir
    raise StackError(
        f"the metastore cluster was created by PostgreSQL {version}, but only "
        f"{', '.join(sorted({_major_version(p) or '?' for p in found}))} is installed: install PostgreSQL {version}, "
        "or upgrade the cluster with pg_upgrade"
    )


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", name)) or (0,)


def _major_version(bindir: Path) -> str | None:
    try:
        out = subprocess.run([str(bindir / "postgres"), "--version"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    match = re.search(r"PostgreSQL\)\s*(\d+)", out)  # postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)
    return match[1] if match else None


@dataclass(frozen=True)
class _Owner:
    """The unprivileged OS user that runs the server when `adx` runs as root."""

    name: str
    uid: int
    gid: int
    groups: frozenset[int]
    home: str


def _server_owner() -> _Owner | None:
    """None when `adx` runs as an ordinary user (the server runs as that user); the `postgres` OS user when root."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(SERVER_OS_USER)
    except KeyError:
        raise StackError(
            f"PostgreSQL refuses to run as root, and there is no OS user {SERVER_OS_USER} to run it: run "
            "scripts/install-postgres.sh (the postgresql package creates it), or run `adx` as an ordinary user"
        ) from None
    if shutil.which("setpriv") is None:
        raise StackError("running as root needs `setpriv` (util-linux) to start PostgreSQL as the postgres user")
    groups = frozenset(os.getgrouplist(entry.pw_name, entry.pw_gid))
    return _Owner(entry.pw_name, entry.pw_uid, entry.pw_gid, groups, entry.pw_dir)


def _run_as(owner: _Owner | None) -> list[str]:
    """The prefix that runs a command as `owner`. setpriv execs the command (runuser and su would stay its parent
    and turn the SIGINT of stop() into SIGTERM, then SIGKILL 2 s later)."""
    if owner is None:
        return []
    return ["setpriv", f"--reuid={owner.uid}", f"--regid={owner.gid}", "--init-groups", "--"]


def _server_env(owner: _Owner | None) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "LANG": "C"}
    if os.environ.get("TZ"):
        env["TZ"] = os.environ["TZ"]
    env["HOME"] = owner.home if owner is not None else os.environ.get("HOME", "/")
    return env


def _own_dir(path: Path, owner: _Owner | None) -> None:
    """Create `path` with mode 0700, owned by the server's OS user."""
    path.mkdir(parents=True, exist_ok=True)
    if owner is not None:
        os.chown(path, owner.uid, owner.gid)
    path.chmod(0o700)


def _chown_tree(root: Path, owner: _Owner) -> None:
    os.chown(root, owner.uid, owner.gid)
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            os.lchown(os.path.join(folder, name), owner.uid, owner.gid)


def _make_traversable(path: Path, owner: _Owner) -> None:
    """Let `owner` reach `path`: add the search (x) bit, and only that, to each folder on the way that `owner`
    cannot pass (e.g. pytest's /tmp/pytest-of-root, mode 0700). Listing (r) stays as it was."""
    for folder in [path, *path.parents]:
        st = folder.stat()
        if st.st_uid == owner.uid:
            bit = stat.S_IXUSR
        elif st.st_gid in owner.groups:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            folder.chmod(stat.S_IMODE(st.st_mode) | bit)


def metastore_reader_password(settings: Settings) -> str:
    """The read-only metastore role's password, generated (mode 0600) on first use."""
    return read_or_create(settings.metastore_reader_password_file, lambda: secrets.token_urlsafe(24))
