"""The bid-request schemas the warehouse has released, identified by fingerprint: the in-repo schema registry.

Every `ingestion/schemas/bid_request.v<N>.avsc` is one released version. A Kafka record of the bid-request topic
carries no schema, only the fingerprint of the schema it was written with (header `adx.schema_fingerprint`, see
topics.py); a consumer looks that fingerprint up here, decodes the value with the writer schema and resolves it to
the reader schema it wants (usually `latest`). There is no registry service: the schema files in git are the
registry, and tests pin the fingerprint of every released version, so that a released file edited in place (which
would orphan every record written with it) fails the tests instead of production.

The fingerprint is Avro's standard CRC-64-AVRO (64-bit Rabin) fingerprint of the schema's Parsing Canonical Form,
written as 16 hex digits of its 8 bytes in little-endian order: the bytes of Avro's single-object encoding, and
what Java's `SchemaNormalization.parsingFingerprint("CRC-64-AVRO", schema)` returns. The canonical form keeps
names, types and field order and drops docs, defaults and aliases, so editing a doc does not change it.

Rules for a new version: copy the latest file to `bid_request.v<N+1>.avsc`, change its namespace to
`com.advertisex.rtb.v<N+1>`, and only add fields with a default (or remove fields that had one), so that records of
every older version resolve to the new one. Avro resolution matches records by unqualified name, so the namespace
may change between versions (tested with fastavro and with Spark's from_avro).
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import fingerprint as _fingerprint
from fastavro.schema import to_parsing_canonical_form

SCHEMAS_DIR = Path(__file__).resolve().parents[1] / "schemas"
SCHEMA_FILE = re.compile(r"^bid_request\.v(\d+)\.avsc$")
FINGERPRINT_ALGORITHM = "CRC-64-AVRO"


def schema_fingerprint(schema: Mapping[str, Any] | str) -> str:
    """CRC-64-AVRO fingerprint of a schema (a JSON text or its parsed JSON), 16 hex digits."""
    if isinstance(schema, str):
        schema = json.loads(schema)
    return _fingerprint(to_parsing_canonical_form(schema), FINGERPRINT_ALGORITHM)


@dataclass(frozen=True)
class CatalogSchema:
    """One released version of the bid-request schema."""

    version: int
    fingerprint: str
    json: str  # the .avsc text as released: the `jsonFormatSchema` / `avroSchema` argument of Spark's from_avro
    parsed: dict[str, Any]  # fastavro's parsed schema, for fastavro's readers and writers
    path: Path

    def decode(self, value: bytes, reader: CatalogSchema | None = None) -> dict[str, Any]:
        """Decode one schemaless-encoded record written with this schema, resolved to `reader` if given."""
        reader_schema = reader.parsed if reader is not None and reader is not self else None
        return fastavro.schemaless_reader(io.BytesIO(value), self.parsed, reader_schema)

    def encode(self, record: Mapping[str, Any]) -> bytes:
        """Schemaless encoding of one record with this schema (the value of a bid-request Kafka record)."""
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, self.parsed, record)
        return buffer.getvalue()


class SchemaCatalog:
    """Every released bid-request schema, by version and by fingerprint."""

    def __init__(self, schemas: Iterable[CatalogSchema]) -> None:
        ordered = sorted(schemas, key=lambda s: s.version)
        if not ordered:
            raise ValueError("the schema catalog is empty")
        versions = [s.version for s in ordered]
        if len(set(versions)) != len(versions):
            raise ValueError(f"two schema files have the same version: {versions}")
        by_fingerprint: dict[str, CatalogSchema] = {}
        for schema in ordered:
            other = by_fingerprint.setdefault(schema.fingerprint, schema)
            if other is not schema:
                raise ValueError(
                    f"{schema.path.name} and {other.path.name} have the same fingerprint {schema.fingerprint}: "
                    "a new version must change the schema"
                )
        self.schemas: tuple[CatalogSchema, ...] = tuple(ordered)
        self._by_fingerprint = by_fingerprint

    @classmethod
    def load(cls, folder: Path = SCHEMAS_DIR) -> SchemaCatalog:
        """Read every `bid_request.v<N>.avsc` of the folder."""
        schemas = []
        for path in sorted(folder.glob("bid_request.v*.avsc")):
            match = SCHEMA_FILE.match(path.name)
            if not match:
                continue
            text = path.read_text(encoding="utf-8")
            schema = json.loads(text)
            schemas.append(
                CatalogSchema(
                    version=int(match.group(1)),
                    fingerprint=schema_fingerprint(schema),
                    json=text,
                    parsed=fastavro.parse_schema(schema),
                    path=path,
                )
            )
        return cls(schemas)

    @property
    def latest(self) -> CatalogSchema:
        return self.schemas[-1]

    def by_fingerprint(self, fingerprint: str) -> CatalogSchema | None:
        return self._by_fingerprint.get(fingerprint.lower())

    def by_version(self, version: int) -> CatalogSchema:
        for schema in self.schemas:
            if schema.version == version:
                return schema
        raise KeyError(f"no bid_request.v{version}.avsc in the catalog")

    def decode(self, value: bytes, fingerprint: str, reader: CatalogSchema | None = None) -> dict[str, Any]:
        """Decode a bid-request Kafka value written with the schema of `fingerprint`, resolved to `reader`
        (default: the latest version)."""
        writer = self.by_fingerprint(fingerprint)
        if writer is None:
            raise KeyError(f"schema fingerprint {fingerprint} is not in the catalog ({SCHEMAS_DIR})")
        return writer.decode(value, reader or self.latest)
