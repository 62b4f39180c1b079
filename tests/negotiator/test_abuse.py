"""What a hostile client cannot do to other gateways: stall the event loop with a form, hold the body budget
with a silent or slow upload, fetch unbounded segments, spend fresh keys on chain lookups (findings of the
hostile review, each asserted as a gateway or an operator sees it)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import pytest

from tests.negotiator.conftest import RunningNegotiator, start_negotiator
from tests.negotiator.gateway import TestGateway, ai_caps
from tests.negotiator.test_faults import _raw_upload, _read_answer, call
from tests.negotiator.workers import TestWorker

READ_TIMEOUT = 4.0


@pytest.fixture(scope="module")
def offchain(module_nats: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNegotiator]:
    running = start_negotiator(module_nats, tmp_path_factory.mktemp("abuse-state"),
                               BATON_NEGOTIATOR_MAX_BODY_BYTES_IN_FLIGHT="30000000",
                               BATON_NEGOTIATOR_MAX_BODY_BYTES_PER_CLIENT="20000000",
                               BATON_NEGOTIATOR_BODY_READ_TIMEOUT=str(READ_TIMEOUT),
                               BATON_NEGOTIATOR_SEGMENT_FETCH_PRIVATE="true")
    yield running
    running.stop()


@pytest.fixture(scope="module")
async def painter(module_nc, workers_kv) -> AsyncIterator[TestWorker]:  # noqa: ANN001
    worker = await TestWorker(module_nc, workers_kv, "abuse-i2i", models=(("image-to-image", "abuse-model"),)).start()
    await asyncio.sleep(0.3)
    yield worker
    await worker.stop()


def _timed_get_orchestrator(gw: TestGateway) -> float:
    started = time.monotonic()
    try:
        gw.get_orchestrator(signed=False)
    except grpc.RpcError as exc:  # DEADLINE_EXCEEDED after the test gateway's 10 s
        assert exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    return time.monotonic() - started


async def test_a_newline_heavy_form_does_not_stall_get_orchestrator(gateway: TestGateway, painter: TestWorker) -> None:
    info = await call(gateway.get_orchestrator, signed=False, caps=ai_caps(28, "abuse-model"))
    seg = gateway.segment_header(info, manifest=b"28_abuse-model", signed=False)
    body = (b"--XX\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n"
            b"Content-Type: image/png\r\n\r\n" + b"\n" * 12_000_000 + b"\r\n--XX\r\n"
            b"Content-Disposition: form-data; name=\"model_id\"\r\n\r\nabuse-model\r\n--XX\r\n"
            b"Content-Disposition: form-data; name=\"prompt\"\r\n\r\nx\r\n--XX--\r\n")

    def upload() -> tuple[int, str]:
        with gateway.http() as client:
            r = client.post(f"{info.transcoder}/image-to-image", content=body, timeout=60,
                            headers={"Livepeer-Segment": seg, "Content-Type": "multipart/form-data; boundary=XX"})
            return r.status_code, r.text

    pending = asyncio.ensure_future(call(upload))
    timings = []
    while not pending.done():  # GetOrchestrator answers inside a gateway's 500 ms all along the upload
        timings.append(await call(_timed_get_orchestrator, gateway))
    assert await pending == (400, "invalid request: the image is not a PNG, JPEG or WebP file\n")
    assert timings and max(timings) < 0.5, timings


async def test_an_upload_with_no_worker_for_its_pipeline_is_503_unread(gateway: TestGateway) -> None:
    info = await call(gateway.get_orchestrator, signed=False, caps=ai_caps(29, "nobody"))
    seg = gateway.segment_header(info, manifest=b"29_nobody", signed=False)
    tls = await call(_raw_upload, gateway, info.transcoder, "/image-to-video", 90_000_000, b"--XX\r\n",
                     {"Livepeer-Segment": seg, "Content-Type": "multipart/form-data; boundary=XX"})
    try:
        answer = await call(_read_answer, tls)  # times out (10 s) if the server waits for the body
    finally:
        tls.close()
    assert answer.startswith(b"HTTP/1.1 503") and answer.endswith(b"\r\n\r\ninsufficient capacity\n"), answer[-80:]


async def _json_job(gateway: TestGateway, info) -> tuple[int, str]:  # noqa: ANN001
    seg = gateway.segment_header(info, manifest=b"27_no-such-model", signed=False)
    with gateway.http() as client:
        r = await call(client.post, f"{info.transcoder}/text-to-image", json={"prompt": "x", "model_id": "m"},
                       headers={"Livepeer-Segment": seg})
    return r.status_code, r.text


async def test_a_silent_upload_holds_no_budget_and_is_408_at_the_read_deadline(gateway: TestGateway) -> None:
    info = await call(gateway.get_orchestrator, signed=False)
    seg = gateway.segment_header(info, manifest=b"silent", signed=False)
    # Declares 20 MB (all its client may hold), sends nothing: an honest job still gets past the budget at once.
    held = await call(_raw_upload, gateway, info.transcoder, "/segment", 20_000_000, b"", {"Livepeer-Segment": seg})
    try:
        started = time.monotonic()
        assert await _json_job(gateway, info) == (503, "insufficient capacity\n")  # no worker: past the budget
        answer = await call(_read_answer, held)
        assert answer.startswith(b"HTTP/1.1 408") and b"request body not received within 4 s" in answer, answer
        assert READ_TIMEOUT - 0.5 < time.monotonic() - started < READ_TIMEOUT + 3
    finally:
        held.close()


async def test_one_client_cannot_hold_more_than_its_share_of_the_budget(gateway: TestGateway) -> None:
    """Per client address 20 MB of the 30 MB in flight: a trickling upload that sent 15 MB leaves its client 5."""
    info = await call(gateway.get_orchestrator, signed=False)
    seg = gateway.segment_header(info, manifest=b"share", signed=False)
    held = await call(_raw_upload, gateway, info.transcoder, "/segment", 20_000_000, b"\x47" * 15_000_000,
                      {"Livepeer-Segment": seg})
    try:
        await asyncio.sleep(0.3)
        with gateway.http() as client:
            r = await call(client.post, f"{info.transcoder}/segment", content=b"\x47" * 8_000_000,
                           headers={"Livepeer-Segment": gateway.segment_header(info, manifest=b"s2", signed=False)})
        assert (r.status_code, r.text) == (503, "insufficient capacity: too many request bytes in flight from this "
                                                "client, retry later\n")
    finally:
        held.close()


class _Origin(BaseHTTPRequestHandler):
    """/big: 25 MB at once; /trickle: 1 MB then a byte every 2 s (each read well inside httpx's 8 s)."""

    starts: list[float] = []

    def do_GET(self) -> None:  # noqa: N802
        type(self).starts.append(time.monotonic())
        try:
            size = 25_000_000 if self.path == "/big" else 1_000_000
            self.send_response(200)
            self.send_header("Content-Length", str(size + 100))
            self.end_headers()
            self.wfile.write(b"\x47" * size)
            self.wfile.flush()
            for _ in range(50 if self.path == "/trickle" else 0):
                time.sleep(2)
                self.wfile.write(b"\x47")
                self.wfile.flush()
        except OSError:
            pass

    def log_message(self, *args) -> None:  # noqa: ANN002
        pass


@pytest.fixture(scope="module")
def origin() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Origin)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _uri_segment(gateway: TestGateway, info, uri: str) -> tuple[int, str]:  # noqa: ANN001
    seg = gateway.segment_header(info, manifest=b"uri", signed=False)
    with gateway.http() as client:
        r = client.post(f"{info.transcoder}/segment", content=uri.encode(), timeout=60,
                        headers={"Livepeer-Segment": seg, "Content-Type": "application/vnd+livepeer.uri"})
    return r.status_code, r.text


