"""nats/nats.conf, run by the real nats-server (the version compose.yaml pins).

The config is copied to a temporary folder with its store_dir pointed there;
ports come from the command line so that tests never collide.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture
def server(nats_server, repo, tmp_path):
    """The production config with its store in tmp_path; yields the monitoring URL."""
    conf = (repo / "nats" / "nats.conf").read_text(encoding="utf-8")
    conf, n = re.subn(r"(?m)^(\s*store_dir\s*[:=]\s*).*$", rf"\g<1>{tmp_path / 'store'}", conf)
    assert n == 1, "nats.conf must set store_dir exactly once"
    (tmp_path / "nats.conf").write_text(conf)
    port, http_port = free_port(), free_port()
    proc = subprocess.Popen(
        [nats_server, "-c", str(tmp_path / "nats.conf"), "-a", "127.0.0.1", "-p", str(port), "-m", str(http_port)],
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "nats.log").open("wb"),
    )
    url = f"http://127.0.0.1:{http_port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                if get(f"{url}/healthz")[0] == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None, (tmp_path / "nats.log").read_text()
            assert time.monotonic() < deadline, "nats-server did not become healthy"
            time.sleep(0.05)
        yield url, tmp_path / "store"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_the_config_is_valid(nats_server, repo, run):
    result = run(nats_server, "-c", str(repo / "nats" / "nats.conf"), "-t")
    assert result.returncode == 0, result.stderr + result.stdout


def test_jetstream_stores_on_disk_and_fsyncs_every_write(server):
    url, store = server
    status, body = get(f"{url}/varz")
    assert status == 200
    config = json.loads(body)["jetstream"]["config"]
    assert config["sync_always"] is True, config
    assert Path(config["store_dir"]).is_relative_to(store), config
    assert config["max_storage"] > 0, "file storage is enabled"


def test_healthz_is_what_the_container_healthcheck_sees(server):
    url, _ = server
    status, body = get(f"{url}/healthz")
    assert status == 200 and json.loads(body) == {"status": "ok"}
