"""Paging end to end: `baton up`, Debian's prometheus and alertmanager, a local PagerDuty Events v2 receiver.

The rules are the repository's own, with short windows: slo.yml generated
with ``--scale 60`` (the same generator, every window / 60) and every other
rule's ``for:`` divided by 60 in the copy the test loads. Alertmanager runs
the repository's alertmanager.yml with the PagerDuty URL pointed at the
receiver, the routing keys in temporary files and short group timings.

`baton stop negotiator` must page (a trigger event, severity critical, on
the page routing key) and `baton start negotiator` resolve it (InstanceDown:
up == 0). Before that, the burn-rate rules run on the real negotiator's
``baton_requests_total``: a gateway's traffic over TLS (GetOrchestrator, and
client errors, which the SLO leaves out) stays quiet; once half of it is
text-to-image jobs no worker serves (503 insufficient capacity) it pages
AvailabilityBudgetBurnFast, and healing resolves it. BatonServiceDown (the
monitor's heartbeat view of the outage) must be held back by inhibition:
one cause, one page.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.cli.test_up import free_port_run, status_json
from tests.helpers import free_port
from tests.negotiator.gateway import TestGateway, ai_caps

REPO = Path(__file__).resolve().parents[2]
SCALE = 60
PAGE_KEY, TICKET_KEY = "e2e-page-routing-key-0123456789ab", "e2e-ticket-routing-key-0123456789a"
RUN = ["negotiator", "monitor"]
MODEL = "paging-sd"  # no worker serves it


def tool(name: str, package: str) -> str:
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: apt-get install {package} (./dev test does)", pytrace=False)
    return found


class Receiver(ThreadingHTTPServer):
    """PagerDuty's Events API v2, as far as Alertmanager uses it: POST /v2/enqueue, answer 202."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def snapshot(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.events)


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path == "/v2/enqueue":
            with self.server.lock:
                self.server.events.append(json.loads(body))
            reply, code = {"status": "success", "message": "Event processed"}, 202
        else:
            reply, code = {"status": "invalid path"}, 404
        data = json.dumps(reply).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


def scaled_for(text: str, scale: int = SCALE) -> str:
    def repl(m: re.Match[str]) -> str:
        secs = int(m.group(2)) * {"s": 1, "m": 60, "h": 3600}[m.group(3)]
        return f"{m.group(1)}{max(1, secs // scale)}s"
    return re.sub(r"(\n\s+for: )(\d+)([smh])", repl, text)


