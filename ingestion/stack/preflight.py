"""Checks run before a job opens the warehouse: a service it needs that is down, or a wrong password, is
reported in one line that names the setting, instead of a JVM stack trace minutes later."""

from __future__ import annotations

from ingestion.settings import Settings
from ingestion.stack.hdfs import hdfs_health
from ingestion.stack.postgres import check_metastore
from ingestion.stack.process import StackError, port_open
from ingestion.stack.thrift import HOST as THRIFT_HOST
from ingestion.stack.thrift import ThriftServer


def check_warehouse(settings: Settings) -> None:
    """Raise StackError if the metastore database or the HDFS lake of `settings` cannot be used now. The embedded
    defaults (Derby, a local folder) need nothing."""
    check_metastore(settings)
    if settings.resolved_lake_uri.startswith("hdfs://"):
        reason = hdfs_health(settings)
        if reason:
            raise StackError(reason)


def check_dbt_target(settings: Settings) -> None:
    """Raise StackError if dbt's target is the Thrift server and nothing listens on its port."""
    if settings.resolved_dbt_target == "thrift" and not port_open(THRIFT_HOST, settings.thrift_port):
        raise StackError(
            f"no Spark Thrift Server at {THRIFT_HOST}:{settings.thrift_port} (ADX_THRIFT_PORT) for dbt's thrift "
            "target: start it with `adx stack up`"
        )


def thrift_diagnosis(settings: Settings) -> str:
    """What to do after a dbt run on the thrift target failed, depending on whether the server is still up."""
    server = ThriftServer(settings)
    if server.pid() is None:
        return (
            f"The Spark Thrift Server at {server.address} is not running (its log: {server.process.log_files[0]}). "
            "Restart it with `adx stack up`, then rerun: the interrupted models committed nothing, so the rerun "
            "rebuilds them."
        )
    return f"The Spark Thrift Server at {server.address} is running; its log: {server.process.log_files[0]}"
