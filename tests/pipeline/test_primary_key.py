"""The project's primary_key test (macros/generic_tests.sql), which stands for dbt's unique and not_null on every key
column: run through dbt on the embedded session over inline rows, it must return a duplicated key and a missing key,
and nothing for keys that are unique and present."""

from __future__ import annotations

import pytest

from ingestion.transform import run_dbt

pytestmark = pytest.mark.integration


def _primary_key_failures(settings, keys: list[str | None]) -> list[tuple]:
    """The rows the primary_key test returns (its failures) on a relation holding `keys` in a column `id`."""
    values = ", ".join("(cast(null as string))" if key is None else f"('{key}')" for key in keys)
    relation = f"(select * from values {values} as probe(id))"
    inline = '{{ adx.test_primary_key(model="' + relation + "\", column_name='id') }}"
    result = run_dbt(settings, ["show", "--inline", inline, "--limit", "100"])
    return sorted((tuple(row) for row in result.result.results[0].agate_table.rows), key=repr)


def test_primary_key_returns_duplicated_and_missing_keys_only(spark, warehouse_settings):
    assert _primary_key_failures(warehouse_settings, ["a", "b", "b", None, "c"]) == [("b", 2), (None, 1)]
    assert _primary_key_failures(warehouse_settings, ["a", "b", "c"]) == []
