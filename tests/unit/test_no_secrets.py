"""No secret in git: the pre-commit hook's scanner (detect-secrets, .pre-commit-config.yaml) finds nothing in any
tracked file, and it does find credentials planted in a file, so that a clean scan means something. A reviewed false
positive carries an inline `pragma: allowlist secret` comment."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCANNER = Path(sys.executable).parent / "detect-secrets"


def _findings(folder: Path, *args: str) -> dict[str, list[str]]:
    """File -> the kinds of secret detect-secrets reports in it (tracked files only, unless --all-files)."""
    done = subprocess.run(
        [str(SCANNER), "scan", *args], cwd=folder, capture_output=True, text=True, check=True, timeout=300
    )
    return {path: sorted(f["type"] for f in found) for path, found in json.loads(done.stdout)["results"].items()}


def test_no_tracked_file_holds_a_secret():
    assert _findings(REPO) == {}


def test_the_scanner_finds_planted_credentials(tmp_path):
    # Assembled at run time, so that this file itself holds none of them.
    aws_key = "AKIA" + "QX7Z2MPLB4TRWN5K"
    private_key_header = "-----BEGIN " + "RSA PRIVATE KEY-----"
    (tmp_path / "leaky_settings.py").write_text(
        f'aws_access_key_id = "{aws_key}"\n'
        f'metastore_password = "{"v3ry-" + "l0ng-" + "s3cret"}"\n'
        f'DEPLOY_KEY = """{private_key_header}\nMIIEowIBAAKCAQEA\n"""\n'
    )

    found = _findings(tmp_path, "--all-files")

    assert found == {"leaky_settings.py": ["AWS Access Key", "Private Key", "Secret Keyword"]}
