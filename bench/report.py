"""Where every bench suite writes its results: bench/results/<name>.json and .md, and the Markdown on stdout."""

from __future__ import annotations

import json

from ingestion.settings import PROJECT_DIR

RESULTS_DIR = PROJECT_DIR / "bench" / "results"


def write_results(name: str, results: dict | list, markdown: str) -> None:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stem = RESULTS_DIR / name
    stem.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown)
    print(markdown)
