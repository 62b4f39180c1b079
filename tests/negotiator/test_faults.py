"""Faults and bad input, offchain: a worker dies mid-job, no worker, a failing worker, oversized or unknown requests.

Each gets the status the spec names and a clear text; slots are released (the
advertised capacityInUse is back to 0) and a job that produced nothing is not billed.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from urllib.parse import urlsplit

import grpc
import pytest
from eth_utils import keccak

from baton_common.proto import lp_rpc_pb2
from baton_common.schemas.jobs import BodyRef, JobResult, Output
from baton_negotiator.tokens import AuthTokens
from tests.negotiator.gateway import TestGateway, ai_caps
from tests.negotiator.workers import TestWorker


def call(fn, *args, **kwargs):  # noqa: ANN001, ANN201
    return asyncio.to_thread(fn, *args, **kwargs)


async def post(gw: TestGateway, path: str, *, model: str = "fault-model", json: object = None,
               content: bytes | None = None, segment: str | None = None, caps: bool = True):  # noqa: ANN202
    info = await call(gw.get_orchestrator, signed=False, caps=ai_caps(27, model) if caps else None)
    seg = segment if segment is not None else gw.segment_header(info, manifest=f"27_{model}".encode(), signed=False)
    body = json if json is not None else {"prompt": "x", "model_id": model}
    with gw.http() as client:
        if content is not None:
            return await call(client.post, f"{info.transcoder}{path}", content=content,
                              headers={"Livepeer-Segment": seg, "Content-Type": "application/json"})
        return await call(client.post, f"{info.transcoder}{path}", json=body, headers={"Livepeer-Segment": seg})


async def in_use(gw: TestGateway, model: str) -> int:
    info = await call(gw.get_orchestrator, signed=False)
    models = info.capabilities.constraints.PerCapability[27].models
    return models[model].capacityInUse if model in models else -1


async def test_no_worker_is_503_insufficient_capacity(gateway: TestGateway) -> None:
    r = await post(gateway, "/text-to-image", model="nobody-serves-this")
    assert (r.status_code, r.text) == (503, "insufficient capacity\n")


async def test_a_worker_killed_mid_job_is_retried_once_on_another(gateway: TestGateway, module_nc,  # noqa: ANN001
                                                                  workers_kv) -> None:
    dying = await TestWorker(module_nc, workers_kv, "dying", models=(("text-to-image", "fault-model"),),
                             capacity=5, mode="hang").start()
    await asyncio.sleep(0.3)
    spare = None
    try:
        request = asyncio.create_task(post(gateway, "/text-to-image"))
        while not dying.jobs:
            await asyncio.sleep(0.05)
        spare = await TestWorker(module_nc, workers_kv, "spare", models=(("text-to-image", "fault-model"),)).start()
        await dying.stop(delete=False)  # killed: no goodbye, its advert just goes stale
        r = await request
        assert r.status_code == 200, r.text
        assert [j.job_id for j in dying.jobs] == [j.job_id for j in spare.jobs]  # the same job, retried
        assert await in_use(gateway, "fault-model") == 0
    finally:
        await dying.stop()
        if spare is not None:
            await spare.stop()


async def test_a_failing_worker_is_500_and_its_slot_is_released(gateway: TestGateway, module_nc,  # noqa: ANN001
                                                                workers_kv) -> None:
    failing = await TestWorker(module_nc, workers_kv, "failing", models=(("text-to-image", "bad-model"),),
                               mode="fail").start()
    await asyncio.sleep(0.3)
    try:
        r = await post(gateway, "/text-to-image", model="bad-model")
        assert (r.status_code, r.text) == (500, "the runner crashed\n")
        assert await in_use(gateway, "bad-model") == 0
    finally:
        await failing.stop()


async def test_a_busy_worker_sends_the_job_to_the_next_one(gateway: TestGateway, module_nc, workers_kv) -> None:  # noqa: ANN001
    busy = await TestWorker(module_nc, workers_kv, "busy", models=(("text-to-image", "busy-model"),),
                            capacity=9, mode="busy").start()
    free = await TestWorker(module_nc, workers_kv, "free", models=(("text-to-image", "busy-model"),),
                            capacity=1).start()
    await asyncio.sleep(0.3)
    try:
        r = await post(gateway, "/text-to-image", model="busy-model")
        assert r.status_code == 200, r.text
        assert len(busy.jobs) == 1 and len(free.jobs) == 1
    finally:
        await busy.stop()
        await free.stop()


@pytest.mark.parametrize(("body", "status", "text"), [
    (b"{not json", 400, "invalid request: the body is not JSON"),
    (b'{"model_id": "m"}', 400, "invalid request: Object missing required field `prompt`"),
    (b'{"prompt": "x", "model_id": "m", "height": -3}', 400, "invalid request: Expected `int` >= 8"),
    (b'{"prompt": "x"}', 400, "invalid request: model_id is required"),
])
async def test_bad_json_is_400_with_what_was_wrong(gateway: TestGateway, body: bytes, status: int, text: str) -> None:
    r = await post(gateway, "/text-to-image", content=body)
    assert r.status_code == status and r.text.startswith(text), r.text


async def test_an_oversized_body_is_refused(gateway: TestGateway) -> None:
    r = await post(gateway, "/text-to-image", content=b"{" + b" " * (11 * 1024 * 1024) + b"}")
    assert r.status_code == 413 and "at most" in r.text


async def test_unknown_paths_and_bad_segment_headers(gateway: TestGateway) -> None:
    r = await post(gateway, "/no-such-pipeline")
    assert r.status_code == 404
    r = await post(gateway, "/live-video-to-video")
    assert (r.status_code, r.text) == (404, "pipeline live-video-to-video is not served by this orchestrator yet\n")
    for seg in ("not base64", "AAAA", ""):
        r = await post(gateway, "/text-to-image", segment=seg)
        assert r.status_code == 403, (seg, r.text)


async def test_a_forged_auth_token_is_403(gateway: TestGateway) -> None:
    info = await call(gateway.get_orchestrator, signed=False)
    token = lp_rpc_pb2.AuthToken(token=b"\x00" * 32, session_id=info.auth_token.session_id,
                                 expiration=info.auth_token.expiration + 3600)
    seg = gateway.segment_header(info, manifest=b"27_m", signed=False, token=token)
    r = await post(gateway, "/text-to-image", segment=seg)
    assert (r.status_code, r.text) == (403, "invalid auth token\n")


def test_an_expired_auth_token_is_refused_and_ending_a_session_ignores_expiry() -> None:
    now = [time.time()]
    tokens = AuthTokens(b"k" * 32, clock=lambda: now[0])
    token = tokens.issue()
    assert tokens.check(token) == token.session_id
    now[0] += 30 * 60 + 1
    with pytest.raises(Exception, match="expired auth token"):
        tokens.check(token)
    assert tokens.check(token, expiry=False) == token.session_id


async def test_max_sessions_caps_new_transcode_sessions(gateway: TestGateway, module_nc, workers_kv) -> None:  # noqa: ANN001
    import grpc
    from eth_utils import keccak

    transcoder = await TestWorker(module_nc, workers_kv, "tc-cap", kind="transcode", models=(("transcode", ""),)).start()
    await asyncio.sleep(0.3)
    body = b"\x47" * 188
    tokens = []
    try:
        with gateway.http() as client:
            for _ in range(2):  # the fixture runs with -maxSessions 2
                info = await call(gateway.get_orchestrator, signed=False)
                seg = gateway.segment_header(info, manifest=b"s", body_hash=keccak(body), signed=False,
                                             profiles=(lp_rpc_pb2.VideoProfile(name="P", width=2, height=2),))
                r = await call(client.post, f"{info.transcoder}/segment", content=body,
                               headers={"Livepeer-Segment": seg})
                assert r.status_code == 200 and lp_rpc_pb2.TranscodeResult.FromString(r.content).data.segments
                tokens.append(info.auth_token)
        with pytest.raises(grpc.RpcError) as err:
            await call(gateway.get_orchestrator, signed=False)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert err.value.details() == "Invalid orchestrator request: OrchestratorCapped"
        await call(gateway.end_session, tokens.pop())
        assert (await call(gateway.get_orchestrator, signed=False)).auth_token.session_id
    finally:
        for token in tokens:
            await call(gateway.end_session, token)
        await transcoder.stop()


async def test_a_worker_that_stopped_listening_is_skipped_at_once(gateway: TestGateway, module_nc,  # noqa: ANN001
                                                                  workers_kv) -> None:
    ghost = await TestWorker(module_nc, workers_kv, "ghost", models=(("text-to-image", "ghost-model"),),
                             capacity=5).start()
    spare = await TestWorker(module_nc, workers_kv, "ghost-spare", models=(("text-to-image", "ghost-model"),),
                             capacity=1).start()
    await asyncio.sleep(0.3)
    try:
        await ghost._sub.unsubscribe()  # its advert stays fresh: only "no responders" tells
        r = await asyncio.wait_for(post(gateway, "/text-to-image", model="ghost-model"), 10)
        assert r.status_code == 200, r.text
        assert not ghost.jobs and len(spare.jobs) == 1
    finally:
        ghost._sub = None
        await ghost.stop()
        await spare.stop()


async def test_a_session_buffers_four_segments_behind_one_then_answers_orchestrator_busy(gateway: TestGateway, module_nc,  # noqa: ANN001
                                                                              workers_kv) -> None:
    from eth_utils import keccak

    slow = await TestWorker(module_nc, workers_kv, "tc-slow", kind="transcode", models=(("transcode", ""),),
                            capacity=10, mode="slow").start()
    await asyncio.sleep(0.3)
    info = await call(gateway.get_orchestrator, signed=False)
    body = b"\x47" * 188
    try:
        with gateway.http() as client:
            async def send(seq: int) -> lp_rpc_pb2.TranscodeResult:
                seg = gateway.segment_header(info, manifest=b"busy", seq=seq, body_hash=keccak(body), signed=False,
                                             profiles=(lp_rpc_pb2.VideoProfile(name="P", width=2, height=2),))
                r = await call(client.post, f"{info.transcoder}/segment", content=body,
                               headers={"Livepeer-Segment": seg})
                assert r.status_code == 200
                return lp_rpc_pb2.TranscodeResult.FromString(r.content)

            results = await asyncio.gather(*(send(seq) for seq in range(8)))
        errors = [r.error for r in results if r.WhichOneof("result") == "error"]
        done = [r for r in results if r.WhichOneof("result") == "data"]
        # One transcoding and four buffered at most: the others (up to three) are told OrchestratorBusy.
        assert errors and set(errors) == {"OrchestratorBusy"} and len(errors) <= 3
        assert len(done) == len(slow.jobs) == 8 - len(errors)
    finally:
        await call(gateway.end_session, info.auth_token)
        await slow.stop()


async def test_a_segment_given_by_uri_is_fetched_and_a_dead_uri_is_400(gateway: TestGateway, module_nc,  # noqa: ANN001
                                                                      workers_kv, tmp_path) -> None:
    import http.server
    import threading

    from eth_utils import keccak

    body = b"\x47" * 188 * 3
    (tmp_path / "seg.ts").write_bytes(body)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
            super().__init__(*args, directory=str(tmp_path), **kwargs)

        def log_message(self, *args) -> None:  # noqa: ANN002
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    tc = await TestWorker(module_nc, workers_kv, "tc-uri", kind="transcode", models=(("transcode", ""),)).start()
    await asyncio.sleep(0.3)
    info = await call(gateway.get_orchestrator, signed=False)
    try:
        seg = gateway.segment_header(info, manifest=b"uri", body_hash=keccak(body), signed=False,
                                     profiles=(lp_rpc_pb2.VideoProfile(name="P", width=2, height=2),))
        headers = {"Livepeer-Segment": seg, "Content-Type": "application/vnd+livepeer.uri"}
        with gateway.http() as client:
            url = f"http://127.0.0.1:{server.server_address[1]}"
            r = await call(client.post, f"{info.transcoder}/segment", content=f"{url}/seg.ts", headers=headers)
            assert r.status_code == 200
            assert lp_rpc_pb2.TranscodeResult.FromString(r.content).data.segments
            assert tc.jobs[-1].body == body
            r = await call(client.post, f"{info.transcoder}/segment", content=f"{url}/missing.ts", headers=headers)
            assert (r.status_code, r.text) == (400, "could not fetch the segment: status 404\n")
    finally:
        server.shutdown()
        await call(gateway.end_session, info.auth_token)
        await tc.stop()


def _raw_upload(gw: TestGateway, url: str, path: str, length: int, first: bytes, headers: dict[str, str]) -> ssl.SSLSocket:
    """An HTTP/1.1 POST over TLS declaring ``length`` body bytes of which only ``first`` are sent (yet)."""
    parts = urlsplit(url)
    ctx = ssl.create_default_context(cadata=gw.cert.decode())
    ctx.check_hostname = False
    tls = ctx.wrap_socket(socket.create_connection((parts.hostname, parts.port), timeout=10),
                          server_hostname=parts.hostname)
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    tls.sendall(f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Length: {length}\r\n{head}\r\n".encode()
                + first)
    return tls


async def test_credentials_are_checked_before_a_body_is_read(gateway: TestGateway) -> None:
    """A stranger's 250 MB upload is answered 403 after its first bytes: the rest is never waited for."""
    info = await call(gateway.get_orchestrator, signed=False)
    for path in ("/segment", "/text-to-image", "/image-to-image"):
        tls = await call(_raw_upload, gateway, info.transcoder, path, 250_000_000, b"\x47" * 1024, {})
        try:
            answer = await call(_read_answer, tls)  # times out (10 s) if the server waits for the whole body
        finally:
            tls.close()
        assert answer.startswith(b"HTTP/1.1 403"), (path, answer[:80])
        assert answer.endswith(b"\r\n\r\nmissing auth token\n")


