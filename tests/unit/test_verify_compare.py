"""verify's cell comparison, without Spark."""

from datetime import date
from decimal import Decimal

from ingestion.verify import COMPARISONS, _compare, _normalise

CAMPAIGN_DAILY = COMPARISONS[0]


def test_numbers_compare_by_value_and_null_equals_empty():
    assert _normalise(Decimal("12.500000")) == _normalise("12.5") == "12.5"
    assert _normalise(Decimal("0E-6")) == _normalise("0") == "0"
    assert _normalise(None) == _normalise("") == ""
    assert _normalise(date(2026, 11, 1)) == "2026-11-01"


def test_every_differing_cell_missing_row_and_extra_row_is_reported():
    key = ("2026-11-01", "cmp_001")
    row = {m: "1" for m in CAMPAIGN_DAILY.measures}
    expected = {key: row, ("2026-11-01", "cmp_002"): row}
    actual = {key: {**row, "clicks": "2"}, ("2026-11-02", "cmp_001"): row}

    differences = [(d.key, d.column, d.expected, d.actual) for d in _compare(CAMPAIGN_DAILY, expected, actual)]

    assert differences == [
        (key, "clicks", "1", "2"),
        (("2026-11-01", "cmp_002"), "*", "a row", "no row"),
        (("2026-11-02", "cmp_001"), "*", "no row", "a row"),
    ]
    assert _compare(CAMPAIGN_DAILY, expected, dict(expected)) == []
