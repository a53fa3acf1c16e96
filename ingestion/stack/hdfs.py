"""A pseudo-distributed HDFS run by the project: one NameNode JVM and one DataNode JVM, both on 127.0.0.1.

The daemons' jars come from Maven Central (`make hadoop-jars`, jvm/hadoop/pom.xml) into .hadoop/libs; their home
folder is `<stack_dir>/hdfs`:

    conf/core-site.xml      written on every start from the settings (first on the daemons' classpath)
    conf/hdfs-site.xml
    name/                   the NameNode's fsimage and edit log (formatted on its first start)
    data/                   the DataNode's blocks
    logs/namenode.log       the daemons' logs (conf/hadoop/log4j.properties)
    logs/datanode.log
    logs/namenode.out       each JVM's stdout and stderr
    logs/datanode.out
    namenode.pid            the pids of the running daemons
    datanode.pid

Ports, from `settings.hdfs_port` (ADX_HDFS_PORT): NameNode RPC = port (the lake's hdfs://127.0.0.1:<port>),
NameNode web = +1, DataNode data transfer = +2, DataNode IPC = +3, DataNode web = +4.

Health comes from the NameNode's web JMX: the NameNode is healthy when it is out of safe mode, the DataNode when
the NameNode counts it as live. A restarted NameNode that holds blocks stays in safe mode until the DataNode has
reported them, so `HdfsNameNode.start` returns once the NameNode serves requests, and `HdfsDataNode.start` once
the NameNode has the DataNode's blocks and has left safe mode.
"""

from __future__ import annotations

import json
import re
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from ingestion.settings import PROJECT_DIR, Settings
from ingestion.stack.process import (
    ManagedProcess,
    StackError,
    ensure_ports_free,
    java_binary,
    port_in_use,
    port_open,
    wait_until,
)

HADOOP_LIBS_DIR = PROJECT_DIR / ".hadoop" / "libs"
LOG4J_CONFIG = PROJECT_DIR / "conf" / "hadoop" / "log4j.properties"
HOST = "127.0.0.1"
NAMENODE_CLASS = "org.apache.hadoop.hdfs.server.namenode.NameNode"
DATANODE_CLASS = "org.apache.hadoop.hdfs.server.datanode.DataNode"

# A DataNode heartbeats every HEARTBEAT_S; the NameNode calls it stale after STALE_S without one and dead (and
# drops it from the live nodes) after 2 * RECHECK_MS + 10 * HEARTBEAT_S = 60 s, instead of the default 10.5 min.
HEARTBEAT_S = 3
STALE_S = 10
RECHECK_MS = 15_000


@dataclass(frozen=True)
class HdfsPorts:
    namenode_rpc: int
    namenode_http: int
    datanode_data: int
    datanode_ipc: int
    datanode_http: int

    @classmethod
    def of(cls, settings: Settings) -> HdfsPorts:
        port = settings.hdfs_port
        if not 0 < port < 65535 - 4:
            raise StackError(f"ADX_HDFS_PORT is {port}, but HDFS needs it and the 4 ports after it")
        return cls(port, port + 1, port + 2, port + 3, port + 4)


def hdfs_uri(settings: Settings) -> str:
    """The file system of the local HDFS: hdfs://127.0.0.1:<hdfs_port>."""
    return f"hdfs://{HOST}:{settings.hdfs_port}"


def hdfs_client_conf(settings: Settings) -> dict[str, str]:
    """Spark settings (spark.hadoop.*) for an HDFS client of the local cluster, which has a single DataNode."""
    return {
        # Files get one replica. The client, not the NameNode, chooses the replication of what it writes, and with
        # its default of 3 every block would stay under-replicated for ever.
        "spark.hadoop.dfs.replication": "1",
        # A file that still asks for 3 replicas gets a write pipeline of the one DataNode; if that hiccups during
        # an append or hflush, the client would look for a replacement DataNode that does not exist and fail
        # ("Failed to replace a bad datanode on the existing pipeline") instead of retrying the one it has.
        "spark.hadoop.dfs.client.block.write.replace-datanode-on-failure.policy": "NEVER",
    }


