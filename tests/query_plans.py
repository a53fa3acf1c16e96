"""Assertions on Spark query plans, as text, and the statements of the analyst query files.

The functions take the text Spark prints for a plan, so that the same checks run on the embedded warehouse
(`spark.sql("EXPLAIN FORMATTED ...").first()[0]`, `df._jdf.queryExecution().executedPlan().toString()`) and on
the Spark Thrift Server (the one row a PyHive cursor or beeline returns for `EXPLAIN FORMATTED ...`).

Use EXPLAIN FORMATTED where the partition filters matter: the one-line tree form (EXPLAIN, EXPLAIN EXTENDED,
`executedPlan().toString()`) cuts every scan attribute at spark.sql.maxMetadataStringLength (100) characters,
so a filter on a later column may be cut off.

Importable from any test: `from analytics.query_plans import ...` (tests/ is on sys.path through
tests/conftest.py under pytest's default import mode).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ingestion.sql_script import sql_statements

# Physical operators that move rows between partitions: shuffles and broadcasts, before (Exchange) and during
# (query stages, AQE's shuffle reads) adaptive execution.
_SHUFFLE_NODE = re.compile(r"Exchange|QueryStage|AQEShuffleRead|ShuffleRead")
_TREE_GLYPHS = re.compile(r"^[\s:|+\-]*(?:\*\(\d+\)\s+)?")


@dataclass(frozen=True)
class Scan:
    """One file scan of a physical plan."""

    table: str  # as the plan names it, e.g. spark_catalog.marts.fct_impressions
    file_index: str  # CatalogFileIndex: the whole table; InMemoryFileIndex (and Pruned...): the listed paths only
    paths: int  # root paths of the file index: for a pruned partitioned table, the partitions read
    partition_filters: str  # "" when there are none
    bucketed: str  # "true", or "false (<why>)"

    @property
    def is_pruned(self) -> bool:
        """The planner selected partitions: the index lists partition folders, not the table's root."""
        return self.file_index != "CatalogFileIndex" and bool(self.partition_filters.strip("[] "))


def physical_plan(explain_text: str) -> str:
    """The physical plan of an EXPLAIN output (from `== Physical Plan ==` on), or the text itself if it has no
    such header (a plan's toString)."""
    marker = "== Physical Plan =="
    return explain_text[explain_text.index(marker) + len(marker) :] if marker in explain_text else explain_text


def scans(plan: str, table: str | None = None) -> list[Scan]:
    """The file scans of a plan (EXPLAIN FORMATTED or tree form), of one table if given: `marts.fct_impressions`
    matches `spark_catalog.marts.fct_impressions`."""
    text = physical_plan(plan)
    found = _formatted_scans(text) or _tree_scans(text)
    if table is not None:
        found = [scan for scan in found if scan.table == table or scan.table.endswith(f".{table}")]
    return found


def _formatted_scans(text: str) -> list[Scan]:
    """Scan details of EXPLAIN FORMATTED: `(1) Scan parquet <table>` then one `Key: value` per line."""
    found = []
    for match in re.finditer(r"^\(\d+\) Scan \S+ (\S+)\n((?:.+\n?)*)", text, re.MULTILINE):
        attributes = dict(re.findall(r"^(\w+): (.*)$", match.group(2), re.MULTILINE))
        location = attributes.get("Location", "")
        index = location.split(" ", 1)[0]
        listed = re.search(r"\[(.*)\]$", location)
        more = re.search(r", \.\.\. (\d+) entries\]$", location)
        paths = int(more.group(1)) + 1 if more else (1 if listed and listed.group(1) else 0)
        found.append(
            Scan(
                table=match.group(1),
                file_index=index,
                paths=paths,
                partition_filters=attributes.get("PartitionFilters", ""),
                bucketed=attributes.get("Bucketed", ""),
            )
        )
    return found


