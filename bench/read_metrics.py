"""Files and bytes a Spark session read, from its status REST API (the Spark UI's, on 127.0.0.1): the sum over
file scans of "number of files read", and the sum over stages of input bytes. A bench session enables the UI with
READ_METRICS_CONF; before/after snapshots give what one step read."""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass

# The UI on an ephemeral local port, keeping every execution and stage of a long dbt build for the counts.
READ_METRICS_CONF = {
    "spark.ui.enabled": "true",
    "spark.ui.port": "0",
    "spark.ui.retainedJobs": "1000000",
    "spark.ui.retainedStages": "1000000",
    "spark.sql.ui.retainedExecutions": "1000000",
}


@dataclass(frozen=True)
class Reads:
    files: int
    bytes: int
    executions: int

    def __sub__(self, earlier: Reads) -> Reads:
        return Reads(self.files - earlier.files, self.bytes - earlier.bytes, self.executions - earlier.executions)


def _get(url: str):
    with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 (the local Spark UI)
        return json.loads(response.read())


def _number(value: str) -> int:
    """A count metric as the REST API formats it ("1,234")."""
    return int(value.replace(",", "").split()[0])


def snapshot(spark) -> Reads:
    """Everything the session has read so far."""
    base = spark.sparkContext.uiWebUrl
    if not base:
        raise RuntimeError("the session has no UI: start it with READ_METRICS_CONF")
    application = f"{base}/api/v1/applications/{spark.sparkContext.applicationId}"
    stages = _get(f"{application}/stages")
    executions = _get(f"{application}/sql?details=true&planDescription=false&offset=0&length=1000000")
    files = sum(
        _number(metric["value"])
        for execution in executions
        for node in execution.get("nodes", [])
        for metric in node.get("metrics", [])
        if metric["name"] == "number of files read"
    )
    return Reads(files=files, bytes=sum(stage.get("inputBytes", 0) for stage in stages), executions=len(executions))
