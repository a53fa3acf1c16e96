"""The key of the pseudonymous user ids, and how dbt's Spark session gets it.

Staging replaces every user id with HMAC-SHA-256(key, user id) as 64 hex digits (macros/pseudonymise.sql), so that
joins, bucketing and counts work as before while no raw id leaves the raw zone. Spark SQL has sha2 but no HMAC, so
the macro follows RFC 2104: HMAC(K, m) = SHA-256((K0 xor opad) || SHA-256((K0 xor ipad) || m)), with K0 the key
padded to SHA-256's 64-byte block. The two padded keys are as secret as the key. dbt receives them as
DBT_ENV_SECRET_* variables, which it scrubs from its logs and allows only in profiles; profiles/profiles.yml puts
them in the Spark session's configuration, and the macro names them as ${adx.pseudonym.inner_pad}, which Spark
substitutes when it parses a statement. Compiled SQL, dbt's logs and Airflow's rendered fields hold only that
placeholder.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from ingestion.secret_files import read_or_create
from ingestion.settings import Settings

SHA256_BLOCK_BYTES = 64
INNER_PAD_ENV = "DBT_ENV_SECRET_ADX_PSEUDONYM_INNER_PAD"
OUTER_PAD_ENV = "DBT_ENV_SECRET_ADX_PSEUDONYM_OUTER_PAD"


def pseudonym_key(settings: Settings) -> bytes:
    """ADX_PSEUDONYM_KEY, else the key file's, generated (256 random bits, hex) if there is none yet."""
    if settings.pseudonym_key is not None:
        key = settings.pseudonym_key.get_secret_value()
        if not key:
            raise ValueError("ADX_PSEUDONYM_KEY is set but empty: unset it (a key is generated) or set one")
    else:
        key = read_or_create(settings.pseudonym_key_file, lambda: secrets.token_hex(32))
    return key.encode()


def hmac_pads(key: bytes) -> tuple[bytes, bytes]:
    """(K0 xor ipad, K0 xor opad) of RFC 2104 for SHA-256."""
    block = hashlib.sha256(key).digest() if len(key) > SHA256_BLOCK_BYTES else key
    block = block.ljust(SHA256_BLOCK_BYTES, b"\0")
    return bytes(b ^ 0x36 for b in block), bytes(b ^ 0x5C for b in block)


def pseudonym_pads(settings: Settings) -> tuple[bytes, bytes]:
    """The padded keys (inner, outer) of the warehouse's pseudonym key."""
    return hmac_pads(pseudonym_key(settings))


def pseudonym_env(settings: Settings) -> dict[str, str]:
    """The environment variables profiles/profiles.yml reads the padded keys from (hex)."""
    inner, outer = pseudonym_pads(settings)
    return {INNER_PAD_ENV: inner.hex(), OUTER_PAD_ENV: outer.hex()}


def pseudonym_session_conf(settings: Settings) -> dict[str, str]:
    """The Spark session settings profiles/profiles.yml makes of them, which the SQL refers to as ${key}."""
    env = pseudonym_env(settings)
    return {"adx.pseudonym.inner_pad": env[INNER_PAD_ENV], "adx.pseudonym.outer_pad": env[OUTER_PAD_ENV]}


def pseudonym(settings: Settings, raw_user_id: str) -> str:
    """The pseudonym staging gives a raw user id (trimmed, as staging reads it)."""
    return hmac.new(pseudonym_key(settings), raw_user_id.strip().encode(), hashlib.sha256).hexdigest()
