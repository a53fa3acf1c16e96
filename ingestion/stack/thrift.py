"""The Spark Thrift Servers (HiveServer2 protocol) of the shared warehouse, started from pyspark's own jars and
launcher with the warehouse's Spark settings (ingestion/spark.py), so they see the lake and the metastore the
loaders write:

- `thrift` (ThriftServer, ADX_THRIFT_PORT): the engineers' server, dbt's `thrift` target. It reads and writes
  every database and holds the raw zone's key. Logins: the LDAP group `engineers`.
- `thrift-analyst` (AnalystThriftServer, ADX_ANALYST_THRIFT_PORT): the analysts' server. Logins: the LDAP group
  `analysts`. It reads `marts` and nothing else, whatever SQL it is sent: Spark 4.2 has no SQL authorization, so
  the limits are the process's, not rules a statement could get around:
  - it reaches HDFS as the user `analyst`, and the lake is private to the warehouse's own user except `marts.db`
    (permissions and default ACLs, ingestion/stack/hdfs.py), so raw, staging and the others are refused by HDFS;
  - it logs in to the metastore database as a role that may only SELECT, so DROP, CREATE and ALTER fail;
  - its configuration has no raw zone key (so a raw file it could reach would not decrypt) and no password but
    the read-only one: a `reflect()` call that reads the JVM's properties finds nothing more.

Each home folder is `<stack_dir>/thrift` or `<stack_dir>/thrift-analyst`:

    conf/spark-defaults.conf   the Spark settings, written on every start (mode 0600: it holds the metastore
                               password, which therefore never appears on a command line)
    logs/thriftserver.out      the JVM's output (conf/spark/thriftserver-log4j2.properties)
    scratch/                   Hive scratch and operation-log folders
    thriftserver.pid

Both listen on 127.0.0.1 and take only logins the stack's LDAP server accepts (ingestion/stack/ldap.py): user name
and password, checked by binding as uid=<user>,ou=<group>,dc=adx,dc=local. Clients (PyHive, dbt) use auth=LDAP,
beeline `-n <user> -w <password file>`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ingestion.raw_encryption import KEY_LIST_CONF, kms_client_jars
from ingestion.secret_files import write_private
from ingestion.settings import LOOPBACK_ONLY_ENV, PROJECT_DIR, Settings
from ingestion.stack.lake_access import ANALYST_HDFS_USER, open_marts_only
from ingestion.stack.ldap import ANALYSTS, DEFAULT_USERS, ENGINEERS, LdapServer, group_dn, password_file
from ingestion.stack.postgres import metastore_reader_password
from ingestion.stack.process import ManagedProcess, StackError, ensure_ports_free, port_open, wait_until

HOST = "127.0.0.1"
SERVER_CLASS = "org.apache.spark.sql.hive.thriftserver.HiveThriftServer2"
LOG4J_CONFIG = PROJECT_DIR / "conf" / "spark" / "thriftserver-log4j2.properties"


@dataclass(frozen=True)
class ThriftStatus:
    running: bool
    pid: int | None
    address: str
    healthy: bool  # answers a query
    error: str | None = None
    databases: tuple[str, ...] = ()

    name = "thrift"

    @property
    def detail(self) -> str:
        if self.error:
            return self.error
        return f"databases: {', '.join(self.databases)}" if self.databases else "no databases yet"


def spark_home() -> Path:
    """pyspark's install folder: it has bin/spark-submit and the jars of the Thrift server."""
    import pyspark

    return Path(pyspark.__file__).resolve().parent


