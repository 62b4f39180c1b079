"""The service runtime: health endpoints, heartbeats, readiness and shutdown, on a real NATS."""

from __future__ import annotations

import asyncio
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import nats
import nats.js.errors
import pytest
from litestar import get
from nats.js.kv import KeyValue

from baton_common.bus import Bus
from baton_common.config import CommonSettings
from baton_common.runtime import Listener, Runtime, ServiceBase, ServiceContext, run_loop
from baton_common.schemas import HEARTBEAT_BUCKET, Check, Heartbeat, Message, decode, heartbeat_key
from tests.helpers import PrivateNats, free_port, service_env, wait_ready


class Toy(ServiceBase[CommonSettings]):
    name = "toy"

    def __init__(self, settings: CommonSettings) -> None:
        super().__init__(settings)
        self.may_start = asyncio.Event()
        self.backend_up = True
        self.stopped = False

    async def start(self, ctx: ServiceContext) -> None:
        async def backend() -> str:
            if not self.backend_up:
                raise ConnectionError("backend refused")
            return "backend fine"

        ctx.probe("backend", backend, interval=0.2, required=True)
        await self.may_start.wait()

    async def stop(self) -> None:
        self.stopped = True

    def checks(self) -> dict[str, Check]:
        return {"gpu": Check(ok=True, detail="none")}


async def wait_until(cond: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await cond():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not met in time")


@pytest.fixture
async def toy(nats_url: str, prefix: str):
    port = free_port()
    settings = CommonSettings(nats_url=nats_url, http_host="127.0.0.1", http_port=port, instance_id=prefix)
    service = Toy(settings)
    rt = Runtime(service, settings)
    task = asyncio.create_task(rt.run(handle_signals=False))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        yield service, rt, task, http
    rt.request_stop()
    await asyncio.wait_for(task, 10)


async def heartbeat(nc: nats.NATS, instance: str) -> Heartbeat | None:
    try:
        kv = await nc.jetstream().key_value(HEARTBEAT_BUCKET)
        return decode((await kv.get(heartbeat_key("toy", instance))).value, Heartbeat)
    except nats.js.errors.NotFoundError:  # no bucket yet, or no such key
        return None


async def test_not_ready_until_start_up_is_done_then_ready(toy, nc, prefix: str) -> None:
    service, rt, task, http = toy

    async def alive() -> bool:
        try:
            return (await http.get("/healthz")).status_code == 200
        except httpx.HTTPError:
            return False

    await wait_until(alive)
    await wait_until(lambda: _true_if(heartbeat(nc, prefix)))
    r = await http.get("/readyz")
    assert r.status_code == 503 and r.json()["state"] == "starting"
    assert (await heartbeat(nc, prefix)).state == "starting"

    service.may_start.set()
    await wait_until(lambda: _status(http, 200))
    body = (await http.get("/readyz")).json()
    assert body["ready"] and body["checks"]["nats"]["ok"] and body["checks"]["backend"]["detail"] == "backend fine"
    await asyncio.sleep(2.5)  # one heartbeat interval later the bucket says ready too
    hb = await heartbeat(nc, prefix)
    assert hb.state == "ready" and hb.pid == os.getpid() and hb.checks["gpu"].detail == "none"
    assert time.time() - hb.at < 3


async def test_a_failing_required_check_makes_it_unready_and_back(toy, nc, prefix: str) -> None:
    service, rt, task, http = toy
    service.may_start.set()
    await wait_until(lambda: _status(http, 200))
    service.backend_up = False
    await wait_until(lambda: _status(http, 503))
    body = (await http.get("/readyz")).json()
    assert body["state"] == "not_ready" and "backend refused" in body["checks"]["backend"]["detail"]
    service.backend_up = True
    await wait_until(lambda: _status(http, 200))


async def test_metrics_endpoint(toy) -> None:
    service, rt, task, http = toy
    service.may_start.set()
    await wait_until(lambda: _status(http, 200))
    text = (await http.get("/metrics")).text
    assert 'baton_runtime_ready{service="toy"} 1.0' in text
    assert 'baton_runtime_nats_connected{service="toy"} 1.0' in text
    assert "process_start_time_seconds" in text or "python_info" in text


async def test_graceful_stop_removes_the_heartbeat(toy, nc, prefix: str) -> None:
    service, rt, task, http = toy
    service.may_start.set()
    await wait_until(lambda: _status(http, 200))
    rt.request_stop()
    assert await asyncio.wait_for(task, 10) == 0
    assert service.stopped
    assert await heartbeat(nc, prefix) is None


async def test_nats_closing_under_the_service_is_fatal(toy) -> None:
    service, rt, task, http = toy
    service.may_start.set()
    await wait_until(lambda: _status(http, 200))
    await rt.bus.nc.close()
    assert await asyncio.wait_for(task, 10) == 1


async def _status(http: httpx.AsyncClient, code: int) -> bool:
    try:
        return (await http.get("/readyz")).status_code == code
    except httpx.HTTPError:
        return False


async def _true_if(aw: Awaitable[object]) -> bool:
    return (await aw) is not None


# -- as a real process ---------------------------------------------------------


def test_sigterm_stops_a_service_process_cleanly(nats_url: str, prefix: str) -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "baton_pricing"], stderr=subprocess.PIPE,
                            env=service_env(nats_url, BATON_HTTP_PORT=str(port), BATON_INSTANCE_ID=prefix))
    try:
        wait_ready(port, proc)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        assert b'"msg": "stopped"' in proc.stderr.read()
    finally:
        proc.kill()


