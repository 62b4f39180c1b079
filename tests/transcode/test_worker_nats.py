"""End to end over a real nats-server: a test client stands in for the negotiator.

It reads the worker's advert in ``baton-workers``, puts a segment in
``baton-bodies``, sends the JobRequest to the worker's own subject, fetches the
large renditions from the object store and re-counts every rendition's pixels
with ffprobe, as a gateway does.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from pathlib import Path

import httpx
import msgspec
import nats
import nats.js.errors
import pytest

from baton_common.runtime import Runtime
from baton_common.schemas import decode, encode
from baton_common.schemas.jobs import BODIES_BUCKET, INLINE_BODY_MAX, BodyRef, JobError, JobReply, JobRequest, JobResult
from baton_common.schemas.transcode import TranscodeParams, VideoProfile
from baton_common.schemas.workers import WORKERS_BUCKET, WorkerAdvert, advert_key
from baton_transcode.__main__ import Transcode
from baton_transcode.config import TranscodeSettings
from tests.helpers import free_port
from tests.transcode.segments import make_segment, probe

LADDER = [
    VideoProfile(name="P360p", width=640, height=360, bitrate=12_000_000, fps=30, gop=1000),  # > 512 KiB: object store
    VideoProfile(name="P144p", width=256, height=144, bitrate=200_000, fps=15, gop=1000, format=1),  # inline
]


def request(job_id: str, *, body: bytes = b"", ref: BodyRef | None = None, profiles: list[VideoProfile] = LADDER) -> bytes:
    params = msgspec.to_builtins(TranscodeParams(profiles=tuple(profiles), seq=7, duration_ms=1000))
    return encode(JobRequest(job_id=job_id, kind="transcode", pipeline="transcode", deadline=time.time() + 60,
                             params=params, body=body, body_ref=ref))


async def ask(nc: nats.NATS, subject: str, data: bytes) -> JobResult | JobError:
    reply = decode((await nc.request(subject, data, timeout=30)).data, JobReply)
    assert isinstance(reply, JobResult | JobError), reply
    return reply


async def advert(nc: nats.NATS, worker_id: str) -> WorkerAdvert | None:
    try:
        kv = await nc.jetstream().key_value(WORKERS_BUCKET)
        entry = await kv.get(advert_key("transcode", worker_id))
    except (nats.js.errors.BucketNotFoundError, nats.js.errors.KeyNotFoundError):
        return None  # not bound yet, or withdrawn
    return decode(entry.value, WorkerAdvert) if entry.value else None


async def eventually(check, timeout: float = 10.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := await check():
            return found
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


@pytest.fixture(scope="module")
def segment(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return make_segment(tmp_path_factory.mktemp("seg") / "seg.ts", size="640x360", seconds=1.0)


async def test_a_segment_through_the_bus_comes_back_as_exact_renditions(
    nats_url: str, prefix: str, segment: bytes, tmp_path: Path,
) -> None:
    port = free_port()
    settings = TranscodeSettings(nats_url=nats_url, http_host="127.0.0.1", http_port=port, instance_id=prefix,
                                 concurrency=1, x264_preset="ultrafast")
    rt = Runtime(Transcode(settings), settings)
    task = asyncio.create_task(rt.run(handle_signals=False))
    nc = await nats.connect(nats_url)
    try:
        ad = await eventually(lambda: advert(nc, prefix))
        assert (ad.kind, ad.job_subject) == ("transcode", f"baton.jobs.transcode.{prefix}")
        (model,) = ad.models
        assert (model.pipeline, model.model_id, model.warm, model.capacity, model.in_use) == ("transcode", "", True, 1, 0)
        assert ad.hardware.encoders == () and ad.hardware.gpus == ()  # a CPU worker advertises no hardware

        # the segment goes through the object store, as the negotiator sends one above 512 KiB
        store = await nc.jetstream().object_store(BODIES_BUCKET)
        name = f"{prefix}/in"
        await store.put(name, segment)
        ref = BodyRef(name=name, size=len(segment), content_type="video/mp2t", sha256=hashlib.sha256(segment).hexdigest())
        result = await ask(nc, ad.job_subject, request(prefix, ref=ref))
        assert isinstance(result, JobResult), result
        assert [o.name for o in result.outputs] == ["P360p", "P144p"]
        big, small = result.outputs
        assert big.ref is not None and big.ref.name == f"{prefix}/out/0" and big.ref.size > INLINE_BODY_MAX and not big.data
        assert small.ref is None and small.data and small.content_type == "video/mp4"
        fetched = (await store.get(big.ref.name)).data
        assert hashlib.sha256(fetched).hexdigest() == big.ref.sha256
        p360, p144 = probe(fetched, tmp_path, "a.ts"), probe(small.data, tmp_path, "b.mp4")
        assert (p360.width, p360.height, p360.frames) == (640, 360, 30)
        assert (p144.width, p144.height, p144.frames, p144.fps) == (256, 144, 15, "15/1")
        assert (big.pixels, small.pixels) == (p360.pixels, p144.pixels)
        assert result.units == p360.pixels + p144.pixels

        # a job in flight shows in the advert at once, and its end too
        running = asyncio.create_task(ask(nc, ad.job_subject, request(f"{prefix}-live", body=segment)))

        async def in_use(n: int) -> bool:
            found = await advert(nc, prefix)
            return found is not None and found.models[0].in_use == n

        await eventually(lambda: in_use(1))
        assert isinstance(await running, JobResult)
        await eventually(lambda: in_use(0), timeout=1.0)  # well before the next 2 s put

        # one slot: of two segments at once, one is refused as busy (retryable) and the other transcoded
        small_ladder = [VideoProfile(name="s", width=128, height=72, bitrate=100_000)]
        both = await asyncio.gather(*(ask(nc, ad.job_subject, request(f"{prefix}-{i}", body=segment,
                                                                      profiles=small_ladder)) for i in range(2)))
        assert sorted(type(r).__name__ for r in both) == ["JobError", "JobResult"], both
        busy = next(r for r in both if isinstance(r, JobError))
        assert busy.code == "busy" and busy.retryable

        # a corrupt segment is bad input, and the worker keeps serving
        bad = await ask(nc, ad.job_subject, request(f"{prefix}-bad", body=b"\x47" * 5000, profiles=small_ladder))
        assert isinstance(bad, JobError) and bad.code == "bad_input" and not bad.retryable
        again = await ask(nc, ad.job_subject, request(f"{prefix}-again", body=segment, profiles=small_ladder))
        assert isinstance(again, JobResult) and again.units == 30 * 128 * 72

        async with httpx.AsyncClient() as http:  # the server runs on this loop
            metrics = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
        for line in ("livepeer_segment_transcoded_total ", "livepeer_mil_pixels_processed ",
                     'livepeer_segment_transcode_failed_total{error_code="busy"}',
                     'livepeer_segment_transcode_failed_total{error_code="bad_input"}',
                     "livepeer_transcode_time_seconds_count", "livepeer_transcode_score_count",
                     'baton_transcode_realtime_factor_count{rendition="360p"}'):
            assert line in metrics, line
    finally:
        rt.request_stop()
        assert await asyncio.wait_for(task, 30) == 0
    try:
        assert await advert(nc, prefix) is None  # withdrawn explicitly, not left to the TTL
    finally:
        await nc.close()