def _read_answer(tls: ssl.SSLSocket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += tls.recv(4096)
    head, _, rest = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
    while len(rest) < length:
        rest += tls.recv(4096)
    return head + b"\r\n\r\n" + rest


async def test_request_bytes_in_flight_are_capped_with_503(gateway: TestGateway) -> None:
    """The offchain fixture caps bodies in flight at 30 MB: an upload held open with 15 MB sent leaves no room for a
    second of 20 MB (bytes count as they arrive)."""
    info = await call(gateway.get_orchestrator, signed=False)
    seg = gateway.segment_header(info, manifest=b"held", signed=False)
    held = await call(_raw_upload, gateway, info.transcoder, "/segment", 20_000_000, b"\x47" * 15_000_000,
                      {"Livepeer-Segment": seg})
    try:
        await asyncio.sleep(0.3)
        other = gateway.segment_header(info, manifest=b"second", signed=False)
        with gateway.http() as client:
            r = await call(client.post, f"{info.transcoder}/segment", content=b"\x47" * 20_000_000,
                           headers={"Livepeer-Segment": other})
        assert (r.status_code, r.text) == (503, "insufficient capacity: too many request bytes in flight, "
                                                 "retry later\n")
    finally:
        held.close()
    deadline = time.monotonic() + 10
    while True:  # the held upload's bytes come back once its connection is gone
        with gateway.http() as client:
            r = await call(client.post, f"{info.transcoder}/segment", content=b"\x47" * 20_000_000,
                           headers={"Livepeer-Segment": other})
        if r.status_code != 503 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert (r.status_code, r.text) == (403, "Mismatched segment hash\n")


async def test_a_pipeline_s_own_timeout_ends_a_hung_job(gateway: TestGateway, module_nc,  # noqa: ANN001
                                                                             workers_kv) -> None:
    """The offchain fixture gives text-to-speech 1.5 s (BATON_NEGOTIATOR_JOB_TIMEOUTS); other pipelines 300 s."""
    hung = await TestWorker(module_nc, workers_kv, "hung-tts", models=(("text-to-speech", "tts-model"),),
                            mode="hang").start()
    await asyncio.sleep(0.3)
    try:
        started = time.monotonic()
        r = await post(gateway, "/text-to-speech", model="tts-model", json={"model_id": "tts-model", "text": "hi"})
        assert (r.status_code, r.text) == (500, "the job did not finish within its timeout\n")
        assert 1.4 < time.monotonic() - started < 10
        # The hung worker still reports the job it holds; the gateway got its answer at 1.5 s, not 300.
        info = await call(gateway.get_orchestrator, signed=False)
        assert info.capabilities.constraints.PerCapability[36].models["tts-model"].capacityInUse == hung.in_use == 1
    finally:
        await hung.stop()


class LostRendition(TestWorker):
    async def _result(self, msg, job):  # noqa: ANN001, ANN202 - as if baton-bodies lost the rendition it stored
        ref = BodyRef(name=f"{job.job_id}/out/0", size=10)
        return JobResult(job_id=job.job_id, outputs=(Output(name="P144p", content_type="video/mp2t", ref=ref,
                                                            pixels=100),))


async def test_a_failure_after_the_early_200_is_an_error_in_the_transcode_result(
        gateway: TestGateway, module_nc, workers_kv) -> None:  # noqa: ANN001
    """/segment answers 200 before transcoding, as go-livepeer does; a failure after that must reach the gateway
    as TranscodeResult.error: an empty body reads as "UnknownResponse", which drops the orchestrator."""
    w = await LostRendition(module_nc, workers_kv, "lost-tc", kind="transcode", models=(("transcode", ""),)).start()
    await asyncio.sleep(0.3)
    try:
        info = await call(gateway.get_orchestrator, signed=False)
        body = b"\x47" * 188
        profile = lp_rpc_pb2.VideoProfile(name="P144p", width=256, height=144, bitrate=400000, fps=30)
        seg = gateway.segment_header(info, manifest=b"lost", seq=7, body_hash=keccak(body), profiles=(profile,),
                                     signed=False)
        with gateway.http() as client:
            r = await call(client.post, f"{info.transcoder}/segment", content=body, headers={"Livepeer-Segment": seg})
        assert r.status_code == 200
        result = lp_rpc_pb2.TranscodeResult.FromString(r.content)
        assert (result.WhichOneof("result"), result.seq) == ("error", 7)
        assert result.error
    finally:
        await w.stop()


async def test_segments_open_no_session_without_a_transcoder_and_sessions_never_cap_ai_gateways(
        gateway: TestGateway, module_nc, workers_kv) -> None:  # noqa: ANN001
    """A segment that no transcoder can take opens no session (503 insufficient capacity); and -maxSessions
    (2 here), full of transcoding sessions, refuses new transcoding gateways but never an AI gateway."""
    body = b"\x47" * 188
    profile = lp_rpc_pb2.VideoProfile(name="P144p", width=256, height=144, bitrate=400000, fps=30)

    async def segment(n: int) -> tuple[lp_rpc_pb2.OrchestratorInfo, object]:
        info = await call(gateway.get_orchestrator, signed=False)
        seg = gateway.segment_header(info, manifest=f"cap{n}".encode(), seq=1, body_hash=keccak(body),
                                     profiles=(profile,), signed=False)
        with gateway.http() as client:
            return info, await call(client.post, f"{info.transcoder}/segment", content=body,
                                    headers={"Livepeer-Segment": seg})

    for n in range(3):  # more than -maxSessions: none of them opened one
        _, r = await segment(n)
        assert (r.status_code, r.text) == (503, "insufficient capacity: no transcoder\n")
    w = await LostRendition(module_nc, workers_kv, "cap-tc", kind="transcode", models=(("transcode", ""),)).start()
    await asyncio.sleep(0.3)
    opened = []
    try:
        with pytest.raises(grpc.RpcError) as refused:
            for n in range(3):  # earlier tests of this module may hold sessions still: fill what is left
                info, r = await segment(10 + n)
                assert r.status_code == 200
                opened.append(info.auth_token)
        assert "OrchestratorCapped" in refused.value.details() and opened
        assert (await call(gateway.get_orchestrator, signed=False, caps=ai_caps(27, "any-model"))).transcoder
    finally:
        for token in opened:
            await call(gateway.end_session, token)
        await w.stop()


async def test_a_stream_read_from_the_store_counts_in_the_body_budget(gateway: TestGateway, module_nc) -> None:  # noqa: ANN001
    """/stream reads a result whole into memory when it is not among the last ones kept: that read is counted
    like an upload (30 MB here), so GETs of large results cannot run the process out of memory."""
    from baton_common.schemas.jobs import BODIES

    store = await module_nc.jetstream().object_store(BODIES.bucket)
    await store.put("stream/budget-test/P720p/1.ts", b"\0" * 31_000_000)
    await store.put("stream/budget-test/P144p/1.ts", b"\1" * 1000)
    info = await call(gateway.get_orchestrator, signed=False)
    with gateway.http() as client:
        big = await call(client.get, f"{info.transcoder}/stream/budget-test/P720p/1.ts")
        small = await call(client.get, f"{info.transcoder}/stream/budget-test/P144p/1.ts")
    assert big.status_code == 503 and "insufficient capacity" in big.text
    assert (small.status_code, small.content) == (200, b"\1" * 1000)
