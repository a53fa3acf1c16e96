"""The secrets dbt's own Spark session needs, as DBT_ENV_SECRET_* variables: dbt scrubs their values from its logs
and allows them only in profiles/profiles.yml, which puts them in the session's configuration."""

from __future__ import annotations

from ingestion.pseudonyms import pseudonym_env
from ingestion.raw_encryption import raw_encryption_env
from ingestion.settings import Settings


def dbt_secret_env(settings: Settings) -> dict[str, str]:
    """The pseudonymisation pads (ingestion/pseudonyms.py), the raw zone's Parquet master key
    (ingestion/raw_encryption.py) and, where one exists, the thrift target's login password (ingestion/stack/ldap.py)."""
    thrift_password = settings.resolved_thrift_password()
    thrift_login = {"DBT_ENV_SECRET_ADX_THRIFT_PASSWORD": thrift_password} if thrift_password else {}
    return pseudonym_env(settings) | raw_encryption_env(settings) | thrift_login
