"""The Elementary switch's tests (tests/monitoring, tests/orchestration) need the pinned packages. The dbt hub is
unreachable here, so they come from local copies (ADX_ELEMENTARY_PACKAGES_DIR, holding elementary/ and dbt_utils/);
without them these tests skip."""

from __future__ import annotations

import os

import pytest

from ingestion.elementary import pinned_versions

PACKAGES_DIR = os.environ.get("ADX_ELEMENTARY_PACKAGES_DIR")

needs_elementary_packages = pytest.mark.skipif(
    not PACKAGES_DIR,
    reason="Elementary's dbt packages are not on this machine (the dbt hub is unreachable): set "
    "ADX_ELEMENTARY_PACKAGES_DIR to a folder with elementary/ and dbt_utils/ at "
    + ", ".join(f"{name} {version}" for name, version in pinned_versions().items()),
)
