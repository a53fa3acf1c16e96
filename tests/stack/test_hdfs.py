"""The local HDFS of `adx stack`: a real NameNode and DataNode (two JVMs) on free ports under a temporary data
folder, shared by this module's integration tests and written to through Spark's own HDFS client."""

from __future__ import annotations

import os
import re
import socket
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from ports import free_port_block

from ingestion.settings import Settings
from ingestion.stack.hdfs import (
    HdfsDataNode,
    HdfsNameNode,
    hdfs_client_conf,
    hdfs_health,
    namenode_report,
    write_configuration,
)
from ingestion.stack.process import PortInUseError, StackError, port_in_use


def _free_hdfs_port() -> int:
    """A port p with p .. p + 4 free (NameNode RPC and web, DataNode data, IPC and web), from 20100-20899."""
    return free_port_block(5, 20100, 20899, "the test HDFS")


@dataclass(frozen=True)
class HdfsCluster:
    settings: Settings  # data_dir is a temporary folder; hdfs_port points at this cluster
    namenode: HdfsNameNode
    datanode: HdfsDataNode
    uri: str  # hdfs://127.0.0.1:<port>


@pytest.fixture(scope="module")
def hdfs(tmp_path_factory) -> Iterator[HdfsCluster]:
    """A NameNode and a DataNode for this module. A test that stops one must start it again before it ends."""
    data_dir: Path = tmp_path_factory.mktemp("adx-hdfs")
    for attempt in range(3):  # another process may take a port between the check and the daemon's bind
        settings = Settings(data_dir=data_dir, hdfs_port=_free_hdfs_port())
        namenode, datanode = HdfsNameNode(settings), HdfsDataNode(settings)
        try:
            namenode.start()
            datanode.start()
            break
        except PortInUseError:
            datanode.stop()
            namenode.stop()
            if attempt == 2:
                raise
    try:
        yield HdfsCluster(settings, namenode, datanode, f"hdfs://127.0.0.1:{settings.hdfs_port}")
    finally:
        datanode.stop()
        namenode.stop()


@pytest.fixture(scope="module")
def hdfs_spark(spark, hdfs):
    """The test session's SparkSession, with the client settings of a single-DataNode cluster."""
    hadoop_conf = spark.sparkContext._jsc.hadoopConfiguration()
    for key, value in hdfs_client_conf(hdfs.settings).items():
        hadoop_conf.set(key.removeprefix("spark.hadoop."), value)
    return spark


def _write(spark, path: str, n: int) -> list[tuple[int, str]]:
    """Write n rows as one parquet file (built in the JVM: no Python worker to start) and return them."""
    frame = spark.range(n).selectExpr("id", "concat('impression-', id) as name").coalesce(1)
    frame.write.mode("overwrite").parquet(path)
    return [(i, f"impression-{i}") for i in range(n)]


def _read(spark, path: str) -> list[tuple[int, str]]:
    return sorted((row.id, row.name) for row in spark.read.parquet(path).collect())


