"""Grafana's provisioning and dashboards, checked statically (Grafana is not
packaged for Debian); their PromQL goes through the real promtool."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml


def provisioning(repo: Path, kind: str) -> list[dict[str, Any]]:
    files = sorted((repo / "grafana" / "provisioning" / kind).glob("*.y*ml"))
    assert files, f"no grafana/provisioning/{kind}/*.yml"
    return [yaml.safe_load(f.read_text(encoding="utf-8")) for f in files]


def grafana_mounts(compose: dict[str, Any]) -> dict[str, str]:
    """Repo-relative bind mounts of the grafana service: source -> target."""
    out = {}
    for vol in compose["services"]["grafana"]["volumes"]:
        src, dst = (vol.split(":")[:2] if isinstance(vol, str) else (vol["source"], vol["target"]))
        if src.startswith("./"):
            out[src.removeprefix("./").rstrip("/")] = dst.rstrip("/")
    return out


def all_panels(panels: list[dict[str, Any]]):
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels", []))


@pytest.fixture(scope="module")
def datasources(repo) -> dict[str, dict[str, Any]]:
    return {ds["uid"]: ds for doc in provisioning(repo, "datasources") for ds in doc["datasources"]}


@pytest.fixture(scope="module")
def dashboards(repo) -> dict[str, dict[str, Any]]:
    files = sorted((repo / "grafana" / "dashboards").rglob("*.json"))
    assert files, "no dashboards in grafana/dashboards"
    return {str(f.relative_to(repo)): json.loads(f.read_text(encoding="utf-8")) for f in files}


def queries(dashboard: dict[str, Any]):
    """(where, expr) of every PromQL query: panel targets and query variables."""
    for panel in all_panels(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r} {target.get('refId')}", target["expr"]
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            m = re.fullmatch(r"\s*label_values\((.+),\s*\w+\)\s*", query)
            yield f"variable {var['name']!r}", m.group(1) if m else query


def test_provisioning_files_are_grafana_v1(repo):
    for kind in ("datasources", "dashboards"):
        for doc in provisioning(repo, kind):
            assert doc["apiVersion"] == 1


def test_datasources_have_fixed_uids_and_reach_compose_services(datasources, compose):
    assert "baton-prometheus" in datasources
    prometheus = datasources["baton-prometheus"]
    assert prometheus["type"] == "prometheus" and prometheus.get("isDefault")
    for uid, ds in datasources.items():
        host = re.fullmatch(r"https?://([\w.-]+):(\d+)/?", ds["url"])
        assert host and host.group(1) in compose["services"], f"{uid}: {ds['url']} is no compose service"
    assert datasources["baton-prometheus"]["url"] == "http://prometheus:9090"


def test_provisioning_paths_match_the_compose_mounts(repo, compose):
    mounts = grafana_mounts(compose)
    assert mounts.get("grafana/provisioning") == "/etc/grafana/provisioning"
    (provider,) = [p for doc in provisioning(repo, "dashboards") for p in doc["providers"]]
    assert provider["type"] == "file"
    path = provider["options"]["path"].rstrip("/")
    assert mounts.get("grafana/dashboards") == path, f"the provider reads {path}, compose mounts {mounts}"


def test_dashboards_are_importable(dashboards):
    uids = [d.get("uid") for d in dashboards.values()]
    assert all(uids) and len(set(uids)) == len(uids), f"each dashboard needs its own uid: {uids}"
    for name, dashboard in dashboards.items():
        assert dashboard.get("title"), name
        # An "export for sharing" file asks for its datasource on import, which provisioning cannot answer.
        assert "__inputs" not in dashboard and "${DS_" not in json.dumps(dashboard), name
        ids = [p["id"] for p in all_panels(dashboard["panels"])]
        assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids"
        for panel in all_panels(dashboard["panels"]):
            pos = panel["gridPos"]
            assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24 and pos["h"] > 0, f"{name}: {panel['title']}"


def test_every_query_uses_a_provisioned_datasource(dashboards, datasources):
    for name, dashboard in dashboards.items():
        refs = []
        for panel in all_panels(dashboard["panels"]):
            if panel["type"] != "row":
                refs.append((panel["title"], panel.get("datasource")))
                refs += [(panel["title"], t.get("datasource", panel.get("datasource")))
                         for t in panel.get("targets", [])]
        refs += [(v["name"], v.get("datasource")) for v in dashboard.get("templating", {}).get("list", [])
                 if v.get("type") == "query"]
        for where, ref in refs:
            assert isinstance(ref, dict) and ref.get("uid") in datasources, f"{name}: {where}: datasource {ref}"


def test_dashboards_show_the_baton_health_metrics(dashboards, promql_metric_names):
    used = set().union(*(promql_metric_names(e) for d in dashboards.values() for _, e in queries(d)))
    for metric in ("baton_monitor_service_up", "baton_runtime_ready", "baton_runtime_nats_connected",
                   "baton_runtime_heartbeat_errors_total", "process_start_time_seconds",
                   "process_resident_memory_bytes", "process_cpu_seconds_total"):
        assert metric in used, f"no panel shows {metric}"


def test_dashboards_use_only_metrics_that_exist(dashboards, known_metrics, promql_metric_names):
    for name, dashboard in dashboards.items():
        for where, expr in queries(dashboard):
            unknown = promql_metric_names(expr) - known_metrics
            assert not unknown, f"{name}: {where} uses {sorted(unknown)}, which nothing exports"


def test_every_query_is_valid_promql(dashboards, promtool, run, promql, tmp_path):
    rules = [{"record": f"dashboard:query_{i}", "expr": promql(expr)}
             for i, (_, expr) in enumerate(q for d in dashboards.values() for q in queries(d))]
    (tmp_path / "queries.yml").write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = run(promtool, "check", "rules", "queries.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_generated_dashboards_are_fresh(repo, run):
    import sys

    result = run(sys.executable, "scripts/gen_dashboards.py", "--check", cwd=repo)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(("uid", "metrics"), [
    ("baton-home", {"baton:slo_errors:ratio_rate30d", "baton:slo_error_budget_remaining:ratio", "baton_requests_total",
                    "baton_monitor_probe_duration_seconds", "livepeer_value_redeemed"}),
    ("baton-ai", {"baton_inference_job_seconds_bucket", "baton_monitor_model_warm",
                  "livepeer_ai_container_in_use", "livepeer_ai_container_idle", "baton_monitor_gpu_memory_used_bytes"}),
    ("baton-transcoding", {"baton_transcode_realtime_factor_bucket", "livepeer_mil_pixels_processed",
                           "livepeer_segment_transcode_failed_total",
                           "livepeer_current_sessions_total", "livepeer_max_sessions_total"}),
    ("baton-payments", {"livepeer_winning_tickets_recv", "livepeer_value_redeemed", "livepeer_ticket_redemption_errors",
                        "livepeer_reward_call_errors", "livepeer_suggested_gas_price", "baton_monitor_redemptions_pending"}),
    ("baton-gpu", {"baton_monitor_gpu_temperature_celsius", "baton_monitor_gpu_utilization_ratio",
                   "baton_monitor_gpu_power_watts", "baton_monitor_gpu_xid_errors_total"}),
])
def test_each_dashboard_shows_what_it_is_for(dashboards, promql_metric_names, uid, metrics):
    (board,) = [d for d in dashboards.values() if d["uid"] == uid]
    used = set().union(*(promql_metric_names(e) for _, e in queries(board)))
    assert metrics <= used, f"{uid} does not show {sorted(metrics - used)}"
