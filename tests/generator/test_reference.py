"""The committed seed CSVs are what reference.py writes, and have the shape the contract needs."""

import csv

from ingestion.generator.reference import SEEDS_DIR, USER_POOL, reference, write_seeds


def _rows(path):
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_committed_seeds_are_up_to_date(tmp_path):
    for path in write_seeds(tmp_path):
        assert path.read_bytes() == (SEEDS_DIR / path.name).read_bytes(), (
            f"seeds/{path.name} is stale: run python -m ingestion.generator.reference"
        )


def test_seed_contents(tmp_path):
    write_seeds(tmp_path)
    advertisers = _rows(tmp_path / "advertisers.csv")
    assert [a["advertiser_id"] for a in advertisers] == [f"adv_{i:02d}" for i in range(1, 9)]
    campaigns = _rows(tmp_path / "campaigns.csv")
    assert [c["campaign_id"] for c in campaigns] == [f"cmp_{i:03d}" for i in range(1, 25)]
    assert {c["channel"] for c in campaigns} == {"display", "video"}
    assert {c["advertiser_id"] for c in campaigns} == {a["advertiser_id"] for a in advertisers}
    assert all(c["start_date"] <= "2026-01-01" and c["end_date"] >= "2027-12-31" for c in campaigns)
    users = _rows(tmp_path / "user_demographics.csv")
    assert [u["user_id"] for u in users] == [f"u_{i:06d}" for i in range(1, 20_001)]
    assert all(u["interests"] and " " not in u["interests"] for u in users)
    assert any("|" in u["interests"] for u in users)
    countries = _rows(tmp_path / "geo_countries.csv")
    assert 18 <= len(countries) <= 22
    assert all(len(c["country_code"]) == 2 and len(c["country_code_alpha3"]) == 3 for c in countries)
    regions = {c["region"] for c in countries}
    assert {u["region"] for u in users} <= regions
    assert _rows(tmp_path / "currency_rates.csv") == [
        {"currency": "USD", "usd_rate": "1.000000"},
        {"currency": "EUR", "usd_rate": "1.080000"},
        {"currency": "GBP", "usd_rate": "1.270000"},
    ]


def test_user_pool_and_skew():
    ref = reference()
    assert len(ref.users) == USER_POOL and ref.users[-1].user_id == "u_025000"
    weights = [b - a for a, b in zip((0.0, *ref.campaign_weights_cum), ref.campaign_weights_cum, strict=False)]
    assert max(weights) > 5 * sorted(weights)[len(weights) // 2]  # a few big campaigns, a long tail
    assert all(0.001 <= c.ctr <= 0.02 for c in ref.campaigns)
