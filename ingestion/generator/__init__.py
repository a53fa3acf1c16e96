"""Synthetic AdvertiseX sources: landing files for N days, their ground truth and a manifest.

`generate()` writes under a data folder (see docs/data_contract.md for the layout):
- `landing/impressions/dt=D/web-0N.jsonl`, `landing/tracking/{clicks,conversions}/dt=D/*.csv`,
  `landing/rtb/dt=D/bid-requests-NN.avro`, one `dt=` folder per arrival date D;
- `ground_truth/as_of=D/{campaign_daily,rtb_daily}.csv` for every arrival date D;
- `ground_truth/manifest.json`: per landing file the records written, how many the loader must quarantine and
  how many staging must reject (by reason), per source the totals, and the generation arguments.

Every random stream is seeded by (seed, day, source), so a day's files do not depend on how many days a run
generates, except for late arrivals, which exist only when their arrival day is generated.
"""

from __future__ import annotations

import gc
import json
import random
import shutil
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from os import PathLike
from pathlib import Path
from typing import Any

__all__ = ["GenerationSummary", "generate"]

SOURCE_NAMES = ("impressions", "clicks", "conversions", "bid_requests")


@dataclass
class GenerationSummary:
    data_dir: Path
    arrival_dates: list[date]
    files: int = 0
    records: dict[str, int] = field(default_factory=dict)  # lines (CSV: without header) / Avro records written
    quarantined: dict[str, int] = field(default_factory=dict)  # the loader must quarantine
    rejected: dict[str, int] = field(default_factory=dict)  # staging must reject
    staged: dict[str, int] = field(default_factory=dict)  # distinct valid events staging must keep
    manifest_path: Path | None = None
    seconds: float = 0.0


class _Manifest:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.files: list[dict[str, Any]] = []

    def add(
        self,
        path: Path,
        source: str,
        arrival: date,
        records: int,
        quarantine: Counter,
        rejects: Counter,
    ) -> None:
        self.files.append(
            {
                "path": path.relative_to(self.data_dir).as_posix(),
                "source": source,
                "arrival_date": arrival.isoformat(),
                "records": records,
                "quarantined": sum(quarantine.values()),
                "quarantine_reasons": dict(sorted(quarantine.items())),
                "staging_rejects": dict(sorted(rejects.items())),
            }
        )

    def sources(self) -> dict[str, dict[str, Any]]:
        totals = {}
        for source in SOURCE_NAMES:
            files = [f for f in self.files if f["source"] == source]
            quarantine: Counter = Counter()
            rejects: Counter = Counter()
            for f in files:
                quarantine.update(f["quarantine_reasons"])
                rejects.update(f["staging_rejects"])
            records = sum(f["records"] for f in files)
            landed = records - sum(quarantine.values())
            totals[source] = {
                "files": len(files),
                "records": records,
                "quarantined": sum(quarantine.values()),
                "landed": landed,
                "rejected": sum(rejects.values()),
                "staged": landed - sum(rejects.values()),
                "quarantine_reasons": dict(sorted(quarantine.items())),
                "staging_rejects": dict(sorted(rejects.items())),
            }
        return totals


def _rng(seed: int, day: date, stream: str) -> random.Random:
    return random.Random(f"{seed}|{day.isoformat()}|{stream}")


def generate(
    target: Path | str | PathLike[str] | Any,
    *,
    days: int = 1,
    scale: int = 1_000_000,
    seed: int = 42,
    start_date: date = date(2026, 11, 1),
    mess_rate: float = 0.01,
    on_progress: Callable[[str], None] | None = None,
) -> GenerationSummary:
    """Generate `days` days of landing files with about `scale` impressions a day, plus ground truth.

    `target` is the data folder, or any object with a `data_dir` attribute (ingestion.settings.Settings).
    A previous run's `landing/` and `ground_truth/` under it are removed first. Prints nothing; progress
    messages go to `on_progress`.
    """
    if days < 1:
        raise ValueError("days must be at least 1")
    if scale < 1:
        raise ValueError("scale must be at least 1")
    if not 0 <= mess_rate <= 0.5:
        raise ValueError("mess_rate must be between 0 and 0.5")
    # Millions of small tuples and no reference cycles: the cyclic garbage collector would only rescan them
    # over and over (it doubles the run time), so it is paused while generating.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _generate(target, days, scale, seed, start_date, mess_rate, on_progress or (lambda _message: None))
    finally:
        if gc_was_enabled:
            gc.enable()