def _listening(pid: int) -> set[tuple[str, int]]:
    """The (address, port) pairs on which process `pid` accepts TCP connections."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    addresses = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                host, port = fields[1].split(":")
                if table == "tcp":
                    host = socket.inet_ntoa(bytes.fromhex(host)[::-1])
                addresses.add((host, int(port, 16)))
    return addresses


@pytest.mark.integration
def test_namenode_and_datanode_are_healthy_on_the_loopback_interface(hdfs):
    port = hdfs.settings.hdfs_port
    namenode, datanode = hdfs.namenode.status(), hdfs.datanode.status()
    assert (namenode.name, namenode.running, namenode.healthy) == ("hdfs-namenode", True, True), namenode.detail
    assert (datanode.name, datanode.running, datanode.healthy) == ("hdfs-datanode", True, True), datanode.detail
    assert namenode.address == hdfs.uri and datanode.address == f"127.0.0.1:{port + 2}"
    assert namenode.detail.startswith("1 live DataNode,") and "free" in namenode.detail
    assert hdfs_health(hdfs.settings) is None

    # Every server socket of both JVMs is on 127.0.0.1, on the ports that ADX_HDFS_PORT sets.
    namenode_sockets, datanode_sockets = _listening(namenode.pid), _listening(datanode.pid)
    assert {host for host, _ in namenode_sockets | datanode_sockets} == {"127.0.0.1"}
    assert {p for _, p in namenode_sockets} == {port, port + 1}
    assert {port + 2, port + 3, port + 4} <= {p for _, p in datanode_sockets}  # + the web server's internal Jetty

    core_site = ElementTree.parse(hdfs.namenode.conf_dir / "core-site.xml").getroot()
    properties = {p.findtext("name"): p.findtext("value") for p in core_site}
    assert properties["fs.defaultFS"] == hdfs.uri
    assert (hdfs.namenode.name_dir / "current" / "VERSION").is_file()  # formatted on the first start


@pytest.mark.integration
def test_start_again_is_a_no_op(hdfs):
    pids = hdfs.namenode.pid(), hdfs.datanode.pid()
    started = time.monotonic()
    hdfs.namenode.start()
    hdfs.datanode.start()
    assert time.monotonic() - started < 5
    assert (hdfs.namenode.pid(), hdfs.datanode.pid()) == pids


@pytest.mark.integration
def test_a_file_written_through_hdfs_reads_back_with_one_replica(hdfs, hdfs_spark):
    path = f"{hdfs.uri}/t/x"
    rows = _write(hdfs_spark, path, 1000)
    assert _read(hdfs_spark, path) == rows

    jvm = hdfs_spark.sparkContext._jvm
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
    fs = hadoop_path.getFileSystem(hdfs_spark.sparkContext._jsc.hadoopConfiguration())
    parts = [s for s in fs.listStatus(hadoop_path) if s.getPath().getName().endswith(".parquet")]
    assert len(parts) == 1 and parts[0].getReplication() == 1
    assert namenode_report(hdfs.settings).blocks >= 1


@pytest.mark.integration
def test_a_stopped_datanode_is_named_and_writes_fail_until_it_is_back(hdfs, hdfs_spark):
    before = f"{hdfs.uri}/t/before-datanode-stop"
    rows = _write(hdfs_spark, before, 100)
    pid = hdfs.datanode.pid()
    try:
        assert hdfs.datanode.stop() is True  # a clean shutdown on SIGTERM
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        assert not hdfs.datanode.process.pid_file.exists()
        status = hdfs.datanode.status()
        assert (status.running, status.healthy, status.pid, status.detail) == (False, False, None, "stopped")
        assert hdfs.namenode.status().detail.startswith("0 live DataNodes,")
        # The NameNode still counts the DataNode as live for a while, but its data port is closed.
        assert hdfs_health(hdfs.settings) == f"HDFS at {hdfs.uri} has no live DataNode: start it with `adx stack up`"
        with pytest.raises(Exception) as failed:  # noqa: B017 - py4j's error, whatever wraps it
            _write(hdfs_spark, f"{hdfs.uri}/t/while-datanode-stopped", 10)
        assert re.search(r"could only be written to 0 of the 1 minReplication nodes", str(failed.value))
    finally:
        hdfs.datanode.start()

    assert hdfs.datanode.pid() not in (None, pid)
    assert hdfs.datanode.status().healthy and hdfs_health(hdfs.settings) is None
    assert _read(hdfs_spark, before) == rows
    after = f"{hdfs.uri}/t/after-datanode-restart"
    rows_after = _write(hdfs_spark, after, 10)  # the client does not keep the DataNode excluded
    assert _read(hdfs_spark, after) == rows_after


@pytest.mark.integration
def test_stop_leaves_no_process_and_a_restart_keeps_the_files(hdfs, hdfs_spark):
    path = f"{hdfs.uri}/t/across-restart"
    rows = _write(hdfs_spark, path, 100)
    pids = [hdfs.namenode.pid(), hdfs.datanode.pid()]
    port = hdfs.settings.hdfs_port
    try:
        assert hdfs.datanode.stop() is True
        assert hdfs.namenode.stop() is True
        for pid in pids:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
        assert not list(hdfs.namenode.home.glob("*.pid"))
        assert not any(port_in_use("127.0.0.1", p) for p in range(port, port + 5))
        assert [s.running for s in (hdfs.namenode.status(), hdfs.datanode.status())] == [False, False]
        assert hdfs_health(hdfs.settings).startswith(f"HDFS at {hdfs.uri} does not answer, its NameNode is down")
        assert hdfs.namenode.stop() is True and hdfs.datanode.stop() is True  # stopping twice: nothing to do

        # A NameNode that holds blocks serves requests, but stays in safe mode until the DataNode reports them.
        hdfs.namenode.start()
        status = hdfs.namenode.status()
        assert (status.running, status.healthy) == (True, False)
        assert status.detail.startswith("in safe mode: Safe mode is ON. The reported blocks 0 needs additional")
        assert "no live DataNode" in hdfs_health(hdfs.settings)
    finally:
        hdfs.namenode.start()
        hdfs.datanode.start()

    assert hdfs.namenode.status().healthy and hdfs.datanode.status().healthy
    assert hdfs_health(hdfs.settings) is None
    assert _read(hdfs_spark, path) == rows


@pytest.mark.integration
def test_a_namenode_that_exits_at_start_is_reported_with_its_log(tmp_path):
    """A name folder of another layout version: the NameNode exits at once, and start() says so with its log."""
    settings = Settings(data_dir=tmp_path, hdfs_port=_free_hdfs_port())
    namenode = HdfsNameNode(settings)
    (namenode.name_dir / "current").mkdir(parents=True)
    unsupported_layout = "layoutVersion=-1\nstorageType=NAME_NODE\n"  # pragma: allowlist secret
    (namenode.name_dir / "current" / "VERSION").write_text(unsupported_layout)
    with pytest.raises(StackError, match="exited") as raised:
        namenode.start(timeout=60)
    assert "last lines of" in str(raised.value) and "namenode.log" in str(raised.value)
    assert namenode.pid() is None and not namenode.process.pid_file.exists()


def test_start_refuses_ports_taken_by_another_process(tmp_path):
    port = _free_hdfs_port()
    settings = Settings(data_dir=tmp_path, hdfs_port=port)
    with socket.socket() as other:
        other.bind(("127.0.0.1", port))
        other.listen()
        with pytest.raises(PortInUseError, match=f"127.0.0.1:{port} is in use .* set ADX_HDFS_PORT to another port"):
            HdfsNameNode(settings).start()
    with socket.socket() as other:
        other.bind(("127.0.0.1", port + 3))
        other.listen()
        with pytest.raises(PortInUseError, match=re.escape(f"{port + 3} is in use") + r".*ADX_HDFS_PORT \(port \+ 3\)"):
            HdfsDataNode(settings).start()
    assert not list((settings.stack_dir / "hdfs").glob("*.pid"))


def test_a_datanode_needs_the_namenode(tmp_path):
    settings = Settings(data_dir=tmp_path, hdfs_port=_free_hdfs_port())
    with pytest.raises(StackError, match=r"does not answer .*: start the NameNode first"):
        HdfsDataNode(settings).start()
    assert hdfs_health(settings).startswith(f"HDFS at hdfs://127.0.0.1:{settings.hdfs_port} does not answer")


def test_the_configuration_binds_everything_to_127_0_0_1(tmp_path):
    settings = Settings(data_dir=tmp_path, hdfs_port=19820)
    write_configuration(settings, tmp_path / "conf")
    hdfs_site = ElementTree.parse(tmp_path / "conf" / "hdfs-site.xml").getroot()
    properties = {p.findtext("name"): p.findtext("value") for p in hdfs_site}
    addresses = {key: value for key, value in properties.items() if key.endswith("address")}
    assert all(value.startswith("127.0.0.1:") for value in addresses.values()), addresses
    assert {addresses[f"dfs.{key}"] for key in ("namenode.rpc-address", "namenode.http-address")} == {
        "127.0.0.1:19820",
        "127.0.0.1:19821",
    }
    assert [addresses[f"dfs.datanode.{key}"] for key in ("address", "ipc.address", "http.address")] == [
        "127.0.0.1:19822",
        "127.0.0.1:19823",
        "127.0.0.1:19824",
    ]
    assert properties["dfs.replication"] == "1" and properties["dfs.permissions.enabled"] == "true"
    client = hdfs_client_conf(settings)
    assert all(key.startswith("spark.hadoop.dfs.") for key in client)
    assert client["spark.hadoop.dfs.replication"] == "1"