class Traffic(threading.Thread):
    """A gateway's traffic to the real negotiator, over TLS as go-livepeer sends it: GetOrchestrator (``ok``)
    and a text-to-image job with a corrupt Livepeer-Segment header (403, ``client_error``: outside the SLO)
    each round; while ``failing`` is set, also a text-to-image job no worker serves (503 insufficient
    capacity: ``capacity``, the orchestrator's fault). Every status the negotiator answered is counted."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(daemon=True)
        self.gateway = TestGateway(host, port)
        self.failing, self.done = threading.Event(), threading.Event()
        self.statuses: Counter[object] = Counter()

    def run(self) -> None:
        gw = self.gateway
        info = gw.get_orchestrator(signed=False, caps=ai_caps(27, MODEL))
        seg = gw.segment_header(info, manifest=f"27_{MODEL}".encode(), signed=False)
        job = {"prompt": "a lighthouse", "model_id": MODEL}
        with gw.http() as client:
            while not self.done.is_set():
                try:
                    gw.get_orchestrator(signed=False)
                    self.statuses["GetOrchestrator"] += 1
                    bad = client.post(f"{info.transcoder}/text-to-image", json=job, headers={"Livepeer-Segment": "%%"})
                    self.statuses[bad.status_code] += 1
                    if self.failing.is_set():
                        r = client.post(f"{info.transcoder}/text-to-image", json=job, headers={"Livepeer-Segment": seg})
                        self.statuses[r.status_code] += 1
                except Exception as exc:  # noqa: BLE001 - counted: the test reads what happened
                    self.statuses[type(exc).__name__] += 1
                time.sleep(0.05)

    def stop(self) -> None:
        self.done.set()
        self.join(10)
        self.gateway.close()


def requests_total(prom: str, outcome: str) -> float:
    result = httpx.get(f"{prom}/api/v1/query", timeout=2, params={
        "query": f'sum(baton_requests_total{{service="negotiator",outcome="{outcome}"}})'}).json()["data"]["result"]
    return float(result[0]["value"][1]) if result else 0.0


def write_prometheus(tmp: Path, ports: dict[str, int], am_port: int) -> Path:
    rules = tmp / "rules"
    rules.mkdir()
    for path in (REPO / "prometheus" / "rules").glob("*.yml"):
        if path.name != "slo.yml":
            (rules / path.name).write_text(scaled_for(path.read_text()))
    gen = subprocess.run([sys.executable, "scripts/gen_slo_rules.py", "--scale", str(SCALE), "-o",
                          str(rules / "slo.yml")], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert gen.returncode == 0, gen.stderr
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "900ms", "evaluation_interval": "1s"},
        "rule_files": ["rules/*.yml"],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]},
        "scrape_configs": [{
            "job_name": "baton", "honor_labels": True,
            "static_configs": [{"targets": [f"127.0.0.1:{p}"], "labels": {"service": n}} for n, p in ports.items()],
        }],
    }
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    return tmp / "prometheus.yml"


def write_alertmanager(tmp: Path, receiver_port: int) -> Path:
    (tmp / "page.key").write_text(PAGE_KEY + "\n")
    (tmp / "ticket.key").write_text(TICKET_KEY + "\n")
    config = yaml.safe_load((REPO / "alertmanager" / "alertmanager.yml").read_text())
    keys = {"/run/secrets/pagerduty_routing_key": tmp / "page.key",
            "/run/secrets/pagerduty_lowpri_routing_key": tmp / "ticket.key"}
    for receiver in config["receivers"]:
        for pd in receiver.get("pagerduty_configs", []):
            pd["routing_key_file"] = str(keys[pd["routing_key_file"]])
            pd["url"] = f"http://127.0.0.1:{receiver_port}/v2/enqueue"
    route = config["route"]
    route.update(group_wait="1s", group_interval="2s")
    for sub in route.get("routes", []):
        sub.update(group_wait="1s", group_interval="2s")
    (tmp / "alertmanager.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    return tmp / "alertmanager.yml"


def wait(what: str, check, timeout: float, logs: list[Path]) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in logs if p.exists())
            raise AssertionError(f"{what} within {timeout}s\n{tails}")
        time.sleep(0.3)


def baton(*args: str, nats_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "baton_cli", *args, "--nats-url", nats_url],
                          capture_output=True, text=True, timeout=60)


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def check_dashboards_against_metadata(prom: str) -> None:
    """Every series a dashboard or alert reads from the negotiator, the monitor or the runtime is declared
    by the running targets (their metadata). GPU series are exempt on a machine without GPUs; the other
    services' series are checked against their metrics modules (tests/deploy)."""
    from tests.deploy.conftest import metric_names
    from tests.deploy.test_grafana import queries

    meta = httpx.get(f"{prom}/api/v1/targets/metadata", params={"match_target": '{job="baton"}'},
                     timeout=5).json()["data"]
    declared = {m["metric"] for m in meta}
    used = set()
    for path in (REPO / "grafana" / "dashboards").glob("*.json"):
        used |= {n for _, e in queries(json.loads(path.read_text())) for n in metric_names(e)}
    for path in (REPO / "prometheus" / "rules").glob("*.yml"):
        used |= {n for g in yaml.safe_load(path.read_text())["groups"] for r in g["rules"] if "alert" in r
                 for n in metric_names(r["expr"])}
    import baton_negotiator.metrics as negotiator

    exported = {m.name for n in negotiator.__all__ if hasattr(c := getattr(negotiator, n), "describe")
                for m in c.describe()}
    ours = {n for n in used if n.startswith(("baton_monitor_", "baton_runtime_")) and not n.startswith("baton_monitor_gpu_")
            or n.removesuffix("_total") in exported or n in exported}
    assert len(ours) > 15 and "baton_requests_total" in ours and "livepeer_current_sessions_total" in ours, ours
    missing = {n for n in ours if n not in declared and n.removesuffix("_total") not in declared}
    assert not missing, f"read by dashboards or alerts, declared by no running target: {sorted(missing)}"