# --- the NameNode's view, from its web JMX ------------------------------------------------------------------


@dataclass(frozen=True)
class LiveDataNode:
    """A DataNode the NameNode counts as live (it has heartbeated within the last 60 s)."""

    name: str  # host:port it registered with
    transfer_address: str  # where clients send and fetch blocks
    last_contact_s: int  # seconds since its last heartbeat
    blocks: int
    used_bytes: int
    remaining_bytes: int

    @property
    def reachable(self) -> bool:
        """Heartbeating (not stale) and accepting connections on its data transfer port: a stopped DataNode stays
        live in the NameNode's eyes for a minute, but its port closes at once."""
        host, _, port = self.transfer_address.rpartition(":")
        return self.last_contact_s <= STALE_S and port.isdigit() and port_open(host, int(port))


@dataclass(frozen=True)
class NameNodeReport:
    safe_mode: str  # empty when off, else the NameNode's explanation
    live_datanodes: tuple[LiveDataNode, ...]
    capacity_bytes: int
    used_bytes: int  # by HDFS blocks
    remaining_bytes: int
    files_and_directories: int
    blocks: int

    def datanode(self, transfer_address: str) -> LiveDataNode | None:
        return next((d for d in self.live_datanodes if d.transfer_address == transfer_address), None)

    @property
    def reachable_datanodes(self) -> list[LiveDataNode]:
        return [d for d in self.live_datanodes if d.reachable]


def namenode_report(settings: Settings, timeout: float = 5.0) -> NameNodeReport:
    """The state of the local NameNode from its web JMX; StackError if it does not answer."""
    ports = HdfsPorts.of(settings)
    info = _jmx(ports.namenode_http, "Hadoop:service=NameNode,name=NameNodeInfo", timeout)
    state = _jmx(ports.namenode_http, "Hadoop:service=NameNode,name=FSNamesystemState", timeout)
    live = []
    for name, node in json.loads(info.get("LiveNodes") or "{}").items():
        live.append(
            LiveDataNode(
                name=name,
                transfer_address=node.get("xferaddr", name),
                last_contact_s=int(node.get("lastContact", 0)),
                blocks=int(node.get("numBlocks", 0)),
                used_bytes=int(node.get("used", 0)),
                remaining_bytes=int(node.get("remaining", 0)),
            )
        )
    return NameNodeReport(
        safe_mode=str(info.get("Safemode", "")).strip(),
        live_datanodes=tuple(live),
        capacity_bytes=int(state.get("CapacityTotal", 0)),
        used_bytes=int(state.get("CapacityUsed", 0)),
        remaining_bytes=int(state.get("CapacityRemaining", 0)),
        files_and_directories=int(state.get("FilesTotal", 0)),
        blocks=int(state.get("BlocksTotal", 0)),
    )


def hdfs_health(settings: Settings) -> str | None:
    """None if the local HDFS can serve jobs: its NameNode answers, is out of safe mode and has a reachable live
    DataNode. Else one line saying what is wrong and what to do (a preflight for jobs on an hdfs:// lake)."""
    uri = hdfs_uri(settings)
    try:
        report = namenode_report(settings)
    except StackError as error:
        return f"HDFS at {uri} does not answer, its NameNode is down ({error}): start it with `adx stack up`"
    if not report.reachable_datanodes:
        return f"HDFS at {uri} has no live DataNode: start it with `adx stack up`"
    if report.safe_mode:
        log = settings.stack_dir / "hdfs" / "logs" / "namenode.log"
        return f"HDFS at {uri} is in safe mode, read-only: {_one_line(report.safe_mode)} (see {log})"
    return None


# --- the daemons ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HdfsStatus:
    name: str  # the service name shown by `adx stack status`
    running: bool
    pid: int | None
    address: str
    healthy: bool
    detail: str  # what it holds, or what is wrong


