"""Run in a subprocess by the DAG tests (ADX_DATA_DIR names the warehouse): `adx verify` as of a date, and every
mart's rows (sorted) written to a JSON file, in one Spark session.

python tests/orchestration/check_warehouse.py AS_OF OUT_JSON
"""

from __future__ import annotations

import json
import sys
from datetime import date

from ingestion.settings import Settings
from ingestion.spark import get_spark
from ingestion.verify import verify


def main(as_of: str, out: str) -> None:
    settings = Settings()
    spark = get_spark(settings)
    differences = verify(spark, settings, date.fromisoformat(as_of))
    marts = {}
    for table in sorted(row.tableName for row in spark.sql("show tables in marts").collect()):
        rows = spark.table(f"marts.{table}").collect()
        marts[table] = sorted(json.dumps(row.asDict(), default=str, sort_keys=True) for row in rows)
    with open(out, "w") as handle:
        json.dump({"differences": [str(d) for d in differences], "marts": marts}, handle)


if __name__ == "__main__":
    main(*sys.argv[1:])