def events_for(receiver: Receiver, action: str, alertname: str) -> list[dict[str, Any]]:
    return [e for e in receiver.snapshot() if e.get("event_action") == action
            and e.get("payload", {}).get("class") == alertname]


def test_stopping_the_negotiator_pages_and_starting_it_resolves(tmp_path: Path) -> None:
    prometheus = tool("prometheus", "prometheus")
    alertmanager = tool("prometheus-alertmanager", "prometheus-alertmanager")
    base = free_port_run(6)
    from baton_common.config import SERVICES

    ports = {n: base + SERVICES.index(n) for n in RUN}
    nats_port, nats_mon, prom_port, am_port = free_port(), free_port(), free_port(), free_port()
    nats_url = f"nats://127.0.0.1:{nats_port}"
    receiver = Receiver()
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    grpc_port = free_port()
    prom_cfg = write_prometheus(tmp_path, ports, am_port)
    am_cfg = write_alertmanager(tmp_path, receiver.server_address[1])
    logs = [tmp_path / "up.log", tmp_path / "prometheus.log", tmp_path / "alertmanager.log"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATON_")}
    env["BATON_MONITOR_EXPECTED_SERVICES"] = ",".join(RUN)
    env.update(BATON_NEGOTIATOR_SERVICE_ADDR=f"127.0.0.1:{grpc_port}", BATON_NEGOTIATOR_JOB_PORT="0",
               BATON_NEGOTIATOR_STATE_DIR=str(tmp_path / "negotiator"))
    procs: list[subprocess.Popen[bytes]] = []
    traffic: Traffic | None = None
    try:
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "baton_cli", "up", "--state-dir", str(tmp_path / "state"), "--plain",
             "--nats-port", str(nats_port), "--nats-monitor-port", str(nats_mon), "--port-base", str(base),
             "--services", ",".join(RUN)],
            stdout=logs[0].open("wb"), stderr=subprocess.STDOUT, env=env))
        procs.append(subprocess.Popen(
            [alertmanager, f"--config.file={am_cfg}", f"--storage.path={tmp_path / 'am'}",
             f"--web.listen-address=127.0.0.1:{am_port}", "--cluster.listen-address="],
            stdout=logs[2].open("wb"), stderr=subprocess.STDOUT))

        # Prometheus starts once the services serve: with `for:` scaled to seconds, a scrape that
        # came before them would page InstanceDown for the start-up itself.
        wait("every service ready", lambda: all(_ready(p) for p in ports.values()), 90, logs)
        procs.append(subprocess.Popen(
            [prometheus, f"--config.file={prom_cfg}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{prom_port}"],
            stdout=logs[1].open("wb"), stderr=subprocess.STDOUT))
        prom = f"http://127.0.0.1:{prom_port}"

        def all_up() -> bool:
            try:
                result = httpx.get(f"{prom}/api/v1/query", params={"query": "up"}, timeout=2).json()["data"]["result"]
            except (httpx.HTTPError, KeyError, ValueError):
                return False
            return len(result) == len(RUN) and all(r["value"][1] == "1" for r in result)

        wait("every service scraped as up", all_up, 90, logs)
        wait("the monitor sees the negotiator's heartbeat", lambda: status_json(nats_url)["services"].get(
            "negotiator", {}).get("up"), 30, logs)
        assert not receiver.snapshot(), f"paged while healthy: {receiver.snapshot()}"
        check_dashboards_against_metadata(prom)

        # 0. The generated burn-rate rules (windows / 60) on the real negotiator's baton_requests_total:
        #    a gateway's traffic, first healthy (client errors do not count), then half of it refused for
        #    want of a worker (503), pages AvailabilityBudgetBurnFast; the page resolves once the short
        #    window is clean again.
        traffic = Traffic("127.0.0.1", grpc_port)
        traffic.start()
        wait("client errors counted by the negotiator and scraped",
             lambda: requests_total(prom, "client_error") > 20 and requests_total(prom, "ok") > 20, 30, logs)
        time.sleep(3)  # clean traffic in the windows
        assert not receiver.snapshot(), f"paged on healthy traffic and client errors: {receiver.snapshot()}"
        traffic.failing.set()
        (burn,) = wait("a PagerDuty trigger for AvailabilityBudgetBurnFast",
                       lambda: events_for(receiver, "trigger", "AvailabilityBudgetBurnFast"), 60, logs)
        assert burn["routing_key"] == PAGE_KEY and burn["payload"]["severity"] == "critical"
        assert burn["payload"]["component"] == "negotiator"
        assert requests_total(prom, "capacity") > 0
        assert traffic.statuses[503] > 0 and traffic.statuses[403] > 0, traffic.statuses
        traffic.failing.clear()
        wait("a PagerDuty resolve for AvailabilityBudgetBurnFast",
             lambda: events_for(receiver, "resolve", "AvailabilityBudgetBurnFast"), 60, logs)
        # The 3d/6h ticket burns too, held back while a page for the service fires.
        assert not events_for(receiver, "trigger", "AvailabilityBudgetBurnSlow")
        traffic.stop()
        assert set(traffic.statuses) == {"GetOrchestrator", 403, 503}, traffic.statuses

        # An unknown service is refused, and nothing stops.
        refused = baton("stop", "nosuch", nats_url=nats_url)
        assert refused.returncode == 1 and "not run by this baton up" in refused.stderr

        # 1. baton stop negotiator: it stays down, and PagerDuty is paged.
        stopped = baton("stop", "negotiator", nats_url=nats_url)
        assert stopped.returncode == 0 and "stopped" in stopped.stdout, stopped.stderr
        (trigger,) = wait("a PagerDuty trigger for InstanceDown",
                          lambda: events_for(receiver, "trigger", "InstanceDown"), 60, logs)
        assert trigger["routing_key"] == PAGE_KEY
        assert trigger["payload"]["severity"] == "critical"
        assert trigger["payload"]["component"] == "negotiator"
        assert "negotiator" in trigger["payload"]["summary"]
        assert trigger["dedup_key"]
        report = status_json(nats_url)
        assert not report["services"]["negotiator"]["up"] and report["supervision"]["negotiator"]["state"] == "stopped"
        # The monitor's view of the same outage fires too, and is held back by inhibition.
        wait("BatonServiceDown firing in Prometheus", lambda: any(
            a["labels"]["alertname"] == "BatonServiceDown" and a["state"] == "firing"
            for a in httpx.get(f"{prom}/api/v1/alerts", timeout=2).json()["data"]["alerts"]), 30, logs)
        time.sleep(3)  # two group intervals
        assert not events_for(receiver, "trigger", "BatonServiceDown"), receiver.snapshot()

        # 2. baton start negotiator: the incident resolves.
        started = baton("start", "negotiator", nats_url=nats_url)
        assert started.returncode == 0, started.stderr
        (resolve,) = wait("a PagerDuty resolve for InstanceDown",
                          lambda: events_for(receiver, "resolve", "InstanceDown"), 60, logs)
        assert resolve["dedup_key"] == trigger["dedup_key"] and resolve["routing_key"] == PAGE_KEY
        assert not [e for e in receiver.snapshot() if e["routing_key"] == TICKET_KEY
                    and e["payload"]["class"] in ("InstanceDown", "BatonServiceDown")], "a ticket for the same outage"
    finally:
        if traffic is not None and traffic.is_alive():
            traffic.stop()
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                proc.kill()
        receiver.shutdown()
