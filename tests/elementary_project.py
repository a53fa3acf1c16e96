"""A copy of the dbt project with the Elementary switch on, for the tests of that switch (tests/monitoring,
tests/orchestration). The dbt hub is unreachable here, so the packages come from local copies of the pinned versions
(ADX_ELEMENTARY_PACKAGES_DIR, holding elementary/ and dbt_utils/); without them these tests skip."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from ingestion.elementary import pinned_versions
from ingestion.settings import PROJECT_DIR

PACKAGES_DIR = os.environ.get("ADX_ELEMENTARY_PACKAGES_DIR")

needs_elementary_packages = pytest.mark.skipif(
    not PACKAGES_DIR,
    reason="Elementary's dbt packages are not on this machine (the dbt hub is unreachable): set "
    "ADX_ELEMENTARY_PACKAGES_DIR to a folder with elementary/ and dbt_utils/ at "
    + ", ".join(f"{name} {version}" for name, version in pinned_versions().items()),
)


def copy_dbt_project(target: Path) -> Path:
    """The dbt project's files, so that enabling Elementary does not touch the working tree."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PROJECT_DIR / "dbt_project.yml", target / "dbt_project.yml")
    for folder in ("dbt_project", "macros", "seeds", "tests/dbt"):
        shutil.copytree(PROJECT_DIR / folder, target / folder)
    return target
