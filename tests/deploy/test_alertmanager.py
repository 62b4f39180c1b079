"""Alertmanager's config and routing, through the real amtool."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

PAGE, TICKET, HEARTBEAT = "pagerduty-page", "pagerduty-ticket", "heartbeat"


@pytest.fixture(scope="module")
def config(repo) -> dict[str, Any]:
    return yaml.safe_load((repo / "alertmanager" / "alertmanager.yml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def receivers(config) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in config["receivers"]}


def route(amtool, run, repo, *labels: str, expect: str) -> None:
    result = run(amtool, "config", "routes", "test", "--config.file=alertmanager/alertmanager.yml",
                 f"--verify.receivers={expect}", *labels, cwd=repo)
    assert result.returncode == 0, f"{' '.join(labels)} went to {result.stdout.strip()!r}, want {expect}"


def test_config_is_valid(amtool, run, repo):
    result = run(amtool, "check-config", "alertmanager/alertmanager.yml", cwd=repo)
    assert result.returncode == 0 and "SUCCESS" in result.stdout, result.stdout + result.stderr


@pytest.mark.parametrize(("labels", "receiver"), [
    (["alertname=InstanceDown", "severity=page", "service=pricing"], PAGE),
    (["alertname=BatonCrashLooping", "severity=ticket", "service=chain"], TICKET),
    (["alertname=Watchdog", "severity=none", "service=alerting"], HEARTBEAT),
    # An alert without a known severity still reaches someone, at low urgency.
    (["alertname=SomethingNew", "service=pricing"], TICKET),
    (["alertname=SomethingNew", "severity=critical"], TICKET),
])
def test_routes(amtool, run, repo, labels, receiver):
    route(amtool, run, repo, *labels, expect=receiver)


def test_every_alert_rule_reaches_the_receiver_of_its_severity(amtool, run, repo):
    want = {"page": PAGE, "ticket": TICKET}
    rules = [rule for path in sorted((repo / "prometheus" / "rules").glob("*.yml"))
             for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
             for rule in group["rules"] if "alert" in rule]
    assert rules
    for rule in rules:
        labels = {"alertname": rule["alert"], "service": "pricing", **rule["labels"]}
        receiver = HEARTBEAT if rule["alert"] == "Watchdog" else want[labels["severity"]]
        route(amtool, run, repo, *(f"{k}={v}" for k, v in labels.items()), expect=receiver)


def test_routing_fails_when_it_should(amtool, run, repo):
    # The check above can tell receivers apart.
    result = run(amtool, "config", "routes", "test", "--config.file=alertmanager/alertmanager.yml",
                 f"--verify.receivers={HEARTBEAT}", "severity=page", cwd=repo)
    assert result.returncode != 0


def test_alerts_are_grouped_by_alert_and_service(config):
    assert config["route"]["group_by"] == ["alertname", "service"]


def test_pagerduty_keys_are_read_from_mounted_files(config, receivers, compose):
    mounted = {f"/run/secrets/{s if isinstance(s, str) else s.get('target', s['source'])}"
               for s in compose["services"]["alertmanager"].get("secrets", [])}
    keys = []
    for name in (PAGE, TICKET):
        (pagerduty,) = receivers[name]["pagerduty_configs"]
        assert "routing_key" not in pagerduty and "service_key" not in pagerduty, f"{name}: a key inline"
        assert pagerduty["routing_key_file"] in mounted, f"{name}: {pagerduty['routing_key_file']} is not mounted"
        keys.append(pagerduty["routing_key_file"])
    assert len(set(keys)) == 2, "pages and tickets go to two PagerDuty services"
    assert receivers[PAGE]["pagerduty_configs"][0]["severity"] == "critical"
    assert receivers[TICKET]["pagerduty_configs"][0]["severity"] in ("warning", "info")


def test_the_heartbeat_receiver_exists_for_the_watchdog(receivers):
    assert HEARTBEAT in receivers


def test_tickets_wait_while_the_same_service_pages(config):
    rules = config["inhibit_rules"]
    page_over_ticket = [r for r in rules
                        if r.get("source_matchers") == ['severity="page"']
                        and r.get("target_matchers") == ['severity="ticket"']]
    assert page_over_ticket and "service" in page_over_ticket[0]["equal"]
    # An inhibit rule without `equal` would let one page silence every ticket.
    assert all(r.get("equal") for r in rules)


def test_nats_down_holds_back_the_alerts_that_follow_from_it(config, repo):
    rules = yaml.safe_load((repo / "prometheus" / "rules" / "operations.yml").read_text(encoding="utf-8"))
    assert any(r.get("alert") == "NatsDown" for g in rules["groups"] for r in g["rules"])
    (rule,) = [r for r in config["inhibit_rules"] if r["source_matchers"] == ['alertname="NatsDown"']]
    (target,) = rule["target_matchers"]
    held = set(target.split('"')[1].split("|"))
    alerts = {r["alert"] for p in (repo / "prometheus" / "rules").glob("*.yml")
              for g in yaml.safe_load(p.read_text(encoding="utf-8"))["groups"] for r in g["rules"] if "alert" in r}
    assert held <= alerts, f"inhibits alerts that do not exist: {sorted(held - alerts)}"
    assert {"NatsDisconnected", "BatonServiceDown", "BatonNotReady", "ProbeFailing"} <= held
    assert "NatsDown" not in held and "InstanceDown" not in held
    assert rule["equal"] == ["job"]
