"""What kind of Parquet file a file is, from its last four bytes: `PAR1` plaintext footer, `PARE` encrypted footer
(Parquet modular encryption, ingestion/raw_encryption.py)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path


def table_folder(lake_dir: Path, table: str) -> Path:
    """The folder of a managed table of the embedded lake (`schema.name` -> <lake>/schema.db/name)."""
    schema, name = table.split(".")
    return lake_dir / f"{schema}.db" / name


def footer_magic(path: Path) -> str:
    with path.open("rb") as handle:
        handle.seek(-4, 2)
        return handle.read(4).decode("ascii", errors="replace")


def footer_kinds(table_dir: Path) -> Counter:
    """Counter of footer magics over every data file of a table folder (partition folders included)."""
    return Counter(footer_magic(path) for path in table_dir.rglob("*.parquet"))