def _tree_scans(text: str) -> list[Scan]:
    """Scans of the tree form: `FileScan parquet <table>[columns] Batched: ..., Location: ..., ...` per line.
    AQE plans print the scans of the final and of the initial plan: both are returned."""
    found = []
    for line in text.splitlines():
        match = re.search(r"FileScan \S+ ([\w.`]+)\[", line)
        if not match:
            continue
        location = re.search(r"Location: (\w+)(?:\((\d+) paths\))?", line)
        filters = re.search(r"PartitionFilters: (\[.*?)(?=, [A-Z]\w*: |$)", line)
        bucketed = re.search(r"Bucketed: (.*?)(?=, [A-Z]\w*: |$)", line)
        found.append(
            Scan(
                table=match.group(1),
                file_index=location.group(1) if location else "",
                paths=int(location.group(2)) if location and location.group(2) else 0,
                partition_filters=filters.group(1) if filters else "",
                bucketed=bucketed.group(1) if bucketed else "",
            )
        )
    return found


def assert_prunes_partitions(plan: str, table: str, columns: list[str], total_partitions: int | None = None) -> int:
    """Every scan of `table` in the plan filters its partitions on each of `columns` and reads a selection of
    partition folders, fewer than `total_partitions` (the table's, e.g. from SHOW PARTITIONS) if given.
    Returns the number of partitions the plan reads (of its first scan of the table)."""
    table_scans = scans(plan, table)
    assert table_scans, f"no scan of {table} in the plan:\n{plan}"
    for scan in table_scans:
        for column in columns:
            assert re.search(rf"\b{re.escape(column)}#\d+", scan.partition_filters), (
                f"{table}: no partition filter on {column}: PartitionFilters: {scan.partition_filters or 'none'}"
            )
        assert scan.is_pruned, f"{table}: the scan reads the whole table ({scan.file_index})"
        if total_partitions is not None:
            assert 0 < scan.paths < total_partitions, (
                f"{table}: the scan reads {scan.paths} of {total_partitions} partitions"
            )
    return table_scans[0].paths


def _tree_lines(plan: str) -> list[tuple[int, str, str]]:
    """(indent, operator, line) per operator of the plan's tree: the first block of EXPLAIN FORMATTED, or the
    whole tree form."""
    text = physical_plan(plan).strip("\n")
    tree = text.split("\n\n", 1)[0]
    lines = []
    for line in tree.splitlines():
        prefix = _TREE_GLYPHS.match(line)
        rest = line[prefix.end() :]
        operator = re.match(r"[A-Za-z]\w*", rest)
        if operator:
            lines.append((prefix.end(), operator.group(0), line))
    return lines


def shuffles_under_sort_merge_joins(plan: str) -> dict[str, list[str]]:
    """For each SortMergeJoin of the plan (its line), the operators under it that shuffle or broadcast rows."""
    lines = _tree_lines(plan)
    joins = {}
    for position, (indent, operator, line) in enumerate(lines):
        if operator != "SortMergeJoin":
            continue
        below = []
        for child_indent, child_operator, child_line in lines[position + 1 :]:
            if child_indent <= indent:
                break
            if _SHUFFLE_NODE.search(child_operator):
                below.append(child_line.strip())
        joins[line.strip()] = below
    return joins


def assert_no_shuffle_join(plan: str) -> None:
    """The plan joins with a SortMergeJoin, and no join of it has an Exchange (or a query stage of one) below:
    both sides arrive already partitioned on the join keys, as the buckets of two tables bucketed alike are."""
    joins = shuffles_under_sort_merge_joins(plan)
    assert joins, f"no SortMergeJoin in the plan:\n{plan}"
    shuffled = {join: below for join, below in joins.items() if below}
    assert not shuffled, "a sort-merge join shuffles its input:\n" + "\n".join(
        f"{join}\n  under it: {below}" for join, below in shuffled.items()
    )


def read_statements(path: Path) -> list[str]:
    return sql_statements(path.read_text())
