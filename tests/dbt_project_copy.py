"""A copy of the dbt project, for tests that change it (break a model, enable Elementary) without touching the
working tree."""

from __future__ import annotations

import shutil
from pathlib import Path

from ingestion.settings import PROJECT_DIR

DBT_PROJECT_PARTS = ("dbt_project.yml", "dbt_project", "macros", "seeds", "tests/dbt")


def copy_dbt_project(target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    for part in DBT_PROJECT_PARTS:
        source = PROJECT_DIR / part
        if source.is_dir():
            shutil.copytree(source, target / part)
        else:
            shutil.copy2(source, target / part)
    return target
