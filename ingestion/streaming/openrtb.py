"""OpenRTB 2.5/2.6 BidRequest JSON objects to records of the latest bid-request schema, and into the RTB drop folder.

`bid_request_record()` maps one BidRequest object (parsed JSON) to a record of `SchemaCatalog.load().latest`;
`write_rtb_file()` writes such records as an Avro object container file into `<landing>/rtb/dt=YYYY-MM-DD/`, where
the RTB bridge (and the batch loader) pick it up like any file of the RTB platform.

What OpenRTB does not carry comes from the caller: `received_at` (the schema's `timestamp`), `exchange`, and the
`outcome` of our bidder's auction (default: no bid, no campaign, which staging rejects as `unknown_campaign`).

| schema field | OpenRTB | when OpenRTB leaves it out |
| --- | --- | --- |
| id | id | ValueError (required) |
| at | at | 2, OpenRTB's default |
| tmax | tmax | 0: not stated (the exchange's default applies, agreed offline) |
| cur | cur | ["USD"], OpenRTB's default currency |
| imp[] | imp[] | ValueError (at least one impression is required) |
| imp.id | imp.id | ValueError (required) |
| imp.banner.w / h | imp.banner.w / h, else imp.banner.format[0].w / h | ValueError |
| imp.video | imp.video: w, h, mimes, minduration, maxduration | w, h, minduration, maxduration 0 (not stated); mimes: ValueError |
| imp.bidfloor / bidfloorcur | imp.bidfloor / bidfloorcur | 0.0 / "USD", OpenRTB's defaults |
| site.id / domain / page | site.id / domain / page | "" (not stated) |
| app.id / bundle / name | app.id / bundle / name | "" (not stated) |
| device.ua / ip / os | device.ua / ip / os | "" (not stated; an IPv6-only device has ip "") |
| device.devicetype | device.devicetype | 0 (not stated; staging: device type `unknown`) |
| device.geo.country / region | device.geo.country / region | "" (not stated); a country that is not 3 letters: ValueError |
| device.geo.lat / lon | device.geo.lat / lon | null |
| user.id | user.buyeruid, else user.id | "" (not stated) |
| source_tid | source.tid | null |

`user.id` is our user id (the schema says so): OpenRTB carries the buyer's id for the user, as synced with the
exchange, in `user.buyeruid`; `user.id` is the exchange's own id, the best we have when no sync happened.
An impression with neither banner nor video (native, audio) gets both null; staging reports its format as `unknown`.
A request must have exactly one of `site` and `app`. A value of the wrong JSON type is a ValueError naming the field.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import fastavro

from ingestion.settings import Settings
from ingestion.sources import BID_REQUESTS
from ingestion.streaming.schema_catalog import SchemaCatalog

DEFAULT_AUCTION_TYPE = 2  # OpenRTB: second price plus, unless `at` says otherwise
DEFAULT_CURRENCY = "USD"
NOT_STATED_INT = 0  # tmax, devicetype, video sizes and durations the request does not state
NOT_STATED_STR = ""
_INT_RANGE = (-(2**31), 2**31 - 1)  # Avro int


@dataclass(frozen=True)
class BidOutcome:
    """What our bidder did with the request; OpenRTB requests do not carry it."""

    campaign_id: str = ""
    bid: bool = False
    bid_price: float | None = None
    win: bool = False
    clearing_price: float | None = None


NO_BID = BidOutcome()


def bid_request_record(
    request: Mapping[str, Any],
    *,
    received_at: datetime,
    exchange: str,
    outcome: BidOutcome = NO_BID,
) -> dict[str, Any]:
    """A record of the latest bid-request schema from an OpenRTB 2.5/2.6 BidRequest object; see the module
    docstring for the mapping. Raises ValueError naming the field that cannot be mapped."""
    if not isinstance(request, Mapping):
        raise ValueError(f"BidRequest: expected a JSON object, got {type(request).__name__}")
    if received_at.tzinfo is None:
        raise ValueError("received_at: must be timezone-aware")
    if not exchange.strip():
        raise ValueError("exchange: must not be empty")
    request_id = _str(request, "id", "id", required=True)
    if not request_id.strip():
        raise ValueError("id: must not be empty")
    site = _object(request, "site", "site")
    app = _object(request, "app", "app")
    if (site is None) == (app is None):
        raise ValueError("site, app: a bid request needs exactly one of site and app")
    imps = _list(request, "imp", "imp", required=True)
    if not imps:
        raise ValueError("imp: a bid request needs at least one impression")
    device = _object(request, "device", "device") or {}
    geo = _object(device, "geo", "device.geo") or {}
    user = _object(request, "user", "user") or {}
    source = _object(request, "source", "source") or {}
    timestamp = received_at.astimezone(UTC)
    return {
        "id": request_id,
        "timestamp": timestamp.replace(microsecond=timestamp.microsecond // 1000 * 1000),
        "exchange": exchange,
        "at": _int(request, "at", "at", DEFAULT_AUCTION_TYPE),
        "tmax": _int(request, "tmax", "tmax", NOT_STATED_INT),
        "cur": _strings(request, "cur", "cur") or [DEFAULT_CURRENCY],
        "imp": [_imp(imp, f"imp[{index}]") for index, imp in enumerate(imps)],
        "site": None
        if site is None
        else {
            "id": _str(site, "id", "site.id"),
            "domain": _str(site, "domain", "site.domain"),
            "page": _str(site, "page", "site.page"),
        },
        "app": None
        if app is None
        else {
            "id": _str(app, "id", "app.id"),
            "bundle": _str(app, "bundle", "app.bundle"),
            "name": _str(app, "name", "app.name"),
        },
        "device": {
            "ua": _str(device, "ua", "device.ua"),
            "ip": _str(device, "ip", "device.ip"),
            "devicetype": _int(device, "devicetype", "device.devicetype", NOT_STATED_INT),
            "os": _str(device, "os", "device.os"),
            "geo": {
                "country": _country(geo),
                "region": _str(geo, "region", "device.geo.region"),
                "lat": _float(geo, "lat", "device.geo.lat", None),
                "lon": _float(geo, "lon", "device.geo.lon", None),
            },
        },
        "user": {"id": _str(user, "buyeruid", "user.buyeruid") or _str(user, "id", "user.id")},
        "outcome": {
            "campaign_id": outcome.campaign_id,
            "bid": outcome.bid,
            "bid_price": outcome.bid_price,
            "win": outcome.win,
            "clearing_price": outcome.clearing_price,
        },
        "source_tid": _optional_str(source, "tid", "source.tid"),
    }


def write_rtb_file(
    settings: Settings, records: Iterable[Mapping[str, Any]], *, ingest_date: date, file_name: str
) -> Path:
    """Write records of the latest schema as an Avro object container file (deflate) to
    `<landing>/rtb/dt=<ingest_date>/<file_name>`, for the RTB bridge and the batch loader.

    The file appears under its name only once complete (written aside, then renamed), so that a bridge running
    at the same time never reads half of it. An existing file is not replaced: a published file changed in place
    would be published again."""
    if not file_name.endswith(".avro") or "/" in file_name or file_name.startswith("."):
        raise ValueError(f"file_name: expected a plain name ending in .avro, got {file_name!r}")
    folder = settings.landing_dir / BID_REQUESTS.landing_subdir / f"dt={ingest_date.isoformat()}"
    path = folder / file_name
    if path.exists():
        raise FileExistsError(f"{path} exists; the RTB drop folder takes new files only")
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".{file_name}.partial"
    schema = SchemaCatalog.load().latest
    with partial.open("wb") as handle:
        fastavro.writer(handle, schema.parsed, records, codec="deflate", validator=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)
    return path


# --- one impression ---


def _imp(imp: Any, path: str) -> dict[str, Any]:
    if not isinstance(imp, Mapping):
        raise ValueError(f"{path}: expected a JSON object, got {type(imp).__name__}")
    banner = _object(imp, "banner", f"{path}.banner")
    video = _object(imp, "video", f"{path}.video")
    return {
        "id": _str(imp, "id", f"{path}.id", required=True),
        "banner": None if banner is None else _banner(banner, f"{path}.banner"),
        "video": None if video is None else _video(video, f"{path}.video"),
        "bidfloor": _float(imp, "bidfloor", f"{path}.bidfloor", 0.0),
        "bidfloorcur": _str(imp, "bidfloorcur", f"{path}.bidfloorcur", DEFAULT_CURRENCY),
    }


def _banner(banner: Mapping[str, Any], path: str) -> dict[str, int]:
    """w and h, else the first of the allowed sizes in `format` (OpenRTB 2.5+)."""
    if "w" in banner or "h" in banner:
        return {"w": _int(banner, "w", f"{path}.w", required=True), "h": _int(banner, "h", f"{path}.h", required=True)}
    formats = _list(banner, "format", f"{path}.format")
    if formats:
        first = formats[0]
        if not isinstance(first, Mapping):
            raise ValueError(f"{path}.format[0]: expected a JSON object")
        return {
            "w": _int(first, "w", f"{path}.format[0].w", required=True),
            "h": _int(first, "h", f"{path}.format[0].h", required=True),
        }
    raise ValueError(f"{path}.w: a banner needs w and h or a format")


def _video(video: Mapping[str, Any], path: str) -> dict[str, Any]:
    mimes = _strings(video, "mimes", f"{path}.mimes")
    if not mimes:
        raise ValueError(f"{path}.mimes: required, at least one MIME type")
    return {
        "w": _int(video, "w", f"{path}.w", NOT_STATED_INT),
        "h": _int(video, "h", f"{path}.h", NOT_STATED_INT),
        "mimes": mimes,
        "minduration": _int(video, "minduration", f"{path}.minduration", NOT_STATED_INT),
        "maxduration": _int(video, "maxduration", f"{path}.maxduration", NOT_STATED_INT),
    }


def _country(geo: Mapping[str, Any]) -> str:
    country = _str(geo, "country", "device.geo.country")
    if country and not (len(country) == 3 and country.isascii() and country.isalpha()):
        raise ValueError(f"device.geo.country: {country!r} is not an ISO 3166-1 alpha-3 code")
    return country


# --- typed access: every error names the field ---


def _value(obj: Mapping[str, Any], key: str, path: str, default: Any, required: bool) -> Any:
    if key in obj and obj[key] is not None:
        return obj[key]
    if required:
        raise ValueError(f"{path}: required")
    return default


def _str(obj: Mapping[str, Any], key: str, path: str, default: str = NOT_STATED_STR, *, required: bool = False) -> str:
    value = _value(obj, key, path, default, required)
    if not isinstance(value, str):
        raise ValueError(f"{path}: expected a string, got {type(value).__name__} {value!r}")
    return value


def _optional_str(obj: Mapping[str, Any], key: str, path: str) -> str | None:
    return _str(obj, key, path) if obj.get(key) is not None else None


def _int(obj: Mapping[str, Any], key: str, path: str, default: int = NOT_STATED_INT, *, required: bool = False) -> int:
    value = _value(obj, key, path, default, required)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{path}: expected an integer, got {type(value).__name__} {value!r}")
    if not _INT_RANGE[0] <= value <= _INT_RANGE[1]:
        raise ValueError(f"{path}: {value} is out of the 32-bit integer range")
    return value


def _float(obj: Mapping[str, Any], key: str, path: str, default: float | None) -> float | None:
    value = _value(obj, key, path, default, required=False)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{path}: expected a number, got {type(value).__name__} {value!r}")
    return float(value)


def _object(obj: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any] | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, Mapping):
        raise ValueError(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value


def _list(obj: Mapping[str, Any], key: str, path: str, *, required: bool = False) -> list[Any]:
    value = _value(obj, key, path, [], required)
    if not isinstance(value, list):
        raise ValueError(f"{path}: expected an array, got {type(value).__name__}")
    return value


def _strings(obj: Mapping[str, Any], key: str, path: str) -> list[str]:
    values = _list(obj, key, path)
    for index, value in enumerate(values):
        if not isinstance(value, str):
            raise ValueError(f"{path}[{index}]: expected a string, got {type(value).__name__} {value!r}")
    return values
