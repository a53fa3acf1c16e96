"""The alert rules parse, and their rule tests pass with promtool; the rule tests can fail."""

from __future__ import annotations

import shutil

import pytest
from promtool import run_promtool

from ingestion.stack.monitoring import RULES_DIR, rules_file_paths

RULES = RULES_DIR / "adx.rules.yml"
RULE_TESTS = RULES_DIR / "adx.rules.test.yml"


def test_the_rules_parse_and_name_the_alerts_the_issue_asks_for():
    assert rules_file_paths() == [RULES]
    checked = run_promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    text = RULES.read_text()
    for alert in (
        "AdxVolumeDrop",
        "AdxSourceStale",
        "AdxQuarantineRateHigh",
        "AdxDbtTestFailed",
        "AdxLanderStalled",
        "AdxAirflowTaskFailed",
        "AdxConsumerLagHigh",
    ):
        assert f"alert: {alert}\n" in text


def test_the_rule_tests_pass():
    tested = run_promtool("test", "rules", RULE_TESTS.name, cwd=RULES_DIR)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


@pytest.mark.parametrize(
    ("alert", "rule", "mutated"),
    [
        # past the injected drop (-7.4 spreads)
        ("AdxVolumeDrop", "adx_volume_anomaly_deviation < 0\n", "adx_volume_anomaly_deviation < -10\n"),
        # past the injected lag (15,000 records at 100 a minute: 9,000 s)
        ("AdxConsumerLagHigh", ") > 7200\n", ") > 10000\n"),
    ],
)
def test_a_rule_test_fails_when_the_rule_stops_firing(tmp_path, alert, rule, mutated):
    """The rule tests are not vacuous: raise a threshold past the injected incident and they fail."""
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    rules = RULES.read_text()
    assert rules.count(rule) == 1
    (tmp_path / RULES.name).write_text(rules.replace(rule, mutated))
    tested = run_promtool("test", "rules", RULE_TESTS.name, cwd=tmp_path)
    assert tested.returncode != 0
    assert alert in tested.stdout + tested.stderr
