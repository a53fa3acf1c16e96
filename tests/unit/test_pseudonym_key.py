"""The pseudonymisation key and the padded keys the Spark SQL HMAC is built from (ingestion/pseudonyms.py)."""

from __future__ import annotations

import hashlib
import hmac
import stat

import pytest

from ingestion.pseudonyms import INNER_PAD_ENV, OUTER_PAD_ENV, hmac_pads, pseudonym_env, pseudonym_key
from ingestion.settings import Settings


def _hmac_from_pads(key: bytes, message: bytes) -> str:
    """What macros/pseudonymise.sql computes: sha2(outer || unhex(sha2(inner || message)))."""
    inner, outer = hmac_pads(key)
    return hashlib.sha256(outer + hashlib.sha256(inner + message).digest()).hexdigest()


@pytest.mark.parametrize("key", [b"k", b"0123456789abcdef" * 4, b"a key longer than the sha-256 block" * 3])
def test_the_pads_give_hmac_sha256(key):
    for message in (b"", b"u_000001", "usér-ñ".encode()):
        assert _hmac_from_pads(key, message) == hmac.new(key, message, hashlib.sha256).hexdigest()


def test_a_key_is_generated_once_into_a_private_file(tmp_path):
    settings = Settings(data_dir=tmp_path)

    key = pseudonym_key(settings)

    assert len(key) == 64 and int(key, 16)  # 256 random bits as hex
    assert stat.S_IMODE(settings.pseudonym_key_file.stat().st_mode) == 0o600
    assert pseudonym_key(Settings(data_dir=tmp_path)) == key  # the same key on every later run


def test_the_environment_key_wins_and_is_not_written(tmp_path):
    settings = Settings(data_dir=tmp_path, pseudonym_key="from-the-environment")

    env = pseudonym_env(settings)

    inner, outer = hmac_pads(b"from-the-environment")
    assert env == {INNER_PAD_ENV: inner.hex(), OUTER_PAD_ENV: outer.hex()}
    assert not settings.pseudonym_key_file.exists()
    assert "from-the-environment" not in repr(settings)


def test_an_empty_environment_key_is_refused(tmp_path):
    with pytest.raises(ValueError, match="ADX_PSEUDONYM_KEY is set but empty"):
        pseudonym_key(Settings(data_dir=tmp_path, pseudonym_key=""))
