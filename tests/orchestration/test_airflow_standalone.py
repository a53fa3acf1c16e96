"""`make airflow`'s server: `adx airflow standalone` serves the UI and API on 127.0.0.1 only, refuses anonymous
API calls, lets `admin` log in with the password it generated (the README's instructions), and lists the three
DAGs without import errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from airflow_runner import ADX, airflow_env, migrate_and_build_manifest
from ports import free_port_block

from ingestion.settings import PROJECT_DIR

pytestmark = pytest.mark.integration

DAG_IDS = {"adx_ingest", "adx_transform", "adx_maintenance"}


def _request(url: str, token: str | None = None, body: dict | None = None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, {}


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = predicate()
            if result:
                return result
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def standalone(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    data_dir = tmp_path_factory.mktemp("adx-airflow-standalone")
    port = free_port_block(1, 22000, 22099, "the Airflow API server")
    env = airflow_env(data_dir, ADX_AIRFLOW_PORT=str(port))
    log = data_dir / "standalone.log"
    migrate_and_build_manifest(env, log)
    with log.open("a") as output:
        process = subprocess.Popen(
            [ADX, "airflow", "standalone"],
            env=env,
            cwd=PROJECT_DIR,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for(lambda: _request(f"{base}/api/v2/monitor/health")[0] == 200, 300, f"the API server ({log})")
        yield base, Path(env["AIRFLOW_HOME"])
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_the_server_listens_on_loopback_only(standalone):
    base, _ = standalone
    port = int(base.rsplit(":", 1)[1])
    listening = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True).stdout
    addresses = {line.split()[3].rsplit(":", 1)[0] for line in listening.splitlines()}
    assert addresses == {"127.0.0.1"}, listening


def test_the_api_needs_a_login_and_admin_logs_in_with_the_generated_password(standalone):
    base, home = standalone
    assert _request(f"{base}/api/v2/dags")[0] == 401
    passwords = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())
    wrong_password = {"username": "admin", "password": "wrong"}  # pragma: allowlist secret
    assert _request(f"{base}/auth/token", body=wrong_password)[0] in (401, 403)
    status, token = _request(f"{base}/auth/token", body={"username": "admin", "password": passwords["admin"]})
    assert status in (200, 201) and token.get("access_token")

    def dags_listed():
        _, listing = _request(f"{base}/api/v2/dags", token=token["access_token"])
        ids = {dag["dag_id"] for dag in listing.get("dags", [])}
        return ids if ids >= DAG_IDS else None

    assert _wait_for(dags_listed, 240, "the dag processor to list the three DAGs") >= DAG_IDS
    _, errors = _request(f"{base}/api/v2/importErrors", token=token["access_token"])
    assert errors.get("total_entries", 0) == 0, errors
