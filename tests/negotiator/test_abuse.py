"""What a hostile client cannot do to other gateways: stall the event loop with a form, hold the body budget
with a silent or slow upload, fetch unbounded segments, spend fresh keys on chain lookups (findings of the
hostile review, each asserted as a gateway or an operator sees it)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

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