def test_bad_configuration_stops_the_service_at_start_naming_it(nats_url: str) -> None:
    run = subprocess.run([sys.executable, "-m", "baton_pricing"], capture_output=True, text=True, timeout=30,
                         env=service_env(nats_url, BATON_PRICING_HTTP_PROT="1"))
    assert run.returncode == 2
    assert "unknown setting BATON_PRICING_HTTP_PROT" in run.stderr


def test_a_port_in_use_is_fatal(nats_url: str) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        run = subprocess.run([sys.executable, "-m", "baton_pricing"], capture_output=True, text=True, timeout=30,
                             env=service_env(nats_url, BATON_HTTP_PORT=str(port)))
    assert run.returncode == 1
    assert "HTTP server stopped" in run.stderr


class Slow(Toy):
    """Answers requests slowly, and records the order of what happens at shutdown."""

    def __init__(self, settings: CommonSettings, subject: str) -> None:
        super().__init__(settings)
        self.subject = subject
        self.events: list[str] = []

    async def start(self, ctx: ServiceContext) -> None:
        async def answer(req: Ping) -> Ping:
            self.events.append("handling")
            await asyncio.sleep(1.0)
            self.events.append("handled")
            return Ping(text=req.text.upper())

        await ctx.bus.serve(self.subject, Ping, answer)

    async def stop(self) -> None:
        self.events.append("service stop")


class Ping(Message, frozen=True, kw_only=True, tag="test-runtime-ping.v1"):
    text: str


async def test_shutdown_finishes_requests_in_flight_before_the_service_stops(nats_url: str, prefix: str) -> None:
    port = free_port()
    settings = CommonSettings(nats_url=nats_url, http_host="127.0.0.1", http_port=port, instance_id=prefix)
    service = Slow(settings, f"{prefix}.slow")
    rt = Runtime(service, settings)
    task = asyncio.create_task(rt.run(handle_signals=False))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        await wait_until(lambda: _status(http, 200))
    client = await Bus.connect([nats_url], name="caller")
    pending = asyncio.create_task(client.request(f"{prefix}.slow", Ping(text="late"), Ping, timeout=5))
    while "handling" not in service.events:
        await asyncio.sleep(0.05)
    rt.request_stop()
    assert (await pending).text == "LATE"  # answered although the stop came while it was being handled
    assert await asyncio.wait_for(task, 15) == 0
    assert service.events == ["handling", "handled", "service stop"]
    await client.drain()


class Broken(Toy):
    async def start(self, ctx: ServiceContext) -> None:
        raise RuntimeError("model repository missing")


async def test_failed_start_up_exits_one_and_cleans_up(nats_url: str, prefix: str, nc: nats.NATS) -> None:
    settings = CommonSettings(nats_url=nats_url, http_host="127.0.0.1", http_port=free_port(), instance_id=prefix)
    service = Broken(settings)
    assert await asyncio.wait_for(Runtime(service, settings).run(handle_signals=False), 15) == 1
    assert service.stopped  # its stop() ran: whatever start() half-opened is closed
    assert await heartbeat(nc, prefix) is None


def test_sigterm_while_nats_is_down_still_stops_cleanly(private_nats: PrivateNats) -> None:
    private_nats.start()
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "baton_pricing"], stderr=subprocess.PIPE,
                            env=service_env(private_nats.url, BATON_HTTP_PORT=str(port)))
    try:
        wait_ready(port, proc)
        private_nats.stop()
        deadline = time.monotonic() + 10
        while httpx.get(f"http://127.0.0.1:{port}/readyz").status_code != 503 and time.monotonic() < deadline:
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert b'"msg": "stopped"' in proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()


