"""Reference data of the synthetic AdvertiseX world: advertisers, campaigns, users, countries, currency rates.

Everything here is fixed (its own constant seed, independent of `adx generate --seed`), because the seed CSVs
written from it are committed under `seeds/` and the events of every run must refer to the same ids.
`python -m ingestion.generator.reference` rewrites the seed files.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import cache
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[2]
SEEDS_DIR = PROJECT_DIR / "seeds"
REFERENCE_SEED = 20261101

USER_POOL = 25_000  # u_000001 .. u_025000 appear in events
USERS_WITH_DEMOGRAPHICS = 20_000  # u_000001 .. u_020000 have a user_demographics row

CURRENCY_RATES: dict[str, Decimal] = {
    "USD": Decimal("1.000000"),
    "EUR": Decimal("1.080000"),
    "GBP": Decimal("1.270000"),
}

# OpenRTB device types per standardised device class (contract: mobile, desktop, tablet, ctv).
DEVICE_CLASSES = ("mobile", "desktop", "tablet", "ctv")


@dataclass(frozen=True)
class Advertiser:
    advertiser_id: str
    advertiser_name: str
    vertical: str
    currency: str  # currency of its conversion values (not part of the seed)
    slug: str


@dataclass(frozen=True)
class Campaign:
    campaign_id: str
    advertiser_id: str
    campaign_name: str
    channel: str  # display | video
    objective: str
    start_date: date
    end_date: date
    daily_budget_usd: Decimal
    # Generation parameters (not part of the seed):
    weight: float  # share of traffic, skewed
    ctr: float  # clicks per impression, 0.1 % .. 2 %
    cvr: float  # conversions per click, about 5 %
    view_rate: float  # view-through conversions per unclicked impression
    cpm_cents: int  # direct-sold CPM in US cents
    ad_ids: tuple[str, ...]
    currency: str  # advertiser's currency


@dataclass(frozen=True)
class Country:
    alpha2: str
    alpha3: str
    name: str
    region: str
    weight: float
    subdivisions: tuple[str, ...]
    lat: float
    lon: float


@dataclass(frozen=True)
class UserProfile:
    user_id: str
    country: Country
    device_class: str
    os: str
    ua: str
    ip: str
    geo_region: str
    lat: float | None
    lon: float | None


_ADVERTISERS = (
    ("adv_01", "Northwind Outfitters", "retail", "USD", "northwind"),
    ("adv_02", "Contoso Travel", "travel", "EUR", "contoso"),
    ("adv_03", "Fabrikam Motors", "automotive", "USD", "fabrikam"),
    ("adv_04", "Tailspin Games", "gaming", "USD", "tailspin"),
    ("adv_05", "Litware Finance", "finance", "GBP", "litware"),
    ("adv_06", "Wide World Foods", "food_beverage", "EUR", "wideworld"),
    ("adv_07", "Proseware Health", "health", "USD", "proseware"),
    ("adv_08", "Adatum Streaming", "entertainment", "GBP", "adatum"),
)

_COUNTRIES = (
    ("US", "USA", "United States", "North America", 30.0, ("CA", "NY", "TX", "FL", "WA"), 39.8, -98.6),
    ("CA", "CAN", "Canada", "North America", 5.0, ("ON", "QC", "BC"), 56.1, -106.3),
    ("MX", "MEX", "Mexico", "Latin America", 3.0, ("CMX", "JAL", "NLE"), 23.6, -102.6),
    ("BR", "BRA", "Brazil", "Latin America", 5.0, ("SP", "RJ", "MG"), -14.2, -51.9),
    ("AR", "ARG", "Argentina", "Latin America", 1.0, ("B", "C", "X"), -38.4, -63.6),
    ("GB", "GBR", "United Kingdom", "Europe", 8.0, ("ENG", "SCT", "WLS"), 55.4, -3.4),
    ("DE", "DEU", "Germany", "Europe", 7.0, ("BE", "BY", "NW"), 51.2, 10.5),
    ("FR", "FRA", "France", "Europe", 6.0, ("IDF", "ARA", "PAC"), 46.2, 2.2),
    ("ES", "ESP", "Spain", "Europe", 3.0, ("MD", "CT", "AN"), 40.5, -3.7),
    ("IT", "ITA", "Italy", "Europe", 3.0, ("25", "62", "72"), 41.9, 12.6),
    ("NL", "NLD", "Netherlands", "Europe", 2.0, ("NH", "ZH", "UT"), 52.1, 5.3),
    ("SE", "SWE", "Sweden", "Europe", 1.5, ("AB", "O", "M"), 60.1, 18.6),
    ("PL", "POL", "Poland", "Europe", 1.5, ("14", "12", "30"), 51.9, 19.1),
    ("IN", "IND", "India", "Asia Pacific", 6.0, ("MH", "KA", "DL"), 20.6, 79.0),
    ("JP", "JPN", "Japan", "Asia Pacific", 4.0, ("13", "27", "23"), 36.2, 138.3),
    ("AU", "AUS", "Australia", "Asia Pacific", 3.0, ("NSW", "VIC", "QLD"), -25.3, 133.8),
    ("SG", "SGP", "Singapore", "Asia Pacific", 1.0, ("01", "03", "05"), 1.35, 103.8),
    ("ZA", "ZAF", "South Africa", "Middle East & Africa", 1.0, ("GP", "WC", "KZN"), -30.6, 22.9),
    ("AE", "ARE", "United Arab Emirates", "Middle East & Africa", 1.0, ("DU", "AZ", "SH"), 23.4, 53.8),
    ("NG", "NGA", "Nigeria", "Middle East & Africa", 1.0, ("LA", "FC", "KN"), 9.1, 8.7),
)

_OS_UA = {
    "mobile": (
        ("iOS", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"),
        ("Android", "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/126.0 Mobile Safari/537.36"),
        ("Android", "Mozilla/5.0 (Linux; Android 13; SM-S911B) AppleWebKit/537.36 Chrome/125.0 Mobile Safari/537.36"),
    ),
    "desktop": (
        ("Windows", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36"),
        ("macOS", "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Version/17.5 Safari/605.1.15"),
        ("Linux", "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0"),
    ),
    "tablet": (
        ("iPadOS", "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"),
        ("Android", "Mozilla/5.0 (Linux; Android 14; SM-X710) AppleWebKit/537.36 Chrome/126.0 Safari/537.36"),
    ),
    "ctv": (
        ("Roku OS", "Roku/DVP-13.0 (13.0.0.4123-46)"),
        ("tvOS", "AppleTV14,1/17.5"),
        ("Tizen", "Mozilla/5.0 (SMART-TV; Linux; Tizen 7.0) AppleWebKit/537.36 SamsungBrowser/5.0 TV Safari/537.36"),
    ),
}

AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")
GENDERS = ("female", "male", "non_binary", "unknown")
INTERESTS = (
    "autos",
    "beauty",
    "business",
    "cooking",
    "fashion",
    "finance",
    "fitness",
    "gaming",
    "health",
    "movies",
    "music",
    "news",
    "sports",
    "technology",
    "travel",
)
_OBJECTIVES = ("awareness", "traffic", "conversions")
_SEASONS = ("Always On", "Holiday", "Spring", "Prospecting", "Retargeting", "Launch")


@dataclass(frozen=True)
class Reference:
    advertisers: tuple[Advertiser, ...]
    campaigns: tuple[Campaign, ...]
    countries: tuple[Country, ...]
    users: tuple[UserProfile, ...]  # the pool of USER_POOL users seen in events
    user_weights_cum: tuple[float, ...]  # cumulative activity weights (Zipf-like) aligned with users
    campaign_weights_cum: tuple[float, ...]
    demographics: tuple[tuple[str, str, str, str, str], ...]  # user_demographics.csv rows


def _campaigns(rng: random.Random) -> tuple[Campaign, ...]:
    campaigns = []
    ranks = list(range(1, 25))
    rng.shuffle(ranks)  # which campaigns are big is arbitrary, but fixed
    for number in range(1, 25):
        adv_id, adv_name, _vertical, currency, _slug = _ADVERTISERS[(number - 1) // 3]
        k = (number - 1) % 3
        channel = "video" if k == 1 else "display"
        objective = _OBJECTIVES[(number + k) % 3]
        weight = 1.0 / ranks[number - 1]  # a few big campaigns and a long tail
        ctr = round(0.001 * 20 ** rng.random(), 5)  # log-uniform between 0.1 % and 2 %
        cvr = round(rng.uniform(0.02, 0.09), 4)
        cpm_cents = rng.randrange(150, 1200) * (2 if channel == "video" else 1)
        campaign_id = f"cmp_{number:03d}"
        campaigns.append(
            Campaign(
                campaign_id=campaign_id,
                advertiser_id=adv_id,
                campaign_name=f"{adv_name.split()[0]} {_SEASONS[number % len(_SEASONS)]} {objective.title()}",
                channel=channel,
                objective=objective,
                start_date=date(2026, 1, 1),
                end_date=date(2027, 12, 31),
                daily_budget_usd=Decimal(rng.randrange(5, 200) * 100).quantize(Decimal("0.01")),
                weight=weight,
                ctr=ctr,
                cvr=cvr,
                view_rate=round(rng.uniform(0.0001, 0.0004), 6),
                cpm_cents=cpm_cents,
                ad_ids=tuple(f"ad_{number:03d}_{a}" for a in range(1, rng.randrange(2, 6))),
                currency=currency,
            )
        )
    return tuple(campaigns)


def _cumulative(weights: list[float]) -> tuple[float, ...]:
    total, cum = 0.0, []
    for w in weights:
        total += w
        cum.append(total)
    return tuple(cum)


@cache
def reference() -> Reference:
    """The reference data, built once per process (deterministic)."""
    rng = random.Random(REFERENCE_SEED)
    advertisers = tuple(Advertiser(*row) for row in _ADVERTISERS)
    campaigns = _campaigns(rng)
    countries = tuple(Country(*row) for row in _COUNTRIES)
    country_cum = _cumulative([c.weight for c in countries])

    users, demographics = [], []
    for n in range(1, USER_POOL + 1):
        country = rng.choices(countries, cum_weights=country_cum)[0]
        device_class = rng.choices(DEVICE_CLASSES, weights=(55, 30, 8, 7))[0]
        os_name, ua = rng.choice(_OS_UA[device_class])
        has_geo = rng.random() < 0.8
        user = UserProfile(
            user_id=f"u_{n:06d}",
            country=country,
            device_class=device_class,
            os=os_name,
            ua=ua,
            ip=f"100.{64 + n // 65536}.{n // 256 % 256}.{n % 256}",
            geo_region=rng.choice(country.subdivisions),
            lat=round(country.lat + rng.uniform(-2, 2), 4) if has_geo else None,
            lon=round(country.lon + rng.uniform(-2, 2), 4) if has_geo else None,
        )
        users.append(user)
        if n <= USERS_WITH_DEMOGRAPHICS:
            interests = sorted(rng.sample(INTERESTS, rng.randint(1, 4)))
            demographics.append(
                (
                    user.user_id,
                    rng.choices(AGE_BANDS, weights=(14, 26, 22, 17, 12, 9))[0],
                    rng.choices(GENDERS, weights=(48, 47, 2, 3))[0],
                    country.region,
                    "|".join(interests),
                )
            )

    ranks = list(range(1, USER_POOL + 1))
    rng.shuffle(ranks)
    user_weights = [1.0 / (rank + 20) for rank in ranks]  # Zipf-like: a few very active users, a long tail
    return Reference(
        advertisers=advertisers,
        campaigns=campaigns,
        countries=countries,
        users=tuple(users),
        user_weights_cum=_cumulative(user_weights),
        campaign_weights_cum=_cumulative([c.weight for c in campaigns]),
        demographics=tuple(demographics),
    )


def write_seeds(seeds_dir: Path = SEEDS_DIR) -> list[Path]:
    """Write the dbt seed CSVs (byte-identical on every call) and return their paths."""
    ref = reference()
    seeds_dir.mkdir(parents=True, exist_ok=True)
    tables: dict[str, tuple[tuple[str, ...], list[tuple]]] = {
        "advertisers": (
            ("advertiser_id", "advertiser_name", "vertical"),
            [(a.advertiser_id, a.advertiser_name, a.vertical) for a in ref.advertisers],
        ),
        "campaigns": (
            (
                "campaign_id",
                "advertiser_id",
                "campaign_name",
                "channel",
                "objective",
                "start_date",
                "end_date",
                "daily_budget_usd",
            ),
            [
                (
                    c.campaign_id,
                    c.advertiser_id,
                    c.campaign_name,
                    c.channel,
                    c.objective,
                    c.start_date.isoformat(),
                    c.end_date.isoformat(),
                    str(c.daily_budget_usd),
                )
                for c in ref.campaigns
            ],
        ),
        "user_demographics": (("user_id", "age_band", "gender", "region", "interests"), list(ref.demographics)),
        "geo_countries": (
            ("country_code", "country_code_alpha3", "country_name", "region"),
            [(c.alpha2, c.alpha3, c.name, c.region) for c in ref.countries],
        ),
        "currency_rates": (("currency", "usd_rate"), [(k, str(v)) for k, v in CURRENCY_RATES.items()]),
    }
    paths = []
    for name, (header, rows) in tables.items():
        path = seeds_dir / f"{name}.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(rows)
        paths.append(path)
    return paths


if __name__ == "__main__":
    for written in write_seeds():
        print(written.relative_to(PROJECT_DIR))
