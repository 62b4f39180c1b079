"""Logs and traces: JSON lines with the trace id; OTLP export only when an endpoint is set."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from baton_common.telemetry import JsonFormatter


def record(msg: str, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("baton.test", logging.WARNING, __file__, 1, msg, None, None)
    rec.__dict__.update(extra)
    return rec


def test_json_lines_carry_service_instance_and_extras() -> None:
    line = JsonFormatter({"service": "pricing", "instance": "a"}).format(record("quote failed", gateway="0xab"))
    out = json.loads(line)
    assert out["level"] == "warning" and out["msg"] == "quote failed" and out["gateway"] == "0xab"
    assert out["service"] == "pricing" and out["instance"] == "a" and out["ts"].endswith("Z")
    assert "trace_id" not in out


def test_json_lines_inside_a_span_carry_its_trace_id() -> None:
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        trace.set_tracer_provider(TracerProvider())
    with trace.get_tracer("test").start_as_current_span("job") as span:
        out = json.loads(JsonFormatter({}).format(record("x")))
    assert out["trace_id"] == f"{span.get_span_context().trace_id:032x}"


def run_with_tracing(endpoint: str) -> subprocess.CompletedProcess[str]:
    code = textwrap.dedent(f"""
        from opentelemetry import trace
        from baton_common.telemetry import setup_tracing
        setup_tracing("pricing", "i-1", "0.1.0", {endpoint!r})
        with trace.get_tracer("t").start_as_current_span("quote"):
            pass
        provider = trace.get_tracer_provider()
        print(type(provider).__module__)
        if hasattr(provider, "force_flush"):
            provider.force_flush()
    """)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_spans_go_to_the_otlp_endpoint_when_one_is_set() -> None:
    received: list[tuple[str, bytes]] = []

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append((self.path, self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        run = run_with_tracing(f"http://127.0.0.1:{server.server_address[1]}/v1/traces")
    finally:
        server.shutdown()
    assert run.returncode == 0, run.stderr
    assert [path for path, _ in received] == ["/v1/traces"]
    body = received[0][1]
    assert b"baton-pricing" in body and b"quote" in body  # service name and span name, protobuf-encoded


def test_no_endpoint_means_no_tracing_sdk() -> None:
    run = run_with_tracing("")
    assert run.returncode == 0 and run.stdout.strip() == "opentelemetry.trace"  # the API's no-op provider