def test_nats_without_jetstream_is_a_clear_fatal_error(private_nats: PrivateNats) -> None:
    plain = PrivateNats(private_nats.port)  # same port, no store: JetStream off
    plain.start()
    try:
        run = subprocess.run([sys.executable, "-m", "baton_pricing"], capture_output=True, text=True, timeout=30,
                             env=service_env(plain.url, BATON_HTTP_PORT=str(free_port())))
    finally:
        plain.stop()
    assert run.returncode == 1
    assert "is JetStream enabled?" in run.stderr


def test_an_empty_nats_url_is_a_configuration_error() -> None:
    run = subprocess.run([sys.executable, "-m", "baton_pricing"], capture_output=True, text=True, timeout=30,
                         env=service_env("", BATON_HTTP_PORT=str(free_port())))
    assert run.returncode == 2 and "BATON_NATS_URL is empty" in run.stderr


# -- shutdown order: HTTP first, then NATS --------------------------------------


async def _refused(port: int) -> bool:
    """Whether a new connection to ``port`` is refused."""
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except ConnectionRefusedError:
        return True
    writer.close()
    return False


async def test_sigterm_lets_an_http_request_in_flight_finish_its_nats_writes(
    nats_url: str, prefix: str, nc: nats.NATS, repo: Path, tmp_path: Path
) -> None:
    port, listen = free_port(), free_port()
    env = service_env(nats_url, BATON_HTTP_PORT=str(port), BATON_INSTANCE_ID=prefix, BATON_INFLIGHT_BUCKET=prefix,
                      BATON_INFLIGHT_LISTEN_PORT=str(listen), BATON_INFLIGHT_WORK_SECONDS="1.5")
    with open(tmp_path / "inflight.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "tests.common.inflight_service"], cwd=repo, env=env, stderr=log)
    try:
        wait_ready(port, proc)
        kv = await nc.jetstream().key_value(prefix)
        async with httpx.AsyncClient(timeout=15) as http:
            pending = asyncio.create_task(http.post(f"http://127.0.0.1:{listen}/work/pay1"))
            await wait_until(lambda: _has_key(kv, "pay1.nonces"))  # the request is in its handler now
            proc.send_signal(signal.SIGTERM)
            await wait_until(lambda: _refused(listen), timeout=5)
            # refused while the request is still in flight and the process still up: not because it exited
            assert not pending.done() and proc.poll() is None
            assert await _refused(port)  # the health server has stopped accepting too
            resp = await pending
        assert resp.status_code == 200 and resp.content == b"done"
        assert (await kv.get("pay1.credit")).value == b"credited"  # its write after the stop went through
        assert proc.wait(timeout=25) == 0
    finally:
        proc.kill()
        proc.wait()
    assert b'"msg": "stopped"' in (tmp_path / "inflight.log").read_bytes()


async def _has_key(kv: KeyValue, key: str) -> bool:
    try:
        await kv.get(key)
        return True
    except nats.js.errors.KeyNotFoundError:
        return False


class SlowRoute(Toy):
    """A slow route on the runtime's own server that writes over NATS; records what happens at shutdown."""

    def __init__(self, settings: CommonSettings, bucket: str) -> None:
        super().__init__(settings)
        self.bucket = bucket
        self.events: list[str] = []
        self.kv: KeyValue | None = None

    def routes(self) -> list[Any]:
        @get("/slow")
        async def slow() -> str:
            self.events.append("http handling")
            await asyncio.sleep(1.0)
            assert self.kv is not None
            await self.kv.put("slow", b"written")
            self.events.append("http handled")
            return "ok"

        return [slow]

    async def start(self, ctx: ServiceContext) -> None:
        self.kv = await ctx.bus.kv(self.bucket)

    async def stop(self) -> None:
        self.events.append("service stop")


async def test_the_runtime_http_server_stops_and_finishes_its_requests_before_nats_drains(
    nats_url: str, prefix: str, nc: nats.NATS
) -> None:
    port = free_port()
    settings = CommonSettings(nats_url=nats_url, http_host="127.0.0.1", http_port=port, instance_id=prefix)
    service = SlowRoute(settings, prefix)
    rt = Runtime(service, settings)
    task = asyncio.create_task(rt.run(handle_signals=False))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=15) as http:
        await wait_until(lambda: _status(http, 200))
        bus = rt.bus
        assert bus is not None

        def record(what: str, step: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
            async def recorded(*args: object) -> None:
                service.events.append(f"{what}, HTTP {'refused' if await _refused(port) else 'accepted'}")
                await step(*args)

            return recorded

        bus.drain_subscriptions = record("drain subscriptions", bus.drain_subscriptions)  # type: ignore[method-assign]
        bus.drain = record("drain NATS", bus.drain)  # type: ignore[method-assign]
        pending = asyncio.create_task(http.get("/slow"))
        await wait_until(lambda: _true_if_async(lambda: "http handling" in service.events))
        rt.request_stop()
        resp = await pending
    assert resp.status_code == 200 and resp.text == "ok"
    assert await asyncio.wait_for(task, 25) == 0
    assert service.events == ["http handling", "http handled", "drain subscriptions, HTTP refused", "service stop",
                              "drain NATS, HTTP refused"]
    assert (await (await nc.jetstream().key_value(prefix)).get("slow")).value == b"written"


async def _true_if_async(cond: Callable[[], bool]) -> bool:
    return cond()


class Stuck(Toy):
    """Everything hangs: an HTTP route, a bus handler and stop()."""

    def __init__(self, settings: CommonSettings, subject: str) -> None:
        super().__init__(settings)
        self.subject = subject
        self.handling: set[str] = set()

    def routes(self) -> list[Any]:
        @get("/stuck")
        async def stuck() -> str:
            self.handling.add("http")
            await asyncio.sleep(3600)
            return "never"

        return [stuck]

    async def start(self, ctx: ServiceContext) -> None:
        async def answer(req: Ping) -> Ping:
            self.handling.add("bus")
            await asyncio.sleep(3600)
            return req

        await ctx.bus.serve(self.subject, Ping, answer)

    async def stop(self) -> None:
        await asyncio.sleep(3600)


async def test_shutdown_ends_within_its_budget_whatever_hangs(nats_url: str, prefix: str) -> None:
    port = free_port()
    settings = CommonSettings(nats_url=nats_url, http_host="127.0.0.1", http_port=port, instance_id=prefix)
    service = Stuck(settings, f"{prefix}.stuck")
    rt = Runtime(service, settings, shutdown_budget=3.0)
    assert rt.phases.total == pytest.approx(3.0)
    task = asyncio.create_task(rt.run(handle_signals=False))
    client = await Bus.connect([nats_url], name="caller")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=15) as http:
        await wait_until(lambda: _status(http, 200))
        stuck_http = asyncio.create_task(http.get("/stuck"))
        stuck_bus = asyncio.create_task(client.request(f"{prefix}.stuck", Ping(text="x"), Ping, timeout=15))
        await wait_until(lambda: _true_if_async(lambda: service.handling == {"http", "bus"}))
        began = time.monotonic()
        rt.request_stop()
        assert await asyncio.wait_for(task, 15) == 0
        took = time.monotonic() - began
        assert (await stuck_http).status_code == 500  # cut off at the end of the HTTP phase, not left hanging
    stuck_bus.cancel()
    await client.drain()
    # A supervisor waits the budget plus a margin before SIGKILL: the runtime must be done by then.
    assert took < 3.0 + 1.0, f"shutdown took {took:.1f}s on a 3 s budget"


