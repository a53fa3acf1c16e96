"""Starts a streaming landing query: one foreachBatch writer, its checkpoint, and the trigger of the run mode."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ingestion.settings import Settings
from ingestion.streaming.raw_sink import StreamBatchResult

if TYPE_CHECKING:
    from pyspark.sql import DataFrame
    from pyspark.sql.streaming import StreamingQuery


def checkpoint_dir(settings: Settings, query_name: str) -> Path:
    return settings.checkpoints_dir / query_name


@dataclass
class Landing:
    """A running landing query and the micro-batches it has committed so far."""

    query: StreamingQuery
    batches: list[StreamBatchResult] = field(default_factory=list)

    def wait(self) -> list[StreamBatchResult]:
        """Block until the query ends (an available-now query ends by itself); raise if it failed."""
        try:
            self.query.awaitTermination()
        finally:
            if self.query.isActive:
                self.query.stop()
        return self.batches


def start_landing(
    frame: DataFrame,
    query_name: str,
    land_batch: Callable[[DataFrame, int], StreamBatchResult],
    settings: Settings,
    continuous: bool,
) -> Landing:
    """Start a foreachBatch query: available-now (what is there at start, then stop) or a micro-batch every
    `stream_trigger_seconds` until stopped."""
    batches: list[StreamBatchResult] = []
    writer = (
        frame.writeStream.queryName(query_name)
        .option("checkpointLocation", str(checkpoint_dir(settings, query_name)))
        .foreachBatch(lambda records, number: batches.append(land_batch(records, number)))
    )
    writer = (
        writer.trigger(processingTime=f"{settings.stream_trigger_seconds} seconds")
        if continuous
        else writer.trigger(availableNow=True)
    )
    return Landing(writer.start(), batches)