class ThriftServer:
    """The engineers' server: dbt's thrift target."""

    name = "thrift"
    login_group = ENGINEERS

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = self._port()
        self.address = f"{HOST}:{self.port}"
        self.home = settings.stack_dir / self.name
        self.conf_file = self.home / "conf" / "spark-defaults.conf"
        self.scratch_dir = self.home / "scratch"
        self.process = ManagedProcess(
            f"the Spark Thrift Server ({self.name})",
            pid_file=self.home / "thriftserver.pid",
            marker=f"--properties-file {self.conf_file}",
            log_files=[self.home / "logs" / "thriftserver.out"],
        )

    def start(self, timeout: float = 180.0) -> None:
        """Start the server and wait until it answers a query; a running server is left alone."""
        if self.process.pid() is not None:
            self.wait_until_healthy(timeout)
            return
        ensure_ports_free(HOST, {self.port: self._port_setting()}, f"the Spark Thrift Server of {self.home}")
        self.scratch_dir.mkdir(parents=True, exist_ok=True)
        self._prepare()
        self._write_conf()
        home = spark_home()
        command = [
            str(home / "bin" / "spark-submit"),
            "--properties-file",
            str(self.conf_file),
            "--class",
            SERVER_CLASS,
            "--name",
            f"adx-{self.name}-server",
            "spark-internal",
            "--hiveconf",
            f"hive.server2.thrift.bind.host={HOST}",
            "--hiveconf",
            f"hive.server2.thrift.port={self.port}",
            # Statements run as the server's OS user, which owns the lake, not as the user a client names.
            "--hiveconf",
            "hive.server2.enable.doAs=false",
            # Logins against the stack's LDAP server. These must be hiveconf (or hive-site.xml): the LDAP provider
            # reads a HiveConf of its own, which never sees spark.hadoop.* keys, and then refuses every login.
            "--hiveconf",
            "hive.server2.authentication=LDAP",
            "--hiveconf",
            f"hive.server2.authentication.ldap.url={LdapServer(self.settings).url}",
            "--hiveconf",
            f"hive.server2.authentication.ldap.baseDN={group_dn(self.login_group)}",
        ]
        env = {**os.environ, **LOOPBACK_ONLY_ENV, "SPARK_HOME": str(home), "SPARK_CONF_DIR": str(self.conf_file.parent)}
        self.process.spawn(command, cwd=self.home, env=env)
        try:
            self.wait_until_healthy(timeout)
        except StackError:
            self.stop(timeout=10)
            raise

    def stop(self, timeout: float = 60.0) -> bool:
        """SIGTERM: Spark's shutdown hook closes the sessions and the SparkContext."""
        return self.process.stop(timeout)

    def pid(self) -> int | None:
        return self.process.pid()

    def status(self) -> ThriftStatus:
        pid = self.process.pid()
        if pid is None:
            return ThriftStatus(False, None, self.address, healthy=False, error="stopped")
        try:
            databases = tuple(row[0] for row in self.query("SHOW DATABASES"))
        except Exception as error:  # noqa: BLE001 - any failure to answer is "unhealthy", shown as one line
            return ThriftStatus(True, pid, self.address, healthy=False, error=_one_line(error))
        return ThriftStatus(True, pid, self.address, healthy=True, databases=databases)

    def wait_until_healthy(self, timeout: float = 180.0) -> None:
        def not_ready() -> str | None:
            if not port_open(HOST, self.port):
                return "its port is not open yet"
            try:
                self.query("SELECT 1")
            except Exception as error:  # noqa: BLE001 - keep polling until the deadline
                return _one_line(error)
            return None

        wait_until(not_ready, timeout=timeout, process=self.process, what="answering queries")

    def query(self, sql: str) -> list[tuple]:
        """Run one statement through the server (PyHive, as dbt's thrift target does) and return its rows."""
        from pyhive import hive

        user, password = self._login()
        connection = hive.connect(host=HOST, port=self.port, username=user, password=password, auth="LDAP")
        try:
            cursor = connection.cursor()
            cursor.execute(sql)
            return cursor.fetchall() if cursor.description else []
        finally:
            connection.close()

    # --- what the two servers do differently ---------------------------------------------------------------

    def _port(self) -> int:
        return self.settings.thrift_port

    def _port_setting(self) -> str:
        return "ADX_THRIFT_PORT"

    def _login(self) -> tuple[str, str]:
        """The login of the stack's own queries (health checks, status)."""
        return self.settings.thrift_user, self.settings.resolved_thrift_password()

    def _prepare(self) -> None:
        """Anything the server needs before it starts."""

    def _java_options(self) -> list[str]:
        return [
            f"-Dlog4j2.configurationFile=file:{LOG4J_CONFIG}",
            f"-Dderby.stream.error.file={self.home}/logs/derby.log",
        ]

    def _spark_conf(self) -> dict[str, str]:
        from ingestion.spark import spark_conf

        return spark_conf(self.settings)

    def _write_conf(self) -> None:
        conf = self._spark_conf()
        conf["spark.app.name"] = f"adx-{self.name}-server"
        conf["spark.driver.memory"] = self.settings.thrift_driver_memory
        conf["spark.driver.extraJavaOptions"] = " ".join(self._java_options())
        conf["spark.hadoop.hive.exec.scratchdir"] = str(self.scratch_dir / "hive")
        conf["spark.hadoop.hive.exec.local.scratchdir"] = str(self.scratch_dir / "local")
        conf["spark.hadoop.hive.server2.logging.operation.log.location"] = str(self.scratch_dir / "operation_logs")
        conf["spark.hadoop.hive.downloaded.resources.dir"] = str(self.scratch_dir / "resources")
        # The server's queries do not find spark.jars' classes where Parquet loads its KMS client ("Could not
        # instantiate KmsClient class"), though a PySpark driver's do: the JVM's own class path has it.
        class_path = [conf.get("spark.driver.extraClassPath", ""), *kms_client_jars(self.settings)]
        conf["spark.driver.extraClassPath"] = os.pathsep.join(entry for entry in class_path if entry)
        self.conf_file.parent.mkdir(parents=True, exist_ok=True)
        lines = ["# Written by ingestion/stack/thrift.py on every start; edit the settings, not this file."]
        lines += [f"{key} {value}" for key, value in sorted(conf.items())]
        write_private(self.conf_file, "\n".join(lines) + "\n")


class AnalystThriftServer(ThriftServer):
    """The analysts' server: marts only (see the module's docstring)."""

    name = "thrift-analyst"
    login_group = ANALYSTS

    def _port(self) -> int:
        return self.settings.analyst_thrift_port

    def _port_setting(self) -> str:
        return "ADX_ANALYST_THRIFT_PORT"

    def _login(self) -> tuple[str, str]:
        user = DEFAULT_USERS[ANALYSTS]
        return user, password_file(self.settings, ANALYSTS, user).read_text().strip()

    def _prepare(self) -> None:
        open_marts_only(self.settings)

    def _java_options(self) -> list[str]:
        # Hadoop's simple authentication: the HDFS user this JVM logs in as, once, when it starts. A system property,
        # not the environment variable: Hive's getUGI() turns that variable into a proxy user (analyst acting for
        # analyst), which the NameNode refuses ("not allowed to impersonate").
        return [*super()._java_options(), f"-DHADOOP_USER_NAME={ANALYST_HDFS_USER}"]

    def _spark_conf(self) -> dict[str, str]:
        from ingestion.spark import spark_conf

        conf = spark_conf(self.settings)
        conf.pop(KEY_LIST_CONF, None)  # no raw zone key: raw files do not decrypt here
        conf["spark.hadoop.javax.jdo.option.ConnectionUserName"] = self.settings.metastore_reader_user
        conf["spark.hadoop.javax.jdo.option.ConnectionPassword"] = metastore_reader_password(self.settings)
        return conf


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"
