"""Splitting a SQL script (an analyst query file) into the statements that spark.sql() or a PyHive cursor take one
at a time."""

from __future__ import annotations


def sql_statements(script: str) -> list[str]:
    """The statements of `script`, whose statements end with `;` at the end of a line, without comment-only lines.
    The last one is usually the query whose result is wanted."""
    found = []
    current: list[str] = []
    for line in script.splitlines():
        if line.strip().startswith("--"):
            continue
        current.append(line)
        if line.rstrip().endswith(";"):
            found.append("\n".join(current).strip().removesuffix(";").strip())
            current = []
    rest = "\n".join(current).strip()
    if rest:
        found.append(rest)
    return [statement for statement in found if statement]
