"""Incidents injected into a generated landing folder before it is loaded: what the anomaly tests must catch."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from datetime import date
from pathlib import Path


def impressions_by_campaign(landing_dir: Path, day: date) -> Counter[str]:
    """Impressions per campaign in the JSON lines of one arrival day (lines that do not parse are left out)."""
    counts: Counter[str] = Counter()
    for path in sorted((landing_dir / "impressions" / f"dt={day}").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            record = _json_object(line)
            if record is not None:
                counts[str(record.get("campaign_id"))] += 1
    return counts


def drop_campaign_impressions(landing_dir: Path, day: date, campaign_id: str) -> int:
    """Remove every second impression of `campaign_id` from the arrival day's files (a 50 % volume drop).
    Returns how many lines were removed."""
    removed = 0
    seen = 0
    for path in sorted((landing_dir / "impressions" / f"dt={day}").glob("*.jsonl")):
        kept = []
        for line in path.read_text(encoding="utf-8").splitlines():
            record = _json_object(line)
            if record is not None and record.get("campaign_id") == campaign_id:
                seen += 1
                if seen % 2 == 0:
                    removed += 1
                    continue
            kept.append(line)
        path.write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")
    return removed


def stall_source(landing_dir: Path, landing_subdir: str, days: list[date]) -> None:
    """The source delivered nothing on these arrival days: their folders are gone."""
    for day in days:
        shutil.rmtree(landing_dir / landing_subdir / f"dt={day}")


def _json_object(line: str) -> dict | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None