class _HdfsDaemon:
    """What the NameNode and the DataNode share: the home folder, the configuration, the JVM command line."""

    name: str
    label: str  # in messages, e.g. "the HDFS NameNode"
    daemon: str  # "namenode" or "datanode": names the pid, log and out files
    main_class: str

    def __init__(self, settings: Settings, *, libs_dir: Path = HADOOP_LIBS_DIR, heap: str = "256m") -> None:
        self.settings = settings
        self.ports = HdfsPorts.of(settings)
        self.uri = hdfs_uri(settings)
        self.libs_dir = libs_dir
        self.web_dir = libs_dir.parent / "web"  # webapps/{hdfs,datanode,static}: the daemons' web UI pages
        self.heap = heap
        self.home = settings.stack_dir / "hdfs"
        self.conf_dir = self.home / "conf"
        self.name_dir = self.home / "name"
        self.data_dir = self.home / "data"
        self.logs_dir = self.home / "logs"
        self.process = ManagedProcess(
            self.label,
            pid_file=self.home / f"{self.daemon}.pid",
            # The absolute log folder and the daemon's log file tell this home's daemon from any other.
            marker=" ".join(self._log_options()),
            log_files=[self.logs_dir / f"{self.daemon}.out", self.logs_dir / f"{self.daemon}.log"],
        )

    def pid(self) -> int | None:
        """The pid of this home's daemon if it is running, else None."""
        return self.process.pid()

    def stop(self, timeout: float = 60.0) -> bool:
        """SIGTERM, on which a Hadoop daemon shuts down in order (the NameNode closes its edit log); SIGKILL only
        if it has not exited after `timeout`. Returns False if it had to be killed. Stopping a stopped daemon does
        nothing."""
        return self.process.stop(timeout)

    def log_tail(self, lines: int = 30) -> str:
        return self.process.log_tail(lines)

    def _prepare(self, ports: dict[int, str]) -> str:
        """Check the ports and the jars, write the configuration; returns the java binary."""
        ensure_ports_free(HOST, ports, f"{self.label} of {self.home}")
        if not any(self.libs_dir.glob("hadoop-hdfs-*.jar")) or not (self.web_dir / "webapps").is_dir():
            raise StackError(
                f"the Hadoop jars and web pages are not in {self.libs_dir} and {self.web_dir}: run `make hadoop-jars`"
            )
        java = java_binary()
        for folder in (self.conf_dir, self.logs_dir, self.name_dir, self.data_dir):
            folder.mkdir(parents=True, exist_ok=True)
        write_configuration(self.settings, self.conf_dir)
        return java

    def _command(self, java: str, *arguments: str) -> list[str]:
        return [
            java,
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            "-Djava.net.preferIPv4Stack=true",
            f"-Dproc_{self.daemon}",  # what Hadoop's own scripts pass: names the daemon in `ps` and `jps -v`
            f"-Dlog4j.configuration=file:{LOG4J_CONFIG}",
            *self._log_options(),
            "-cp",
            f"{self.conf_dir}:{self.web_dir}:{self.libs_dir}/*",
            self.main_class,
            *arguments,
        ]

    def _log_options(self) -> list[str]:
        return [f"-Dhadoop.log.dir={self.logs_dir}", f"-Dhadoop.log.file={self.daemon}.log"]

    def _spawn_and_wait(self, java: str, check: Callable[[], str | None], timeout: float, what: str) -> None:
        self.process.spawn(self._command(java), cwd=self.home)
        try:
            wait_until(check, timeout=timeout, process=self.process, what=what)
        except StackError:
            self.stop(timeout=10)
            raise

    def _stopped_status(self, address: str, ports: list[int]) -> HdfsStatus:
        busy = [str(port) for port in ports if port_in_use(HOST, port)]
        detail = "stopped"
        if busy:
            detail += f", and port {', '.join(busy)} is in use by another process"
        return HdfsStatus(self.name, running=False, pid=None, address=address, healthy=False, detail=detail)


