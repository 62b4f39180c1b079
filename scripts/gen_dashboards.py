"""Generate the Grafana dashboards in grafana/dashboards/ (overview, AI, transcoding, payments and chain, GPU).

    python scripts/gen_dashboards.py           # rewrite them
    python scripts/gen_dashboards.py --check   # exit 1 if a committed one is stale

Every query names the series docs/monitoring.md lists ("Series the alerts
expect") or Baton's code defines; tests/deploy/test_grafana.py runs each
through promtool, and tests/e2e/test_paging.py checks the ones the running
stack exports against its targets' metadata. go-livepeer's own series
(``livepeer_*``) are used where the meaning matches, so operators' existing
dashboards keep working beside these. ``baton-overview.json`` (services
health) is written by hand and left alone.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[1] / "grafana" / "dashboards"
DS = {"type": "prometheus", "uid": "baton-prometheus"}


class Board:
    def __init__(self, uid: str, title: str, description: str) -> None:
        self.uid, self.title, self.description = uid, title, description
        self.panels: list[dict[str, Any]] = []
        self.x = self.y = self.row_h = 0

    def _place(self, w: int, h: int) -> dict[str, int]:
        if self.x + w > 24:
            self.x, self.y = 0, self.y + self.row_h
            self.row_h = 0
        pos = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.x += w
        self.row_h = max(self.row_h, h)
        return pos

    def row(self, title: str) -> None:
        if self.x:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        self.panels.append({"id": len(self.panels) + 1, "type": "row", "title": title, "collapsed": False,
                            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y}, "panels": []})
        self.y += 1

    def panel(self, kind: str, title: str, description: str, targets: list[tuple[str, str]], *, unit: str = "short",
              w: int = 12, h: int = 8, instant: bool = False, extra: dict[str, Any] | None = None) -> None:
        panel: dict[str, Any] = {
            "id": len(self.panels) + 1, "type": kind, "title": title, "description": description, "datasource": DS,
            "gridPos": self._place(w, h),
            "targets": [{"datasource": DS, "refId": chr(65 + i), "expr": expr, "legendFormat": legend,
                         **({"instant": True, "range": False} if instant else {})}
                        for i, (expr, legend) in enumerate(targets)],
            "fieldConfig": {"defaults": {"unit": unit, **(extra or {})}, "overrides": []},
        }
        if kind == "timeseries":
            panel["options"] = {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                                "tooltip": {"mode": "multi", "sort": "desc"}}
        elif kind == "stat":
            panel["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                                "colorMode": "value", "graphMode": "area", "textMode": "auto"}
        self.panels.append(panel)

    def ts(self, title: str, description: str, *targets: tuple[str, str], **kw: Any) -> None:
        self.panel("timeseries", title, description, list(targets), **kw)

    def stat(self, title: str, description: str, *targets: tuple[str, str], **kw: Any) -> None:
        self.panel("stat", title, description, list(targets), w=kw.pop("w", 6), h=kw.pop("h", 5), **kw)

    def json(self) -> dict[str, Any]:
        return {
            "uid": self.uid, "title": self.title, "description": self.description, "tags": ["baton"],
            "editable": False, "graphTooltip": 1, "schemaVersion": 39, "version": 1, "refresh": "30s",
            "time": {"from": "now-6h", "to": "now"}, "timezone": "", "links": [], "annotations": {"list": []},
            "templating": {"list": []}, "panels": self.panels,
        }


PERCENT = {"min": 0, "max": 1}


def home() -> Board:
    b = Board("baton-home", "Baton: availability, budget, jobs, earnings",
              "The orchestrator as gateways see it: the availability SLO and its error budget, the outside-in probe, "
              "jobs and earnings.")
    b.row("Availability SLO")
    b.stat("Availability (30 d)", "Share of owed gateway requests that succeeded over 30 days (SLO: the objective).",
           ("1 - baton:slo_errors:ratio_rate30d", "30 d"), unit="percentunit", extra={"decimals": 3})
    b.stat("Objective", "The target the burn-rate alerts use (scripts/gen_slo_rules.py --objective).",
           ("baton:slo_objective:ratio", "objective"), unit="percentunit", extra={"decimals": 2})
    b.stat("Error budget left (30 d)", "1: untouched; 0: spent; below 0: overspent.",
           ("baton:slo_error_budget_remaining:ratio", "left"), unit="percentunit")
    b.stat("Burn rate (1 h)", "How fast the budget burns: 1 spends it in exactly 30 days; the fast page is at 14.4.",
           ("baton:slo_burn_rate:ratio_rate1h", "1 h"), unit="short")
    b.ts("Error ratio per window", "capacity + failed over ok + capacity + failed, by window.",
         ("baton:slo_errors:ratio_rate5m", "5m"), ("baton:slo_errors:ratio_rate1h", "1h"),
         ("baton:slo_errors:ratio_rate6h", "6h"), ("baton:slo_errors:ratio_rate3d", "3d"), unit="percentunit")
    b.ts("Requests by outcome", "baton_requests_total by outcome.",
         ("sum by (outcome) (rate(baton_requests_total[$__rate_interval]))", "{{outcome}}"), unit="reqps")
    b.ts("Requests by endpoint", "baton_requests_total by endpoint.",
         ("sum by (endpoint) (rate(baton_requests_total[$__rate_interval]))", "{{endpoint}}"), unit="reqps")
    b.row("As gateways see it")
    b.stat("Probe", "1 when the monitor's GetOrchestrator over TLS got an answer.",
           ("min(baton_monitor_probe_success)", "probe"), extra={"mappings": [
               {"type": "value", "options": {"0": {"text": "FAILING", "color": "red"},
                                             "1": {"text": "OK", "color": "green"}}}]})
    b.ts("GetOrchestrator latency", "The probe's round trip; gateways give up at 500 ms.",
         ("baton_monitor_probe_duration_seconds", "{{target}}"), unit="s", w=18, h=5)
    b.row("Jobs")
    b.ts("Jobs and failures", "Inference jobs asked of the workers and transcoded segments, and their failures "
         "by error code.",
         ("sum(rate(livepeer_ai_models_requested[$__rate_interval]))", "inference jobs"),
         ("sum by (error_code) (rate(baton_inference_job_errors_total[$__rate_interval]))", "inference {{error_code}}"),
         ("sum(rate(livepeer_segment_transcoded_total[$__rate_interval]))", "segments transcoded"),
         ("sum by (error_code) (rate(livepeer_segment_transcode_failed_total[$__rate_interval]))",
          "transcode {{error_code}}"),
         unit="ops")
    b.ts("Sessions", "go-livepeer's transcoding sessions and their cap.",
         ("sum(livepeer_current_sessions_total)", "current"), ("sum(livepeer_max_sessions_total)", "max"))
    b.row("Earnings")
    b.stat("Redeemed (30 d)", "ETH redeemed from winning tickets over 30 days.",
           ("sum(increase(livepeer_value_redeemed[30d])) / 1e18", "ETH"), unit="none", w=8)
    b.stat("Redeemed face value (all)", "Face value of the redeemed winners in baton-pm-winners.",
           ('baton_monitor_winners_value_wei{state="redeemed"} / 1e18', "ETH"), unit="none", w=8)
    b.stat("Pending redemptions", "Winning tickets waiting to be redeemed.",
           ("baton_monitor_redemptions_pending", "pending"), w=8)
    return b


def ai() -> Board:
    b = Board("baton-ai", "Baton: AI", "Latency per pipeline and model, warm state, containers, VRAM.")
    b.row("Latency")
    b.ts("Job latency p50 / p95", "baton_inference_job_seconds per pipeline and model.",
         ("histogram_quantile(0.5, sum by (le, pipeline, model_id) "
          "(rate(baton_inference_job_seconds_bucket[$__rate_interval])))", "p50 {{pipeline}} {{model_id}}"),
         ("histogram_quantile(0.95, sum by (le, pipeline, model_id) "
          "(rate(baton_inference_job_seconds_bucket[$__rate_interval])))", "p95 {{pipeline}} {{model_id}}"),
         unit="s", w=24)
    b.ts("Triton request time", "Triton's average time per successful request, per model.",
         ("sum by (model) (rate(nv_inference_request_duration_us[$__rate_interval])) / "
          "sum by (model) (rate(nv_inference_request_success[$__rate_interval])) / 1e6", "{{model}}"), unit="s")
    b.ts("Jobs and errors", "Jobs asked of each model (livepeer_ai_models_requested) and the workers' errors by code "
         "(baton_inference_job_errors_total).",
         ("sum by (pipeline, model_id) (rate(livepeer_ai_models_requested[$__rate_interval]))",
          "{{pipeline}} {{model_id}}"),
         ("sum by (pipeline, model_id, error_code) (rate(baton_inference_job_errors_total[$__rate_interval]))",
          "{{pipeline}} {{model_id}} {{error_code}}"), unit="ops")
    b.row("Warm models and capacity")
    b.ts("Warm (workers)", "Per model the config marks warm: 1 if a worker advertises it warm.",
         ("baton_monitor_model_warm", "{{pipeline}} {{model_id}}"), extra=PERCENT)
    b.ts("Warm (as gateways see it)", "The probe's view: advertised warm in OrchestratorInfo.",
         ("baton_monitor_probe_model_warm", "{{pipeline}} {{model_id}}"), extra=PERCENT)
    b.ts("Containers in use / idle", "go-livepeer's AI container gauges.",
         ("sum by (pipeline, model_id) (livepeer_ai_container_in_use)", "in use {{pipeline}} {{model_id}}"),
         ("sum by (pipeline, model_id) (livepeer_ai_container_idle)", "idle {{pipeline}} {{model_id}}"))
    b.ts("VRAM", "GPU memory used and in all (NVML).",
         ("baton_monitor_gpu_memory_used_bytes", "used GPU {{gpu}}"),
         ("baton_monitor_gpu_memory_total_bytes", "total GPU {{gpu}}"), unit="bytes")
    return b


def transcoding() -> Board:
    b = Board("baton-transcoding", "Baton: transcoding", "Real-time factor, pixels, failures, sessions.")
    b.ts("Real-time factor (median)", "Seconds of rendition encoded per second of wall time, per rendition; "
         "below 1 a live stream falls behind.",
         ("histogram_quantile(0.5, sum by (le, rendition) (rate(baton_transcode_realtime_factor_bucket"
          "[$__rate_interval])))", "{{rendition}}"), unit="short")
    b.ts("Pixels per second", "Output pixels transcoded (go-livepeer's livepeer_mil_pixels_processed).",
         ("sum(rate(livepeer_mil_pixels_processed[$__rate_interval])) * 1e6", "pixels/s"), unit="short")
    b.ts("Failures", "Segments that failed, by error code.",
         ("sum by (error_code) (rate(livepeer_segment_transcode_failed_total[$__rate_interval]))", "{{error_code}}"),
         unit="ops")
    b.ts("Sessions", "go-livepeer's sessions and their cap.",
         ("sum(livepeer_current_sessions_total)", "current"), ("sum(livepeer_max_sessions_total)", "max"))
    b.ts("NVENC / NVDEC", "Encoder and decoder utilisation per GPU.",
         ("baton_monitor_gpu_encoder_utilization_ratio", "enc GPU {{gpu}}"),
         ("baton_monitor_gpu_decoder_utilization_ratio", "dec GPU {{gpu}}"), unit="percentunit", w=24)
    return b


def payments() -> Board:
    b = Board("baton-payments", "Baton: payments and chain", "Tickets, redemptions, reward, gas, gateways' deposits.")
    b.row("Tickets")
    b.ts("Winning tickets (1 h)", "Received winners against those to expect: the expected value received over "
         "the average face value of the winners on record.",
         ("sum(increase(livepeer_winning_tickets_recv[1h]))", "received"),
         ("sum(increase(livepeer_ticket_value_recv[1h])) / (sum(baton_monitor_winners_value_wei) / "
          "sum(baton_monitor_winners))", "expected"))
    b.ts("Ticket value received", "Expected value of the tickets received, ETH per hour.",
         ("sum(increase(livepeer_ticket_value_recv[1h])) / 1e18", "ETH/h"), unit="none")
    b.ts("Payment errors", "Payments the negotiator refused.",
         ("sum(rate(livepeer_payment_recv_errors[$__rate_interval]))", "errors"), unit="ops")
    b.row("Redemptions")
    b.ts("Winners by state", "baton-pm-winners: pending, redeemed, refused.",
         ("baton_monitor_winners", "{{state}}"), ("baton_monitor_redemptions_pending", "waiting to redeem"))
    b.ts("Redeemed (ETH per day)", "livepeer_value_redeemed.",
         ("sum(increase(livepeer_value_redeemed[1d])) / 1e18", "ETH/day"), unit="none")
    b.ts("Redemption errors", "Failed redeemWinningTicket calls.",
         ("sum(increase(livepeer_ticket_redemption_errors[1h]))", "errors / h"))
    b.ts("Oldest pending winner", "Since the monitor first saw it.",
         ("baton_monitor_redemptions_oldest_pending_seconds", "age"), unit="s")
    b.row("Reward and gas")
    b.stat("Reward rounds", "The last round reward() was called for, and active rounds that ended without it.",
           ("max(baton_chain_last_reward_round)", "last reward"),
           ("sum(baton_chain_rounds_missed_total)", "missed"), w=8)
    b.stat("Reward call errors (1 d)", "livepeer_reward_call_errors.",
           ("sum(increase(livepeer_reward_call_errors[1d]))", "errors"), w=8)
    b.stat("ETH balance", "The orchestrator key's ETH, for gas.", ("max(baton_chain_eth_balance_wei) / 1e18", "ETH"),
           unit="none", w=8)
    b.ts("Gas price", "The node's suggested gas price and -maxGasPrice (0: no cap), in gwei.",
         ("max(livepeer_suggested_gas_price)", "suggested"), ("max(livepeer_max_gas_price)", "max"), unit="none")
    b.ts("Gateways' deposit and reserve", "Per sender, from baton-chain.",
         ("baton_monitor_sender_deposit_wei / 1e18", "deposit {{sender}}"),
         ("baton_monitor_sender_reserve_wei / 1e18", "reserve {{sender}}"), unit="none")
    return b


def gpu() -> Board:
    b = Board("baton-gpu", "Baton: GPUs", "Every GPU through NVML (the monitor) and Triton's own view.")
    b.ts("Temperature", "GPU core temperature.", ("baton_monitor_gpu_temperature_celsius", "GPU {{gpu}}"),
         unit="celsius")
    b.ts("Utilisation", "Share of time a kernel ran.", ("baton_monitor_gpu_utilization_ratio", "GPU {{gpu}}"),
         unit="percentunit")
    b.ts("Memory", "Used over total.", ("baton_monitor_gpu_memory_used_bytes / baton_monitor_gpu_memory_total_bytes",
                                        "GPU {{gpu}}"), unit="percentunit")
    b.ts("Power", "Power draw.", ("baton_monitor_gpu_power_watts", "GPU {{gpu}}"), unit="watt")
    b.ts("Encoder / decoder", "NVENC and NVDEC utilisation.",
         ("baton_monitor_gpu_encoder_utilization_ratio", "enc GPU {{gpu}}"),
         ("baton_monitor_gpu_decoder_utilization_ratio", "dec GPU {{gpu}}"), unit="percentunit")
    b.ts("XID errors (1 h)", "Driver-reported XID errors; the last code in baton_monitor_gpu_last_xid.",
         ("increase(baton_monitor_gpu_xid_errors_total[1h])", "GPU {{gpu}}"),
         ("baton_monitor_gpu_last_xid", "last XID GPU {{gpu}}"))
    b.ts("Triton GPU utilisation", "Triton's nv_gpu_utilization, per GPU.", ("nv_gpu_utilization", "{{gpu_uuid}}"),
         unit="percentunit")
    b.stat("GPUs", "GPUs NVML sees (0 without a driver).", ("max(baton_monitor_gpus)", "GPUs"),
           ("min(baton_monitor_nvml_available)", "NVML"), w=12, h=8)
    return b


BOARDS = {"baton-home.json": home, "baton-ai.json": ai, "baton-transcoding.json": transcoding,
          "baton-payments.json": payments, "baton-gpu.json": gpu}


def render(make) -> str:
    return json.dumps(make().json(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="exit 1 if a committed dashboard is stale")
    args = p.parse_args(argv)
    stale = []
    for name, make in BOARDS.items():
        text, path = render(make), OUT / name
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
    if stale:
        print(f"stale: {', '.join(stale)}: run python scripts/gen_dashboards.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