def _generate(
    target: Any,
    days: int,
    scale: int,
    seed: int,
    start_date: date,
    mess_rate: float,
    progress: Callable[[str], None],
) -> GenerationSummary:
    # Imported here so that `python -m ingestion.generator.reference` does not import itself twice.
    from ingestion.generator import events, messiness, writers
    from ingestion.generator.reference import CURRENCY_RATES, reference
    from ingestion.generator.truth import GroundTruth

    started = time.perf_counter()
    data_dir = Path(getattr(target, "data_dir", target))
    landing = data_dir / "landing"
    truth_dir = data_dir / "ground_truth"
    for folder in (landing, truth_dir):
        if folder.exists():
            shutil.rmtree(folder)

    ref = reference()
    dates = [start_date + timedelta(days=i) for i in range(days)]
    last_day = dates[-1]
    truth = GroundTruth(CURRENCY_RATES)
    manifest = _Manifest(data_dir)
    encoder = writers.BidRequestEncoder(ref)
    pending: dict[str, dict[date, list[Any]]] = {
        "clicks": defaultdict(list),
        "conversions": defaultdict(list),
    }

    for day in dates:
        dt = f"dt={day.isoformat()}"
        progress(f"{day}: bid requests")
        requests = events.bid_requests(_rng(seed, day, "bid_requests"), ref, day, scale)
        rtb = messiness.mess_bid_requests(_rng(seed, day, "bid_requests.mess"), requests, mess_rate)
        del requests
        _write_bid_requests(rtb, encoder, landing / "rtb" / dt, day, seed, manifest)
        truth.add_bid_requests(
            ((r.ts, r.exchange, r.campaign_id, r.bid, r.win, writers.price(r.clear_cents)) for r in rtb.valid), day
        )
        won = [r for r in rtb.valid if r.win]
        del rtb

        progress(f"{day}: impressions")
        imps = events.impressions(_rng(seed, day, "impressions"), ref, day, scale, won)
        del won
        clicks, conversions = events.clicks_and_conversions(_rng(seed, day, "tracking"), ref, day, imps)
        imp_mess = messiness.mess_impressions(_rng(seed, day, "impressions.mess"), imps, mess_rate)
        del imps
        for server, file in zip(events.SERVERS, imp_mess.files, strict=True):
            path = landing / "impressions" / dt / f"{server}.jsonl"
            writers.write_lines(path, file.lines)
            manifest.add(path, "impressions", day, len(file.lines), file.quarantine, file.rejects)
        truth.add_impressions(
            ((i.event_id, i.ts, i.user_id, i.campaign_id, i.cost_micros, i.currency) for i in imp_mess.valid), day
        )
        del imp_mess

        progress(f"{day}: clicks and conversions")
        for source, records in (("clicks", clicks), ("conversions", conversions)):
            mess = messiness.mess_tracking(_rng(seed, day, f"{source}.mess"), records, mess_rate)
            for row in mess.rows:
                if row.event_date <= last_day and row.arrival <= last_day:
                    pending[source][row.arrival].append(row)
            for record, arrival in mess.valid:
                if events.ts_date(record.ts) > last_day or arrival > last_day:
                    continue  # happens after the last generated day, or arrives after it: not written
                if source == "clicks":
                    truth.add_click(record.click_id, record.ts, record.user_id, record.campaign_id, arrival)
                else:
                    value = f"{record.value_cents // 100}.{record.value_cents % 100:02d}"
                    truth.add_conversion(
                        record.conversion_id,
                        record.ts,
                        record.user_id,
                        record.campaign_id,
                        value,
                        record.currency,
                        arrival,
                    )
        # Every row arriving on `day` has been generated by now (nothing arrives before it happens).
        for source, header, folder, name in (
            ("clicks", messiness.CLICK_HEADER, "tracking/clicks", "clicks.csv"),
            ("conversions", messiness.CONVERSION_HEADER, "tracking/conversions", "conversions.csv"),
        ):
            rows = sorted(pending[source].pop(day, []), key=lambda r: r.sort_key)
            path = landing / folder / dt / name
            writers.write_csv(path, header, (r.fields for r in rows))
            quarantine = Counter(r.quarantine for r in rows if r.quarantine)
            rejects = Counter(r.reject for r in rows if r.reject)
            manifest.add(path, source, day, len(rows), quarantine, rejects)

    progress("ground truth")
    truth_files = []
    for day in dates:
        truth_files.extend(truth.write(truth_dir, day))

    sources = manifest.sources()
    manifest_path = truth_dir / "manifest.json"
    manifest_path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "arguments": {
            "days": days,
            "scale": scale,
            "seed": seed,
            "start_date": start_date.isoformat(),
            "mess_rate": mess_rate,
        },
        "arrival_dates": [d.isoformat() for d in dates],
        "sources": sources,
        "files": manifest.files,
        "ground_truth": [p.relative_to(data_dir).as_posix() for p in truth_files],
    }
    manifest_path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")

    summary = GenerationSummary(
        data_dir=data_dir,
        arrival_dates=dates,
        files=len(manifest.files),
        records={s: v["records"] for s, v in sources.items()},
        quarantined={s: v["quarantined"] for s, v in sources.items()},
        rejected={s: v["rejected"] for s, v in sources.items()},
        staged={s: v["staged"] for s, v in sources.items()},
        manifest_path=manifest_path,
        seconds=round(time.perf_counter() - started, 3),
    )
    progress(f"done in {summary.seconds:.1f} s")
    return summary


def _write_bid_requests(
    rtb: Any,
    encoder: Any,
    folder: Path,
    day: date,
    seed: int,
    manifest: _Manifest,
) -> None:
    from ingestion.generator import writers

    size = writers.AVRO_MAX_RECORDS_PER_FILE
    chunks = range(0, len(rtb.records), size) if rtb.records else range(1)
    for number, start in enumerate(chunks, start=1):
        path = folder / f"bid-requests-{number:02d}.avro"
        records = encoder.encode_all(rtb.records[start : start + size])
        sync = writers.sync_marker_for(seed, f"{day.isoformat()}/{path.name}")
        writers.write_avro(path, records, sync)
        # A duplicate is always placed after its original, so the later copy (the one staging rejects) is the
        # one recorded here, in this file or a later one.
        rejects = Counter(reason for reason in rtb.reasons[start : start + size] if reason)
        manifest.add(path, "bid_requests", day, len(records), Counter(), rejects)
