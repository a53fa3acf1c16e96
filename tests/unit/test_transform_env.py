"""dbt's environment is set for one invocation only."""

import os

from ingestion.transform import _environment


def test_environment_is_restored_after_the_invocation(monkeypatch):
    monkeypatch.setenv("ADX_DATA_DIR", "/kept")
    monkeypatch.delenv("ADX_LAKE_URI", raising=False)
    with _environment({"ADX_DATA_DIR": "/during", "ADX_LAKE_URI": "/lake"}):
        assert os.environ["ADX_DATA_DIR"] == "/during" and os.environ["ADX_LAKE_URI"] == "/lake"
    assert os.environ["ADX_DATA_DIR"] == "/kept"
    assert "ADX_LAKE_URI" not in os.environ
