"""The Elementary switch: the elementary dbt package in the dbt project, and its `edr` CLI on this warehouse.

    adx elementary enable                       pinned packages from the dbt hub (conf/elementary/packages.yml)
    adx elementary enable --packages-dir DIR    the same versions from local copies (DIR/elementary, DIR/dbt_utils)
    adx elementary report                       edr report -> ADX_DATA_DIR/elementary/report.html
    adx elementary disable

The core project never needs the package: it builds and tests offline without it. Enabling installs the package
(its models go to the `elementary` schema, generate_schema_name), turns on the Elementary tests of the sources
(settings.dbt_env sets ADX_ELEMENTARY), and makes its Spark writes parquet-safe (macros/elementary_on_spark.sql).

`edr` runs dbt on its own internal project, whose packages it would fetch from the hub with `dbt deps`, and it
sends usage telemetry and asks PyPI for its latest version. Here it runs with a config of our own
(ADX_DATA_DIR/elementary/.edr/config.yml) that turns off all three, and with the internal project's packages
pointed (DBT_PACKAGES_FOLDER) at copies of the ones installed in the dbt project: the CLI's pinned version expects
exactly those.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from ingestion.dbt_secrets import dbt_secret_env
from ingestion.settings import PROJECT_DIR, Settings
from ingestion.transform import DbtError, discard_saved_parse, run_dbt

PINNED_PACKAGES_FILE = PROJECT_DIR / "conf" / "elementary" / "packages.yml"
ELEMENTARY_REQUIREMENTS = PROJECT_DIR / "requirements-elementary.txt"
# dbt project name of each pinned package -> its hub name in PINNED_PACKAGES_FILE.
PACKAGES = {"elementary": "elementary-data/elementary", "dbt_utils": "dbt-labs/dbt_utils"}
EDR_CONFIG = {
    "anonymous_usage_tracking": False,
    "run_dbt_deps_if_needed": False,
    # The CLI asks PyPI for a newer version at every start unless this is set.
    "disable_elementary_version_check": True,
}


class ElementaryError(RuntimeError):
    """Elementary cannot be enabled or run as asked."""


def pinned_versions() -> dict[str, str]:
    """Package project name -> pinned version."""
    entries = yaml.safe_load(PINNED_PACKAGES_FILE.read_text())["packages"]
    by_hub_name = {entry["package"]: str(entry["version"]) for entry in entries}
    return {name: by_hub_name[hub_name] for name, hub_name in PACKAGES.items()}


def home(settings: Settings) -> Path:
    return settings.data_dir / "elementary"


def edr_packages_dir(settings: Settings) -> Path:
    return home(settings) / "edr_packages"


def edr_config_dir(settings: Settings) -> Path:
    """edr reads its config from --config-dir, except the version check at start-up, which reads ~/.edr: edr runs
    with HOME=home(settings), so both are this folder."""
    return home(settings) / ".edr"


def report_path(settings: Settings) -> Path:
    return home(settings) / "report.html"


def enable(settings: Settings, packages_dir: Path | None = None) -> None:
    """Install the pinned packages in the dbt project, and the same packages for edr's internal project."""
    project = settings.dbt_project_dir
    if packages_dir is None:
        shutil.copyfile(PINNED_PACKAGES_FILE, project / "packages.yml")
        _dbt_deps(settings)
    else:
        _install_local(project, packages_dir)
    # A saved parse predates the package's macros and the dispatch to ours: parse everything again.
    discard_saved_parse(settings)
    for name in PACKAGES:
        _replace_folder(project / "dbt_packages" / name, edr_packages_dir(settings) / name)
    edr_config_dir(settings).mkdir(parents=True, exist_ok=True)
    (edr_config_dir(settings) / "config.yml").write_text(yaml.safe_dump(EDR_CONFIG))


def _install_local(project: Path, packages_dir: Path) -> None:
    """What `dbt deps` does for local packages (a copy), done here because dbt deps would still resolve the
    elementary package's own dbt_utils dependency on the hub."""
    for name in PACKAGES:
        if not (packages_dir / name / "dbt_project.yml").is_file():
            raise ElementaryError(f"no dbt package at {packages_dir / name}")
    # dbt_utils's dbt_project.yml says 0.1.0 in every release, so only elementary's version can be checked.
    version = str(yaml.safe_load((packages_dir / "elementary" / "dbt_project.yml").read_text())["version"])
    if version != pinned_versions()["elementary"]:
        raise ElementaryError(
            f"{packages_dir / 'elementary'} is elementary {version}; the pinned version is "
            f"{pinned_versions()['elementary']}"
        )
    entries = [{"local": str(packages_dir / name)} for name in PACKAGES]
    (project / "packages.yml").write_text(yaml.safe_dump({"packages": entries}, sort_keys=False))
    for name in PACKAGES:
        _replace_folder(packages_dir / name, project / "dbt_packages" / name)


def _replace_folder(source: Path, target: Path) -> None:
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target)


def _dbt_deps(settings: Settings) -> None:
    try:
        run_dbt(settings, ["deps"])
    except DbtError as error:
        raise ElementaryError(
            f"{error}. The dbt hub is unreachable from here? Use --packages-dir with local copies of "
            f"{', '.join(f'{name} {version}' for name, version in pinned_versions().items())}."
        ) from error


def disable(settings: Settings) -> None:
    project = settings.dbt_project_dir
    (project / "packages.yml").unlink(missing_ok=True)
    (project / "package-lock.yml").unlink(missing_ok=True)
    for name in PACKAGES:
        shutil.rmtree(project / "dbt_packages" / name, ignore_errors=True)
    discard_saved_parse(settings)


def edr_executable() -> Path:
    executable = Path(sys.executable).parent / "edr"
    if not executable.is_file():
        raise ElementaryError(f"no edr CLI in this venv: pip install -r {ELEMENTARY_REQUIREMENTS}")
    return executable


def report(settings: Settings, days_back: int = 7) -> Path:
    """`edr report` on the warehouse: the HTML report of the elementary schema, written to report_path()."""
    from ingestion.metastore_lock import hold_embedded_metastore

    if not settings.elementary_installed:
        raise ElementaryError("the elementary package is not installed: run `adx elementary enable` first")
    # edr runs dbt in its own process; on the embedded target that process starts Spark on the Derby metastore.
    hold_embedded_metastore(settings)
    command = [
        str(edr_executable()),
        "report",
        "--project-dir",
        str(settings.dbt_project_dir),
        "--profiles-dir",
        str(PROJECT_DIR / "profiles"),
        "--profile-target",
        settings.resolved_dbt_target,
        "--config-dir",
        str(edr_config_dir(settings)),
        "--target-path",
        str(home(settings) / "edr_target"),
        "--file-path",
        str(report_path(settings)),
        "--days-back",
        str(days_back),
        "--open-browser",
        "false",
    ]
    environment = {
        **os.environ,
        **settings.dbt_env(),
        **dbt_secret_env(settings),
        "DBT_PACKAGES_FOLDER": str(edr_packages_dir(settings)),
        "EDR_INTERNAL_TARGET_PATH": str(home(settings) / "edr_internal_target"),
        "HOME": str(home(settings)),
    }
    # cwd: edr writes edr_target/edr.log into its working directory before it reads --target-path.
    completed = subprocess.run(command, env=environment, cwd=home(settings), check=False)
    if completed.returncode != 0 or not report_path(settings).is_file():
        raise ElementaryError(f"edr report failed (exit {completed.returncode})")
    return report_path(settings)
