"""`baton up`: the whole stack on one machine, without Docker.

Starts an embedded nats-server (JetStream, data in the state folder), then the
six services as supervised child processes, shows a live status table, and on
Ctrl-C (or SIGTERM) stops the services, then NATS, leaving no process behind.
A service gets SIGTERM and :data:`~.supervisor.STOP_TIMEOUT` (its shutdown
budget and a margin) before SIGKILL; a second Ctrl-C kills at once.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable
from pathlib import Path

import httpx
import msgspec
from nats.aio.msg import Msg
from nats.js.kv import KeyValue
from rich.console import Console
from rich.live import Live
from rich.logging import RichHandler
from rich.table import Table

from baton_common.bus import Bus
from baton_common.config import SERVICES
from baton_common.schemas import SUPERVISION_BUCKET, encode

from .control import CONTROL_SUBJECT, ControlReply, ControlRequest
from .natsd import nats_server_binary, write_config
from .supervisor import STOP_TIMEOUT, Child

__all__ = ["up"]

log = logging.getLogger("baton.up")


def up(args: argparse.Namespace) -> int:
    names = [s.strip() for s in args.services.split(",") if s.strip()] or list(SERVICES)
    unknown = [n for n in names if n not in SERVICES]
    if unknown:
        print(f"baton up: unknown service(s) {', '.join(unknown)}; known: {', '.join(SERVICES)}", file=sys.stderr)
        return 2
    ports = {name: args.port_base + SERVICES.index(name) for name in names}
    busy = [p for p in [args.nats_port, args.nats_monitor_port, *ports.values()] if _port_busy(p)]
    if busy:
        print(f"baton up: port(s) {', '.join(map(str, busy))} already in use: is another stack running? "
              "(choose others with --nats-port, --nats-monitor-port, --port-base)", file=sys.stderr)
        return 2
    console = Console(stderr=True)
    live = console.is_terminal and not args.plain
    handler: logging.Handler = RichHandler(console=console, show_path=False) if live else logging.StreamHandler()
    if not live:
        handler.setFormatter(logging.Formatter("%(asctime)s baton up: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    for noisy in ("nats", "httpx", "baton.bus"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    stack = Stack(args.state_dir.resolve(), args.nats_port, args.nats_monitor_port, ports, console, live)
    return asyncio.run(stack.run())


class Stack:
    def __init__(self, state: Path, nats_port: int, monitor_port: int, ports: dict[str, int],
                 console: Console, live: bool) -> None:
        self.state = state
        self.nats_url = f"nats://127.0.0.1:{nats_port}"
        self.nats_port = nats_port
        self.monitor_port = monitor_port
        self.ports = ports
        self.console = console
        self.live = live
        self.health: dict[str, tuple[bool, list[str]]] = {name: (False, []) for name in ports}
        """Per service: ready, and the names of its failing checks (ready or not)."""
        self.children: dict[str, Child] = {}
        self.triton_url = ""
        self.bus: Bus | None = None
        self._writes: set[asyncio.Future[None]] = set()
        self._tasks: list[asyncio.Task[None]] = []
        """Every child's run(), including those `baton start` began again."""
        self.stop = asyncio.Event()
        self.t0 = time.monotonic()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal)
        logs = self.state / "logs"
        conf = write_config(self.state, "127.0.0.1", self.nats_port, self.monitor_port)
        nats = Child("nats", [nats_server_binary(), "-c", str(conf)], os.environ, logs / "nats.log")
        tasks = self._tasks
        tasks.append(asyncio.create_task(nats.run()))
        log.info("starting nats-server on %s (data in %s)", self.nats_url, self.state / "jetstream")
        if not await _wait_port(self.nats_port, 15.0, self.stop):
            if not self.stop.is_set():
                log.error("nats-server did not start; see %s", logs / "nats.log")
            await nats.stop()
            return 1 if not self.stop.is_set() else 0
        self.bus = await Bus.connect([self.nats_url], name="baton-up")
        sup_kv = await self.bus.kv(SUPERVISION_BUCKET, ttl=30.0, description="baton up: child process states")
        extra: dict[str, dict[str, str]] = {}
        if "inference" in self.ports and importlib.util.find_spec("pytriton") is not None:
            triton_url = await self._start_triton(logs, sup_kv, tasks)
            extra["inference"] = {"BATON_INFERENCE_TRITON_URL": triton_url,
                                  "BATON_INFERENCE_STATE_DIR": str(self.state / "inference")}
        for name, port in self.ports.items():
            own = f"BATON_{name.upper()}_"  # beats any shared or own value in the caller's environment
            env = {**os.environ, f"{own}NATS_URL": self.nats_url, f"{own}HTTP_HOST": "127.0.0.1",
                   f"{own}HTTP_PORT": str(port), f"{own}LOG_FORMAT": "json", **extra.get(name, {})}
            child = Child(name, [sys.executable, "-m", f"baton_{name}"], env, logs / f"{name}.log",
                          on_change=lambda c: self._publish(sup_kv, c))
            self.children[name] = child
            tasks.append(asyncio.create_task(child.run()))
        log.info("started %d services; logs in %s", len(self.ports), logs)
        await self.bus.nc.subscribe(CONTROL_SUBJECT, cb=self._control)
        watcher = asyncio.create_task(self._watch(sup_kv))
        try:
            await self.stop.wait()
        finally:
            watcher.cancel()
            log.info("stopping services")
            await asyncio.gather(*(c.stop() for c in self.children.values()))
            await self.bus.drain()
            log.info("stopping nats-server")
            await nats.stop()
            _, stuck = await asyncio.wait(tasks, timeout=STOP_TIMEOUT)
            for child in self.children.values():
                child.kill_now()  # nothing should be left; if something is, it goes now
            if stuck:
                log.error("some processes did not stop in time and were killed")
            else:
                log.info("stopped; nothing left running")
        return 0

    async def _start_triton(self, logs: Path, kv: KeyValue, tasks: list[asyncio.Task[None]]) -> str:
        """A local tritonserver (the nvidia-pytriton wheel's, CPU) on ports allocated now, supervised like a service.

        Run as ``python -m baton_inference.server`` (a process, not an import: the CLI imports no service);
        the inference service starts once ``/v2/health/ready`` answers, or after 30 s (it then retries itself).
        """
        http, grpc, metrics = (_free_port() for _ in range(3))
        argv = [sys.executable, "-m", "baton_inference.server", "--state", str(self.state / "triton"),
                f"--http-port={http}", f"--grpc-port={grpc}", f"--metrics-port={metrics}"]
        child = Child("triton", argv, os.environ, logs / "triton.log", on_change=lambda c: self._publish(kv, c))
        self.children["triton"] = child
        tasks.append(asyncio.create_task(child.run()))
        url = self.triton_url = f"http://127.0.0.1:{http}"
        log.info("starting tritonserver on %s (metrics on :%d)", url, metrics)
        async with httpx.AsyncClient(timeout=1.0) as client:
            for _ in range(60):
                try:
                    if (await client.get(f"{url}/v2/health/ready")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.5)
            else:
                log.error("tritonserver is not ready after 30 s; see %s", logs / "triton.log")
        return url

    def _on_signal(self) -> None:
        if self.stop.is_set():  # second Ctrl-C: no more waiting
            for child in self.children.values():
                child.kill_now()
        self.stop.set()

    async def _control(self, msg: Msg) -> None:
        """`baton stop|start <service>`: stop one child and keep it stopped, or run it again."""
        try:
            req = msgspec.json.decode(msg.data, type=ControlRequest)
        except msgspec.ValidationError as exc:
            return await msg.respond(msgspec.json.encode(ControlReply(ok=False, error=f"bad request: {exc}")))
        child = self.children.get(req.service)
        if child is None:
            reply = ControlReply(ok=False, error=f"{req.service!r} is not run by this baton up "
                                                 f"(it runs {', '.join(self.children)})")
        elif req.action == "stop":
            log.info("baton stop %s", req.service)
            await child.stop()
            for _ in range(50):  # run() notes the exit right after the process is gone
                if child.state == "stopped":
                    break
                await asyncio.sleep(0.02)
            reply = ControlReply(ok=True, state=child.state)
        elif req.action == "start":
            if child.state == "stopped" and not self.stop.is_set():
                log.info("baton start %s", req.service)
                child.resume()
                self._tasks.append(asyncio.create_task(child.run()))
            reply = ControlReply(ok=True, state=child.state)
        else:
            reply = ControlReply(ok=False, error=f"unknown action {req.action!r} (stop or start)")
        await msg.respond(msgspec.json.encode(reply))

    def _publish(self, kv: KeyValue, child: Child) -> None:
        if self.bus is not None and self.bus.connected:
            task = asyncio.ensure_future(_quiet(kv.put(child.name, encode(child.record()))))
            self._writes.add(task)  # keep a reference until it is done
            task.add_done_callback(self._writes.discard)

    async def _watch(self, kv: KeyValue) -> None:
        all_ready_logged = False
        last_publish = 0.0
        async with httpx.AsyncClient(timeout=1.0) as http:
            with Live(self.table(), console=self.console, refresh_per_second=4, transient=False) if self.live \
                    else _NoLive() as view:
                while True:
                    before = self.health
                    results = await asyncio.gather(*(self._ready(http, n, p) for n, p in self.ports.items()))
                    self.health = dict(zip(self.ports, results, strict=True))
                    if not self.live:
                        for name, (ok, _) in self.health.items():
                            if ok != before[name][0]:
                                log.info("%s is %s", name, "ready" if ok else "not ready")
                    if all(ok for ok, _ in self.health.values()) and not all_ready_logged:
                        all_ready_logged = True
                        log.info("all %d services ready in %.1fs; Ctrl-C stops the stack",
                                 len(self.health), time.monotonic() - self.t0)
                    if time.monotonic() - last_publish > 2.0:
                        last_publish = time.monotonic()
                        for child in self.children.values():
                            self._publish(kv, child)
                    view.update(self.table())
                    await asyncio.sleep(0.5)

    async def _ready(self, http: httpx.AsyncClient, name: str, port: int) -> tuple[bool, list[str]]:
        """Whether the service is ready, and the names of its failing checks."""
        if self.children[name].state != "running":
            return False, []
        try:
            resp = await http.get(f"http://127.0.0.1:{port}/readyz")
            checks = resp.json().get("checks", {})
        except (httpx.HTTPError, ValueError):
            return False, []
        return resp.status_code == 200, sorted(k for k, c in checks.items() if not c.get("ok"))

    def table(self) -> Table:
        t = Table(title=f"Baton local stack  (NATS {self.nats_url})", title_justify="left")
        for col in ("service", "state", "pid", "restarts", "up for", "health"):
            t.add_column(col)
        for name, child in self.children.items():
            state = child.state
            style = {"running": "green", "restarting": "yellow", "crash-loop": "bold red"}.get(state, "")
            up_for = f"{time.monotonic() - child.started_at:.0f}s" if state == "running" else "-"
            if name not in self.ports:  # the local tritonserver: inference's /readyz reports it
                t.add_row(name, state, str(child.pid or "-"), str(child.restarts), "-", self.triton_url)
                continue
            ready, failing = self.health[name]
            health = f"ready on :{self.ports[name]}" if ready else "not ready"
            if failing:
                health += f" [yellow]({', '.join(failing)} failing)[/]"
            t.add_row(name, f"[{style}]{state}[/]" if style else state, str(child.pid or "-"),
                      str(child.restarts), up_for, health)
        return t


class _NoLive:
    def __enter__(self) -> _NoLive:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def update(self, _: object) -> None:
        pass


async def _quiet(aw: Awaitable[object]) -> None:
    try:
        await aw
    except Exception:
        pass


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_busy(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


async def _wait_port(port: int, timeout: float, stop: asyncio.Event) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not stop.is_set():
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return True
        except OSError:
            await asyncio.sleep(0.1)
    return False