async def test_a_trickled_segment_fetch_ends_at_8_s_one_fetch_per_session_at_a_time(gateway: TestGateway,
                                                                                   origin: str) -> None:
    info = await call(gateway.get_orchestrator, signed=False)  # one auth token: one session
    started = time.monotonic()
    answers = await asyncio.gather(call(_uri_segment, gateway, info, f"{origin}/trickle"),
                                   call(_uri_segment, gateway, info, f"{origin}/trickle"))
    took = time.monotonic() - started
    assert answers == [(400, "could not fetch the segment within 8 s\n")] * 2
    first, second = _Origin.starts[-2:]
    assert second - first > 7.5  # the second fetch waited for the first
    assert 15 < took < 25, took


async def test_fetched_segment_bytes_count_in_the_body_budget(gateway: TestGateway, origin: str) -> None:
    info = await call(gateway.get_orchestrator, signed=False)
    assert await call(_uri_segment, gateway, info, f"{origin}/big") == (
        503, "insufficient capacity: too many request bytes in flight from this client, retry later\n")


async def test_text_to_speech_with_empty_text_is_400(gateway: TestGateway) -> None:
    info = await call(gateway.get_orchestrator, signed=False)
    seg = gateway.segment_header(info, manifest=b"30_tts", signed=False)
    with gateway.http() as client:
        for text in ("", "   "):
            r = await call(client.post, f"{info.transcoder}/text-to-speech", json={"model_id": "tts", "text": text},
                           headers={"Livepeer-Segment": seg})
            assert (r.status_code, r.text) == (400, "invalid request: text is required\n")


async def test_refusals_before_the_body_is_read_reach_a_client_still_sending_it(gateway: TestGateway) -> None:
    """Credentials and capacity are checked before the body is read; a client still sending a small body must
    read the 503 (or 403), not a reset connection, which a gateway counts against this orchestrator."""
    import httpx

    info = await call(gateway.get_orchestrator, signed=False, caps=ai_caps(27, "nobody-serves"))
    seg = gateway.segment_header(info, manifest=b"27_nobody-serves", signed=False)
    body = {"prompt": "x" * 200_000, "model_id": "nobody-serves"}
    with gateway.http() as client:
        answers = []
        for headers in ({"Livepeer-Segment": seg}, {"Livepeer-Segment": "not base64!"}) * 10:
            try:
                r = await call(client.post, f"{info.transcoder}/text-to-image", json=body, headers=headers)
                answers.append(r.status_code)
            except httpx.HTTPError as exc:
                answers.append(type(exc).__name__)
    assert answers == [503, 403] * 10, answers
