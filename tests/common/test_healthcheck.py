"""`python -m baton_common.healthcheck`, the container healthcheck."""

from __future__ import annotations

import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from tests.helpers import free_port


def check(*args: str, env: dict[str, str] | None = None) -> int:
    return subprocess.run([sys.executable, "-m", "baton_common.healthcheck", *args], capture_output=True,
                          timeout=20, env=env).returncode


@pytest.mark.parametrize("status, code", [(200, 0), (503, 1)])
def test_exit_code_follows_readyz(status: int, code: int) -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status if self.path == "/readyz" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = str(server.server_address[1])
        assert check(port) == code
        assert check(env={"BATON_HTTP_PORT": port, "PATH": ""}) == code
    finally:
        server.shutdown()


def test_nothing_listening_is_unhealthy_and_no_port_is_usage() -> None:
    assert check(str(free_port())) == 1
    assert check(env={"PATH": ""}) == 2
