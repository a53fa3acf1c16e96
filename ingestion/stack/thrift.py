"""The Spark Thrift Server (HiveServer2 protocol) of the shared warehouse: the SQL endpoint of dbt's `thrift`
target and of analysts (beeline, PyHive). Started from pyspark's own jars and launcher, with the warehouse's
Spark settings (ingestion/spark.py), so it sees the same lake and the same metastore as the loaders.

Its home folder is `<stack_dir>/thrift`:

    conf/spark-defaults.conf   the Spark settings, written on every start (mode 0600: it holds the metastore
                               password, which therefore never appears on a command line)
    logs/thriftserver.out      the JVM's output (conf/spark/thriftserver-log4j2.properties)
    scratch/                   Hive scratch and operation-log folders
    thriftserver.pid

It listens on 127.0.0.1:<settings.thrift_port> and takes only logins the stack's LDAP server accepts
(ingestion/stack/ldap.py): user name and password, checked by binding as uid=<user>,ou=people,dc=adx,dc=local.
Clients (PyHive, dbt) use auth=LDAP, beeline `-n <user> -p <password>`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ingestion.raw_encryption import kms_client_jars
from ingestion.settings import LOOPBACK_ONLY_ENV, PROJECT_DIR, Settings
from ingestion.stack.ldap import PEOPLE, LdapServer
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
    name = "thrift"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = settings.thrift_port
        self.address = f"{HOST}:{self.port}"
        self.home = settings.stack_dir / "thrift"
        self.conf_file = self.home / "conf" / "spark-defaults.conf"
        self.scratch_dir = self.home / "scratch"
        self.process = ManagedProcess(
            "the Spark Thrift Server",
            pid_file=self.home / "thriftserver.pid",
            marker=f"--properties-file {self.conf_file}",
            log_files=[self.home / "logs" / "thriftserver.out"],
        )

    def start(self, timeout: float = 180.0) -> None:
        """Start the server and wait until it answers a query; a running server is left alone."""
        if self.process.pid() is not None:
            self.wait_until_healthy(timeout)
            return
        ensure_ports_free(HOST, {self.port: "ADX_THRIFT_PORT"}, f"the Spark Thrift Server of {self.home}")
        self.scratch_dir.mkdir(parents=True, exist_ok=True)
        self._write_conf()
        home = spark_home()
        command = [
            str(home / "bin" / "spark-submit"),
            "--properties-file",
            str(self.conf_file),
            "--class",
            SERVER_CLASS,
            "--name",
            "adx-thrift-server",
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
            f"hive.server2.authentication.ldap.baseDN={PEOPLE}",
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

        connection = hive.connect(
            host=HOST,
            port=self.port,
            username=self.settings.thrift_user,
            password=self.settings.resolved_thrift_password(),
            auth="LDAP",
        )
        try:
            cursor = connection.cursor()
            cursor.execute(sql)
            return cursor.fetchall() if cursor.description else []
        finally:
            connection.close()

    def _write_conf(self) -> None:
        from ingestion.spark import spark_conf

        conf = spark_conf(self.settings)
        conf["spark.app.name"] = "adx-thrift-server"
        conf["spark.driver.memory"] = self.settings.thrift_driver_memory
        conf["spark.driver.extraJavaOptions"] = (
            f"-Dlog4j2.configurationFile=file:{LOG4J_CONFIG} -Dderby.stream.error.file={self.home}/logs/derby.log"
        )
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
        self.conf_file.touch(mode=0o600)
        self.conf_file.chmod(0o600)
        self.conf_file.write_text("\n".join(lines) + "\n")


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"
