"""Fixtures of the negotiator's end-to-end tests: a NATS server of their own, the negotiator as a process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import nats
import pytest

from baton_common.schemas.workers import WORKERS
from baton_common.streams import ensure_kv
from tests.helpers import PrivateNats, free_port, service_env, wait_ready
from tests.negotiator.gateway import TestGateway


@dataclass
class RunningNegotiator:
    proc: subprocess.Popen[bytes]
    grpc_port: int
    health_port: int
    state_dir: Path

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_negotiator(nats_url: str, state_dir: Path, **env: str) -> RunningNegotiator:
    # Each test's gateways are new senders, all from 127.0.0.1: at the default 20 cold lookups a second (5 for one
    # client) a fast module's sixth new gateway within a second would be refused. The tests of that limit set it.
    env.setdefault("BATON_NEGOTIATOR_SENDER_LOOKUPS_PER_SECOND", "1000")
    grpc_port, health_port = free_port(), free_port()
    environ = service_env(nats_url, BATON_NEGOTIATOR_SERVICE_ADDR=f"127.0.0.1:{grpc_port}",
                          BATON_NEGOTIATOR_JOB_PORT="0", BATON_HTTP_PORT=str(health_port),
                          BATON_NEGOTIATOR_STATE_DIR=str(state_dir), BATON_LOG_LEVEL="warning", **env)
    proc = subprocess.Popen([sys.executable, "-m", "baton_negotiator"], env=environ,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    running = RunningNegotiator(proc, grpc_port, health_port, state_dir)
    try:
        wait_ready(health_port, proc, timeout=30)
    except BaseException:
        running.stop()
        raise
    return running


@pytest.fixture(scope="module")
def module_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A JetStream nats-server of this module's own: the negotiator binds the fixed bucket names."""
    server = PrivateNats(free_port(), store=tmp_path_factory.mktemp("negotiator-js"))
    server.start()
    yield server.url
    server.stop()


@pytest.fixture(scope="module")
async def module_nc(module_nats: str) -> AsyncIterator[nats.NATS]:
    client = await nats.connect(module_nats)
    yield client
    await client.close()


@pytest.fixture(scope="module")
async def workers_kv(module_nc: nats.NATS):  # noqa: ANN201
    return await ensure_kv(module_nc.jetstream(), WORKERS)


@pytest.fixture(scope="module")
def offchain(module_nats: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNegotiator]:
    running = start_negotiator(module_nats, tmp_path_factory.mktemp("negotiator-state"),
                               BATON_NEGOTIATOR_MAX_SESSIONS="2",
                               BATON_NEGOTIATOR_MAX_BODY_BYTES_IN_FLIGHT="30000000",
                               BATON_NEGOTIATOR_JOB_TIMEOUTS='{"text-to-speech": 1.5}',
                               BATON_NEGOTIATOR_SEGMENT_FETCH_PRIVATE="true")  # test segments are served on loopback
    yield running
    running.stop()


@pytest.fixture
def gateway(offchain: RunningNegotiator) -> Iterator[TestGateway]:
    gw = TestGateway("127.0.0.1", offchain.grpc_port)
    yield gw
    gw.close()


_ = os