class Public(Toy):
    """Opens a TLS listener of its own, as the negotiator does for gateways."""

    def __init__(self, settings: CommonSettings, certfile: Path, keyfile: Path) -> None:
        super().__init__(settings)
        self.certfile, self.keyfile = certfile, keyfile
        self.listener: Listener | None = None

    async def start(self, ctx: ServiceContext) -> None:
        self.listener = ctx.serve_http(_version_app, "127.0.0.1:0", certfile=str(self.certfile),
                                       keyfile=str(self.keyfile))


async def _version_app(scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]],
                       send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
    """An ASGI app that answers with the HTTP version it was asked in."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": scope["http_version"].encode()})


async def test_a_service_tls_listener_speaks_http2_and_http1_and_closes_at_stop(
    nats_url: str, prefix: str, tmp_path: Path
) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True, timeout=30)
    port = free_port()
    settings = CommonSettings(nats_url=nats_url, http_host="127.0.0.1", http_port=port, instance_id=prefix)
    service = Public(settings, cert, key)
    rt = Runtime(service, settings)
    task = asyncio.create_task(rt.run(handle_signals=False))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        await wait_until(lambda: _status(http, 200))
    assert service.listener is not None
    public = service.listener.port  # bound on port 0: the port chosen is reported
    tls = ssl.create_default_context(cafile=str(cert))
    for http2, version in ((True, "2"), (False, "1.1")):  # by ALPN
        async with httpx.AsyncClient(http2=http2, http1=not http2, verify=tls) as client:
            resp = await client.get(f"https://127.0.0.1:{public}/")
        assert resp.status_code == 200 and resp.text == version and resp.http_version == f"HTTP/{version}"
    rt.request_stop()
    assert await asyncio.wait_for(task, 25) == 0
    assert await _refused(public)


def test_services_run_on_uvloop() -> None:
    """run_service's loop is libuv's (less CPU per request and NATS message than asyncio's own)."""

    async def loop_type() -> str:
        return type(asyncio.get_running_loop()).__module__

    assert run_loop(loop_type()).startswith("uvloop")