class HdfsNameNode(_HdfsDaemon):
    """Start, stop and inspect the NameNode. Every method can be called from any process: the state is the pid
    file and the process it names, not this object."""

    name = "hdfs-namenode"
    label = "the HDFS NameNode"
    daemon = "namenode"
    main_class = NAMENODE_CLASS

    def start(self, timeout: float = 90.0) -> None:
        """Start the NameNode (formatting a new namespace on the first start) and wait until it serves requests.
        It may still be in safe mode then, waiting for the DataNode's blocks. A running NameNode is left alone."""
        if self.pid() is not None:
            self.wait_until_serving(timeout)
            return
        java = self._prepare(
            {self.ports.namenode_rpc: "ADX_HDFS_PORT", self.ports.namenode_http: "ADX_HDFS_PORT (port + 1)"}
        )
        if not (self.name_dir / "current" / "VERSION").exists():
            self._format(java)
        self._spawn_and_wait(java, self._not_serving, timeout, "serving requests")

    def status(self) -> HdfsStatus:
        pid = self.pid()
        if pid is None:
            return self._stopped_status(self.uri, [self.ports.namenode_rpc, self.ports.namenode_http])
        try:
            report = namenode_report(self.settings)
        except StackError as error:
            return HdfsStatus(self.name, True, pid, self.uri, healthy=False, detail=f"not serving yet: {error}")
        if report.safe_mode:
            detail = f"in safe mode: {_one_line(report.safe_mode)}"
            return HdfsStatus(self.name, True, pid, self.uri, healthy=False, detail=detail)
        live = len(report.reachable_datanodes)
        detail = (
            f"{live} live DataNode{'' if live == 1 else 's'}, {_size(report.used_bytes)} used, "
            f"{_size(report.remaining_bytes)} free; {report.files_and_directories} files and directories, "
            f"{report.blocks} blocks"
        )
        return HdfsStatus(self.name, True, pid, self.uri, healthy=True, detail=detail)

    def wait_until_serving(self, timeout: float = 90.0) -> None:
        """Wait until the NameNode answers on its RPC port and its web JMX (in safe mode or not)."""
        wait_until(self._not_serving, timeout=timeout, process=self.process, what="serving requests")

    def _not_serving(self) -> str | None:
        # The web server starts before the namespace is loaded, the RPC server after.
        if not port_open(HOST, self.ports.namenode_rpc):
            return f"its RPC port {self.ports.namenode_rpc} is not open yet"
        try:
            namenode_report(self.settings)
        except StackError as error:
            return str(error)
        return None

    def _format(self, java: str) -> None:
        """Create an empty namespace in name/ (first start only: formatting writes name/current/VERSION). If
        data/ holds blocks of an earlier namespace, the new one takes its cluster id, so that the DataNode
        accepts it (the old blocks are then unused)."""
        arguments = ["-format", "-nonInteractive", "-force"]
        cluster_id = _storage_property(self.data_dir / "current" / "VERSION", "clusterID")
        if cluster_id:
            arguments += ["-clusterid", cluster_id]
        command = self._command(java, *arguments)
        command.insert(1, "-XX:TieredStopAtLevel=1")  # a few seconds of work: the JIT's C2 stage would only cost CPU
        result = subprocess.run(command, cwd=self.home, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise StackError(
                f"formatting {self.name_dir} failed:\n{result.stdout}{result.stderr}\n{self.process.log_tail()}"
            )


class HdfsDataNode(_HdfsDaemon):
    """Start, stop and inspect the DataNode; it needs the NameNode running."""

    name = "hdfs-datanode"
    label = "the HDFS DataNode"
    daemon = "datanode"
    main_class = DATANODE_CLASS

    @property
    def transfer_address(self) -> str:
        return f"{HOST}:{self.ports.datanode_data}"

    def start(self, timeout: float = 90.0) -> None:
        """Start the DataNode and wait until the NameNode counts it as live and, having its blocks, has left safe
        mode. A running DataNode is left alone (after waiting for it to be healthy)."""
        if self.pid() is not None:
            self.wait_until_healthy(timeout)
            return
        ports = {
            self.ports.datanode_data: "ADX_HDFS_PORT (port + 2)",
            self.ports.datanode_ipc: "ADX_HDFS_PORT (port + 3)",
            self.ports.datanode_http: "ADX_HDFS_PORT (port + 4)",
        }
        ensure_ports_free(HOST, ports, f"{self.label} of {self.home}")
        try:
            namenode_report(self.settings)
        except StackError as error:
            raise StackError(
                f"the HDFS DataNode registers with the NameNode of {self.uri}, which does not answer ({error}): "
                "start the NameNode first (`adx stack up` does)"
            ) from error
        java = self._prepare(ports)
        self._spawn_and_wait(java, self._not_healthy, timeout, "healthy")

    def status(self) -> HdfsStatus:
        pid = self.pid()
        ports = [self.ports.datanode_data, self.ports.datanode_ipc, self.ports.datanode_http]
        if pid is None:
            return self._stopped_status(self.transfer_address, ports)
        reason = self._not_healthy()
        if reason:
            return HdfsStatus(self.name, True, pid, self.transfer_address, healthy=False, detail=reason)
        try:
            node = namenode_report(self.settings).datanode(self.transfer_address)
        except StackError:  # the NameNode stopped in the meantime: `adx stack status` says so on its own line
            node = None
        detail = (
            f"{node.blocks} blocks, {_size(node.used_bytes)} used, {_size(node.remaining_bytes)} free"
            if node
            else "live"
        )
        return HdfsStatus(self.name, True, pid, self.transfer_address, healthy=True, detail=detail)

    def wait_until_healthy(self, timeout: float = 90.0) -> None:
        wait_until(self._not_healthy, timeout=timeout, process=self.process, what="healthy")

    def _not_healthy(self) -> str | None:
        # The DataNode's own count of block reports first: after a restart the NameNode still lists the previous
        # process as live until this one registers, and a DataNode reports its blocks right after registering.
        try:
            activity = _jmx(self.ports.datanode_http, "Hadoop:service=DataNode,name=DataNodeActivity-*", timeout=5.0)
        except StackError as error:
            return str(error)
        if not activity.get("BlockReportsNumOps"):
            return f"it has not registered with the NameNode of {self.uri} and reported its blocks yet"
        try:
            report = namenode_report(self.settings)
        except StackError as error:
            return f"the NameNode of {self.uri} does not answer ({error})"
        node = report.datanode(self.transfer_address)
        if node is None or not node.reachable:
            return f"the NameNode of {self.uri} does not count it as a live DataNode yet"
        if report.safe_mode:
            return f"the NameNode is still in safe mode: {_one_line(report.safe_mode)}"
        return None


# --- configuration ----------------------------------------------------------------------------------------------


def write_configuration(settings: Settings, conf_dir: Path) -> None:
    """core-site.xml and hdfs-site.xml of both daemons, from the settings."""
    home = settings.stack_dir / "hdfs"
    ports = HdfsPorts.of(settings)
    core_site = {
        "fs.defaultFS": hdfs_uri(settings),
        "hadoop.tmp.dir": str(home / "tmp"),  # not /tmp/hadoop-<user>
        # The web servers sign their (anonymous) session cookies with a random secret rather than warn on every
        # start that ~/hadoop-http-auth-signature-secret does not exist.
        "hadoop.http.authentication.signer.secret.provider": "random",
    }
    hdfs_site = {
        "dfs.namenode.name.dir": (home / "name").as_uri(),
        "dfs.datanode.data.dir": (home / "data").as_uri(),
        "dfs.replication": "1",
        # Every server socket on the loopback interface only.
        "dfs.namenode.rpc-address": f"{HOST}:{ports.namenode_rpc}",
        "dfs.namenode.http-address": f"{HOST}:{ports.namenode_http}",
        "dfs.namenode.https-address": f"{HOST}:0",  # not opened: dfs.http.policy is HTTP_ONLY
        "dfs.namenode.secondary.http-address": f"{HOST}:0",  # no secondary NameNode is started
        "dfs.http.policy": "HTTP_ONLY",
        "dfs.datanode.address": f"{HOST}:{ports.datanode_data}",
        "dfs.datanode.ipc.address": f"{HOST}:{ports.datanode_ipc}",
        "dfs.datanode.http.address": f"{HOST}:{ports.datanode_http}",
        "dfs.datanode.https.address": f"{HOST}:0",
        # The DataNode registers as 127.0.0.1, not as the machine's host name, which may resolve to another address.
        "dfs.datanode.hostname": HOST,
        # The NameNode would refuse a DataNode whose address does not resolve back to a host name.
        "dfs.namenode.datanode.registration.ip-hostname-check": "false",
        # Safe mode: a NameNode that holds blocks starts read-only until DataNodes have reported 99.9 % of them
        # (the default threshold). The single DataNode holds every block and reports them all at once, so the
        # NameNode leaves safe mode as soon as it has that report rather than 30 s later (the default extension,
        # for clusters whose other DataNodes report later), and waits for no number of DataNodes before.
        "dfs.namenode.safemode.threshold-pct": "0.999",
        "dfs.namenode.safemode.min.datanodes": "0",
        "dfs.namenode.safemode.extension": "0",
        # Notice a stopped DataNode within seconds (stale) and a minute (dead) rather than 10.5 min.
        "dfs.heartbeat.interval": str(HEARTBEAT_S),
        "dfs.namenode.stale.datanode.interval": str(STALE_S * 1000),
        "dfs.namenode.heartbeat.recheck-interval": str(RECHECK_MS),
        # Permissions are checked. The daemons, the loaders and the engineers' Thrift server run as the OS user
        # that started them, the HDFS superuser; the analysts' Thrift server acts as another user, and ACLs keep
        # everything but marts from it (ingestion/stack/lake_access.py).
        "dfs.permissions.enabled": "true",
        "dfs.namenode.acls.enabled": "true",
        # Defaults that make every start warn: a throttle of 1000 ms/s is "no throttle", spelt -1.
        "dfs.datanode.directoryscan.throttle.limit.ms.per.sec": "-1",
    }
    conf_dir.mkdir(parents=True, exist_ok=True)
    (conf_dir / "core-site.xml").write_text(_site_xml(core_site))
    (conf_dir / "hdfs-site.xml").write_text(_site_xml(hdfs_site))
    # No metrics sinks: the web JMX is enough. Metrics reach the JMX as a snapshot taken every period (10 s by
    # default), so that the DataNode's count of block reports, which tells when it has started, would lag.
    (conf_dir / "hadoop-metrics2.properties").write_text(
        "# Written by ingestion/stack/hdfs.py on every start.\n*.period=1\n"
    )


def _site_xml(properties: dict[str, str]) -> str:
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        "<!-- Written by ingestion/stack/hdfs.py on every start; edit the settings, not this file. -->",
        "<configuration>",
    ]
    for key, value in properties.items():
        lines.append(f"  <property><name>{escape(key)}</name><value>{escape(value)}</value></property>")
    lines.append("</configuration>")
    return "\n".join(lines) + "\n"


# --- internals ------------------------------------------------------------------------------------------------


def _jmx(http_port: int, query: str, timeout: float) -> dict:
    url = f"http://{HOST}:{http_port}/jmx?qry={urllib.parse.quote(query, safe=':=,')}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            beans = json.load(response).get("beans", [])
    except (OSError, ValueError) as error:  # URLError, refused, timeout, not JSON
        reason = getattr(error, "reason", error)
        raise StackError(f"no answer from http://{HOST}:{http_port}/jmx: {reason}") from error
    if not beans:
        raise StackError(f"http://{HOST}:{http_port}/jmx has no {query} yet")
    return beans[0]


def _storage_property(version_file: Path, key: str) -> str | None:
    try:
        text = version_file.read_text()
    except FileNotFoundError:
        return None
    match = re.search(rf"^{re.escape(key)}=(.*)$", text, re.MULTILINE)
    return match.group(1).strip() if match else None


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"
