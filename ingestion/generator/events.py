"""The clean event universe of one day: bid requests, impressions, clicks and conversions before any mess.

Times are UTC epoch milliseconds. Each function draws from the random stream it is given, so a day's events
depend only on (seed, day, source) and never on how many days a run generates.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_right
from datetime import UTC, date, datetime
from functools import partial
from operator import itemgetter
from typing import NamedTuple

from ingestion.generator.reference import Campaign, Reference

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
SERVERS = ("web-01", "web-02", "web-03", "web-04")
EXCHANGES = ("google_adx", "magnite", "pubmatic", "openx")
_EXCHANGE_CUM = (40, 65, 85, 100)
_EXCHANGE_TMAX = {"google_adx": 120, "magnite": 150, "pubmatic": 200, "openx": 100}
FIRST_PRICE_SHARE = 0.1  # at=1; the rest are second-price auctions (at=2)
BID_PROBABILITY = 0.6
WIN_PROBABILITY = 0.35
LATE_SHARE = 0.02  # clicks and conversions that arrive 1-3 days after their event date
_USD_PER = {"USD": 1.0, "EUR": 1.08, "GBP": 1.27}

# Diurnal shape: relative traffic per UTC hour, low at night in Europe/Americas, peak in the evening.
_HOUR_WEIGHTS = [1.0 + 0.7 * math.sin(2 * math.pi * (h - 14) / 24) for h in range(24)]
_HOUR_CUM = [sum(_HOUR_WEIGHTS[: h + 1]) for h in range(24)]

SITES = (
    "news.example.com",
    "sports.example.net",
    "weather.example.org",
    "recipes.example.com",
    "techdaily.example.com",
    "travelguide.example.net",
    "finance.example.org",
    "moviebuzz.example.com",
    "autoreview.example.net",
    "healthline.example.org",
    "gamerhub.example.com",
    "homegarden.example.net",
)
APPS = (
    ("com.example.puzzlequest", "Puzzle Quest"),
    ("com.example.newsreader", "News Reader"),
    ("com.example.fittrack", "Fit Track"),
    ("com.example.streamtv", "Stream TV"),
    ("com.example.weatherpro", "Weather Pro"),
    ("com.example.chatly", "Chatly"),
)
_SECTIONS = ("home", "world", "sport", "tech", "life")
# Inventory: web pages (site, page) and apps; index < len(SITE_PAGES) is a site.
SITE_PAGES = tuple((site, f"https://{site}/{section}/") for site in SITES for section in _SECTIONS)
INVENTORY_SIZE = len(SITE_PAGES) + len(APPS)
APP_SHARE = 0.3

_DEVICE_SPELLINGS = {
    "mobile": (("mobile", 50), ("Mobile", 20), ("phone", 10), ("smartphone", 8), ("MOBILE", 5), ("Phone", 7)),
    "desktop": (("desktop", 60), ("Desktop", 15), ("pc", 10), ("PC", 10), ("DESKTOP", 5)),
    "tablet": (("tablet", 60), ("Tablet", 15), ("ipad", 10), ("iPad", 15)),
    "ctv": (("ctv", 40), ("CTV", 20), ("tv", 15), ("connected_tv", 15), ("Connected_TV", 10)),
}
UNKNOWN_DEVICE_SHARE = 0.01  # device type missing (JSON null / empty CSV field): standardised to unknown
_COUNTRY_SPELLINGS = (("{}", 75), ("{l}", 10), (" {l}", 5), ("{t}", 4), ("{} ", 3), (" {} ", 3))
OPENRTB_DEVICE_TYPES = {"mobile": (4, 1), "desktop": (2,), "tablet": (5, 1), "ctv": (3,)}


def _variants(pairs: tuple[tuple[str, int], ...]) -> tuple[tuple[str, ...], list[float]]:
    total = sum(w for _, w in pairs)
    cum, acc = [], 0
    for _, w in pairs:
        acc += w
        cum.append(acc / total)
    return tuple(s for s, _ in pairs), cum


def _device_table(device_class: str) -> tuple[tuple[str | None, ...], list[float]]:
    """Spellings of a device class, None (unknown) first, with cumulative probabilities for bisect."""
    spellings, cum = _variants(_DEVICE_SPELLINGS[device_class])
    known = 1 - UNKNOWN_DEVICE_SHARE
    return (None, *spellings), [UNKNOWN_DEVICE_SHARE] + [UNKNOWN_DEVICE_SHARE + known * c for c in cum[:-1]]


_DEVICE_TABLES = {k: _device_table(k) for k in _DEVICE_SPELLINGS}


def _country_variants(alpha2: str) -> tuple[tuple[str, ...], list[float]]:
    pairs = tuple((pattern.format(alpha2, l=alpha2.lower(), t=alpha2.title()), w) for pattern, w in _COUNTRY_SPELLINGS)
    return _variants(pairs)


class BidRequest(NamedTuple):
    request_id: str
    ts: int
    exchange: str
    at: int
    tmax: int
    user: int  # index into Reference.users
    campaign_id: str
    video: bool
    inventory: int  # index into SITE_PAGES, or len(SITE_PAGES) + index into APPS
    floor_cents: int  # bid floor, CPM in US cents
    bid: bool
    bid_cents: int | None
    win: bool
    clear_cents: int | None


class Impression(NamedTuple):
    event_id: str
    ts: int
    user_id: str
    campaign_id: str
    ad_id: str
    site_domain: str
    device_type: str | None
    country: str
    bid_request_id: str | None
    cost_micros: int
    currency: str
    server: int  # index into SERVERS


class Click(NamedTuple):
    click_id: str
    ts: int
    user_id: str
    campaign_id: str
    ad_id: str
    device_type: str
    landing_page_url: str
    late_days: int  # arrival date = UTC event date + late_days


class Conversion(NamedTuple):
    conversion_id: str
    ts: int
    user_id: str
    campaign_id: str
    conversion_type: str
    value_cents: int
    currency: str
    late_days: int


_new_bid_request = partial(tuple.__new__, BidRequest)  # builds a BidRequest from a plain tuple, in C
_new_impression = partial(tuple.__new__, Impression)


def day_start_ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * 1000


def ts_date(ts_ms: int) -> date:
    return date.fromordinal(719163 + ts_ms // DAY_MS)  # 719163 = date(1970, 1, 1).toordinal()


def _sorted_times(rng: random.Random, start: int, n: int, latest_offset: int = DAY_MS - 1) -> list[int]:
    hours = rng.choices(range(24), cum_weights=_HOUR_CUM, k=n)
    rand = rng.random
    times = [min(start + h * HOUR_MS + int(rand() * HOUR_MS), start + latest_offset) for h in hours]
    times.sort()
    return times


def bid_requests(rng: random.Random, ref: Reference, day: date, n: int) -> list[BidRequest]:
    """About n requests over the day; our bidder bids with p≈0.6 and wins with p≈0.35 given a bid."""
    start = day_start_ms(day)
    # The won impression follows its request by up to 1 s on the same UTC day.
    times = _sorted_times(rng, start, n, latest_offset=DAY_MS - 1_001)
    exchanges = rng.choices([(e, _EXCHANGE_TMAX[e]) for e in EXCHANGES], cum_weights=_EXCHANGE_CUM, k=n)
    users = rng.choices(range(len(ref.users)), cum_weights=ref.user_weights_cum, k=n)
    campaigns = rng.choices(
        [(c.campaign_id, c.channel == "video") for c in ref.campaigns], cum_weights=ref.campaign_weights_cum, k=n
    )
    rand = rng.random
    prefix = f"req-{day:%Y%m%d}-"
    n_sites = len(SITE_PAGES)
    n_apps = len(APPS)
    out = []
    append = out.append
    for i in range(n):
        campaign_id, video = campaigns[i]
        exchange, tmax = exchanges[i]
        inventory = n_sites + int(rand() * n_apps) if rand() < APP_SHARE else int(rand() * n_sites)
        floor = 20 + int(rand() ** 2 * 380)
        if video:
            floor *= 3
        at = 1 if rand() < FIRST_PRICE_SHARE else 2
        bid_price: int | None = None
        clear: int | None = None
        if rand() < BID_PROBABILITY:
            bid_price = floor + int(rand() * 250)
            if rand() < WIN_PROBABILITY:
                clear = bid_price if at == 1 else floor + int(rand() * (bid_price - floor + 1))
        append(
            (
                f"{prefix}{i + 1:08d}",
                times[i],
                exchange,
                at,
                tmax,
                users[i],
                campaign_id,
                video,
                inventory,
                floor,
                bid_price is not None,
                bid_price,
                clear is not None,
                clear,
            )
        )
    return list(map(_new_bid_request, out))


INVENTORY_DOMAINS = tuple(site for site, _page in SITE_PAGES) + tuple(bundle for bundle, _name in APPS)
_first = itemgetter(0)


def impressions(rng: random.Random, ref: Reference, day: date, n: int, won: list[BidRequest]) -> list[Impression]:
    """n impressions: one per won (valid) bid request, the rest direct-sold; sorted by time, ids in that order."""
    start = day_start_ms(day)
    rand = rng.random
    campaigns_by_id = {c.campaign_id: c for c in ref.campaigns}
    domains = INVENTORY_DOMAINS
    # Protos: (ts, user index, campaign, bid_request_id, cost_micros, currency, domain)
    rtb = sorted(
        (
            (
                r.ts + 5 + int(rand() * 995),
                r.user,
                campaigns_by_id[r.campaign_id],
                r.request_id,
                r.clear_cents * 10,
                "USD",
                domains[r.inventory],
            )
            for r in won
        ),
        key=_first,
    )
    n_direct = max(0, n - len(rtb))
    times = _sorted_times(rng, start, n_direct)
    users = rng.choices(range(len(ref.users)), cum_weights=ref.user_weights_cum, k=n_direct)
    campaigns = rng.choices(ref.campaigns, cum_weights=ref.campaign_weights_cum, k=n_direct)
    direct = []
    n_inv = INVENTORY_SIZE
    for i in range(n_direct):
        campaign = campaigns[i]
        r = rand()
        currency = "USD" if r < 0.80 else ("EUR" if r < 0.92 else "GBP")
        cpm_cents = campaign.cpm_cents / _USD_PER[currency] * (0.8 + 0.4 * rand())
        direct.append(
            (
                times[i],
                users[i],
                campaign,
                None,
                int(cpm_cents) * 10,
                currency,
                domains[int(rand() * n_inv)],
            )
        )

    # Per user: id, spelling table of its device type, spelling table of its country.
    country_tables = {c.alpha2: _country_variants(c.alpha2) for c in ref.countries}
    user_tables = [(u.user_id, _DEVICE_TABLES[u.device_class], country_tables[u.country.alpha2]) for u in ref.users]
    prefix = f"imp-{day:%Y%m%d}-"
    out = []
    append = out.append
    protos = rtb + direct
    del rtb, direct
    protos.sort(key=_first)  # merges the two sorted runs; stable, so RTB first on equal times
    for seq, (ts, user_index, campaign, request_id, cost, currency, domain) in enumerate(protos, start=1):
        user_id, devices, countries = user_tables[user_index]
        ads = campaign.ad_ids
        append(
            (
                f"{prefix}{seq:08d}",
                ts,
                user_id,
                campaign.campaign_id,
                ads[int(rand() * len(ads))],
                domain,
                devices[0][bisect_right(devices[1], rand())],
                countries[0][bisect_right(countries[1], rand())],
                request_id,
                cost,
                currency,
                int(rand() * 4),
            )
        )
    return list(map(_new_impression, out))


def device_spelling(rng: random.Random, device_class: str) -> str | None:
    spellings, cum = _DEVICE_TABLES[device_class]
    return spellings[bisect_right(cum, rng.random())]


def _late_days(rng: random.Random) -> int:
    return rng.randint(1, 3) if rng.random() < LATE_SHARE else 0


def clicks_and_conversions(
    rng: random.Random, ref: Reference, day: date, imps: list[Impression]
) -> tuple[list[Click], list[Conversion]]:
    """Clicks on the day's impressions, then conversions after clicks (p≈cvr) and view-through conversions."""
    campaigns: dict[str, Campaign] = {c.campaign_id: c for c in ref.campaigns}
    advertisers = {a.advertiser_id: a for a in ref.advertisers}
    device_class = {u.user_id: u.device_class for u in ref.users}
    thresholds = {cid: (c.ctr, c.ctr + c.view_rate) for cid, c in campaigns.items()}
    rand = rng.random
    clicks: list[Click] = []
    viewed: list[Impression] = []
    click_prefix = f"clk-{day:%Y%m%d}-"
    for imp in imps:
        ctr, ctr_view = thresholds[imp.campaign_id]
        r = rand()
        if r >= ctr_view:
            continue
        if r >= ctr:
            viewed.append(imp)
            continue
        # A click follows its impression by seconds to about an hour.
        lag = min(1_000 + int(rng.expovariate(1 / 300_000)), HOUR_MS)
        campaign = campaigns[imp.campaign_id]
        slug = advertisers[campaign.advertiser_id].slug
        url = f"https://www.{slug}.example/landing/{campaign.campaign_id}?ad={imp.ad_id}&utm_source=advertisex"
        if rand() < 0.05:
            url += "&utm_term=shoes,boots"  # a comma: the CSV field gets RFC 4180 quotes
        clicks.append(
            Click(
                "",
                imp.ts + lag,
                imp.user_id,
                imp.campaign_id,
                imp.ad_id,
                device_spelling(rng, device_class[imp.user_id]) or "",
                url,
                _late_days(rng),
            )
        )
    clicks.sort(key=lambda c: c.ts)
    clicks = [c._replace(click_id=f"{click_prefix}{i:07d}") for i, c in enumerate(clicks, start=1)]

    protos = []
    for click in clicks:
        campaign = campaigns[click.campaign_id]
        if rand() < campaign.cvr:
            # Minutes to days after the click; a few beyond the 168 h click-through window.
            lag = max(60_000, int(rng.lognormvariate(math.log(3 * HOUR_MS), 2.0)))
            protos.append((click.ts + lag, click.user_id, campaign))
    for imp in viewed:
        # View-through: hours after the impression; some beyond the 24 h view-through window.
        lag = max(60_000, int(rng.lognormvariate(math.log(6 * HOUR_MS), 1.2)))
        protos.append((imp.ts + lag, imp.user_id, campaigns[imp.campaign_id]))
    protos.sort(key=lambda p: p[0])
    conversions = []
    for i, (ts, user_id, campaign) in enumerate(protos, start=1):
        kind = "purchase" if campaign.objective == "conversions" else rng.choice(("signup", "lead", "add_to_cart"))
        value_cents = int(500 * 100 ** rand())  # 5.00 .. 500.00, log-uniform
        conversions.append(
            Conversion(
                f"cnv-{day:%Y%m%d}-{i:07d}",
                ts,
                user_id,
                campaign.campaign_id,
                kind,
                value_cents,
                campaign.currency,
                _late_days(rng),
            )
        )
    return clicks, conversions
