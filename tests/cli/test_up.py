"""`baton up`: six services ready on a real NATS, a killed one restarted, nothing left on exit."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from baton_common.config import SERVICES
from tests.helpers import free_port, process_alive


def free_port_run(count: int) -> int:
    """The first of ``count`` consecutive free ports (baton up numbers the services from --port-base)."""
    for _ in range(50):
        base = free_port()
        if base + count < 65535 and all(_bindable(base + i) for i in range(count)):
            return base
    raise RuntimeError("no run of free ports")


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def descendants(pid: int) -> set[int]:
    """Every live process under ``pid`` (read from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, stack = set(), [pid]
    while stack:
        for c in children.get(stack.pop(), []):
            out.add(c)
            stack.append(c)
    return out


def status_json(nats_url: str) -> dict:
    run = subprocess.run([sys.executable, "-m", "baton_cli", "status", "--json", "--nats-url", nats_url],
                         capture_output=True, text=True, timeout=30)
    return json.loads(run.stdout) if run.stdout else {"ok": False, "services": {}}


def _all_ready_in_status(nats_url: str) -> bool:
    report = status_json(nats_url)
    return report["ok"] and all(s["ready"] == 1 for s in report["services"].values())


def all_ready(ports: dict[str, int]) -> bool:
    for port in ports.values():
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code != 200:
                return False
        except httpx.HTTPError:
            return False
    return True


def test_up_restart_and_clean_stop(tmp_path: Path) -> None:
    nats_port, monitor_port = free_port(), free_port()
    base = free_port_run(len(SERVICES))
    ports = {name: base + i for i, name in enumerate(SERVICES)}
    nats_url = f"nats://127.0.0.1:{nats_port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATON_")}
    log = (tmp_path / "up.log").open("wb")
    up = subprocess.Popen(
        [sys.executable, "-m", "baton_cli", "up", "--state-dir", str(tmp_path / "state"), "--plain",
         "--nats-port", str(nats_port), "--nats-monitor-port", str(monitor_port), "--port-base", str(base)],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )
    try:
        # 1. all six services report ready, through their health endpoints and their heartbeats
        deadline = time.monotonic() + 60
        while not (all_ready(ports) and _all_ready_in_status(nats_url)) and time.monotonic() < deadline:
            assert up.poll() is None, (tmp_path / "up.log").read_text()
            time.sleep(0.5)
        report = status_json(nats_url)
        assert report["ok"], (tmp_path / "up.log").read_text()
        assert {n: s["ready"] for n, s in report["services"].items()} == {n: 1 for n in SERVICES}

        # 2. kill -9 one service: it restarts and is ready again within 10 s
        victim = report["services"]["pricing"]["instances"][0]["pid"]
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        while time.monotonic() - killed_at < 10:
            hb = status_json(nats_url)["services"]["pricing"]["instances"]
            if hb and hb[0]["pid"] != victim and hb[0]["state"] == "ready" and all_ready(ports):
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"pricing not ready again within 10 s:\n{(tmp_path / 'up.log').read_text()}")
        assert "pricing exited with -9" in (tmp_path / "up.log").read_text()
        assert status_json(nats_url)["supervision"]["pricing"]["restarts"] == 1

        # 3. stop the stack: everything it started is gone
        procs = descendants(up.pid)
        assert len(procs) >= 7  # nats-server and six services
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=40) == 0
        time.sleep(0.3)
        assert [p for p in procs if process_alive(p)] == []
        assert "stopped; nothing left running" in (tmp_path / "up.log").read_text()
    finally:
        if up.poll() is None:
            up.kill()
        log.close()
