"""Fixtures of the cross-service end-to-end tests: real services as processes on one nats-server.

The services bind the fixed bucket names (baton-pricing, baton-workers, baton-chain, ...),
so each module gets a JetStream nats-server of its own. The helpers are the
services' own test fixtures: the negotiator's process starter and test gateway
(tests/negotiator), the pricing process (tests/pricing), ffmpeg segments (tests/transcode).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import PrivateNats, free_port, service_env, wait_ready
from tests.pricing.conftest import PricingProc, tokens_file


@pytest.fixture(scope="module")
def e2e_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateNats]:
    server = PrivateNats(free_port(), store=tmp_path_factory.mktemp("e2e-js"))
    server.start()
    yield server
    server.stop()


def start_pricing(server: PrivateNats, folder: Path, *args: str, **env: str) -> PricingProc:
    """The real pricing process on ``server`` (admin API with alice = admin, bob = read-only)."""
    proc = PricingProc(nats=server, http_port=free_port(), admin_port=free_port(), tokens_file=tokens_file(folder),
                       args=list(args), env=env)
    proc.start()
    return proc


@dataclass
class ServiceProc:
    proc: subprocess.Popen[bytes]
    http_port: int
    log: Path

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_transcode(server: PrivateNats, folder: Path, worker_id: str) -> ServiceProc:
    """The real transcode worker (CPU, libx264 ultrafast, one slot) as a process."""
    port = free_port()
    env = service_env(server.url, BATON_TRANSCODE_HTTP_PORT=str(port), BATON_TRANSCODE_WORKER_ID=worker_id,
                      BATON_TRANSCODE_CONCURRENCY="1", BATON_TRANSCODE_X264_PRESET="ultrafast",
                      BATON_LOG_LEVEL="warning")
    log = folder / f"{worker_id}.log"
    with log.open("ab") as out:  # a file: a pipe nobody reads fills up and blocks the worker
        proc = subprocess.Popen([sys.executable, "-m", "baton_transcode"], env=env, stdout=out, stderr=out)
    running = ServiceProc(proc, port, log)
    try:
        wait_ready(port, proc, timeout=40)
    except AssertionError:
        running.stop()
        raise AssertionError(log.read_text()[-3000:]) from None
    return running
