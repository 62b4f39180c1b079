"""Fixtures every test may use: one real `nats-server -js` per test run.

On two cores one server is shared by the whole run; each test gets its own
subject prefix and bucket names through the ``prefix`` fixture, so tests
never see each other's messages.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
from hypothesis import settings

from tests.helpers import PrivateNats, free_port, nats_server_binary, wait_for_port

REPO = Path(__file__).resolve().parent.parent

# Two busy cores make per-example timings meaningless: no deadline (speed belongs in bench/).
settings.register_profile("baton", deadline=None, print_blob=True)
settings.load_profile("baton")


@pytest.fixture(scope="session")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a real nats-server with JetStream, started once per test run."""
    port = free_port()
    store = tmp_path_factory.mktemp("jetstream")
    proc = subprocess.Popen(
        [nats_server_binary(), "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(store)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_port(port)
    except TimeoutError:
        proc.kill()
        pytest.fail(f"nats-server did not start: {proc.stderr.read().decode() if proc.stderr else ''}")
    yield f"nats://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def private_nats(tmp_path: Path) -> Iterator[PrivateNats]:
    """A JetStream nats-server of this test's own, not started yet; for tests that stop it or need empty buckets."""
    server = PrivateNats(free_port(), store=tmp_path / "private-js")
    yield server
    server.stop()


@pytest.fixture
def prefix() -> str:
    """A name unique to this test, for subjects and KV bucket names ([A-Za-z0-9_-])."""
    return "t" + uuid.uuid4().hex[:12]


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[nats.NATS]:
    """A plain nats-py client connected to the test server."""
    client = await nats.connect(nats_url)
    yield client
    await client.close()


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Environment without any BATON_* variable from the developer's shell."""
    for key in list(os.environ):
        if key.startswith("BATON_"):
            monkeypatch.delenv(key)
    return monkeypatch
