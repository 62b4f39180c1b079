"""Prometheus's config, alert rules and their unit tests, through the real promtool."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

SEVERITIES = {"page", "ticket", "none"}


@pytest.fixture
def prometheus_dir(repo, tmp_path) -> Path:
    """A copy of prometheus/, so that promtool resolves the relative paths as in the container."""
    return Path(shutil.copytree(repo / "prometheus", tmp_path / "prometheus"))


@pytest.fixture(scope="module")
def alerts(repo) -> dict[str, dict[str, Any]]:
    rules = {}
    for path in sorted((repo / "prometheus" / "rules").glob("*.yml")):
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    assert rule["alert"] not in rules, f"two alerts named {rule['alert']}"
                    rules[rule["alert"]] = rule
    return rules


def test_config_is_valid(promtool, run, prometheus_dir):
    result = run(promtool, "check", "config", "prometheus.yml", cwd=prometheus_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    # check config also checks every rule file the config loads.
    assert "rules/baton.yml" in result.stdout + result.stderr


def test_rules_are_valid(promtool, run, prometheus_dir):
    files = sorted(str(p.relative_to(prometheus_dir)) for p in (prometheus_dir / "rules").glob("*.yml"))
    assert files, "no rule files"
    result = run(promtool, "check", "rules", *files, cwd=prometheus_dir)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_pass(promtool, run, prometheus_dir):
    files = sorted(str(p.relative_to(prometheus_dir)) for p in (prometheus_dir / "tests").glob("*.yml"))
    assert files, "no promtool unit tests"
    result = run(promtool, "test", "rules", *files, cwd=prometheus_dir)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_can_fail(promtool, run, prometheus_dir):
    # The same tests against a rule that pages too early must fail.
    rules = prometheus_dir / "rules" / "baton.yml"
    text, n = re.subn(r"(alert: InstanceDown\n\s+expr: up == 0\n\s+for: )2m", r"\g<1>30s", rules.read_text())
    assert n == 1
    rules.write_text(text)
    result = run(promtool, "test", "rules", "tests/baton_test.yml", cwd=prometheus_dir)
    assert result.returncode != 0 and "InstanceDown" in result.stdout + result.stderr


@pytest.mark.parametrize(("alert", "expr", "for_"), [
    ("InstanceDown", "up == 0", "2m"),
    ("BatonServiceDown", "baton_monitor_service_up == 0", None),
    ("BatonNotReady", "baton_runtime_ready == 0", "5m"),
    ("BatonCrashLooping", "changes(process_start_time_seconds[15m]) > 2", None),
    ("NatsDisconnected", "baton_runtime_nats_connected == 0", None),
    ("Watchdog", "vector(1)", None),
])
def test_the_required_alerts_exist(alerts, alert, expr, for_):
    assert alert in alerts
    assert alerts[alert]["expr"].strip() == expr
    if for_:
        assert alerts[alert].get("for") == for_


def anchors(path: Path) -> set[str]:
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
            for h in re.findall(r"^#+ (.+)$", path.read_text(encoding="utf-8"), re.M)}


def test_every_alert_is_labelled_and_explained(alerts, repo):
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in SEVERITIES, name
        annotations = rule["annotations"]
        assert {"summary", "description", "runbook"} <= set(annotations), name
        doc, _, anchor = annotations["runbook"].partition("#")
        assert (repo / doc).is_file(), f"{name}: runbook {doc} does not exist"
        assert anchor in anchors(repo / doc), f"{name}: {doc} has no section #{anchor}"
    assert [n for n, r in alerts.items() if r["expr"].strip() == "vector(1)"] == ["Watchdog"]
    assert alerts["Watchdog"]["labels"]["severity"] == "none"


def test_every_alert_has_unit_tests_that_fire_and_stay_silent(alerts, repo):
    fired, silent = set(), set()
    for path in (repo / "prometheus" / "tests").glob("*.yml"):
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            for check in case.get("alert_rule_test", []):
                (fired if check.get("exp_alerts") else silent).add(check["alertname"])
    assert not set(alerts) - fired, f"no test where these fire: {sorted(set(alerts) - fired)}"
    missing = set(alerts) - silent - {"Watchdog"}  # the Watchdog always fires
    assert not missing, f"no test where these stay silent: {sorted(missing)}"


def test_alerts_use_only_metrics_that_exist(alerts, known_metrics, promql_metric_names):
    for name, rule in alerts.items():
        unknown = promql_metric_names(rule["expr"]) - known_metrics
        assert not unknown, f"{name} uses {sorted(unknown)}, which nothing exports"


def test_every_documented_series_is_exported():
    """docs/monitoring.md's table names what each service exports: no series is left "pending"."""
    from tests.deploy.conftest import TRITON_METRICS, baton_source_metrics, documented_metrics

    missing = documented_metrics() - baton_source_metrics() - TRITON_METRICS
    assert len(documented_metrics()) > 40
    assert not missing, f"docs/monitoring.md lists {sorted(missing)}, which no service defines"


def test_alerts_reach_alertmanager(repo):
    config = yaml.safe_load((repo / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    targets = [t for am in config["alerting"]["alertmanagers"] for sc in am["static_configs"] for t in sc["targets"]]
    assert targets == ["alertmanager:9093"]
