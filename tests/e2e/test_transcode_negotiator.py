"""Issue 11 end to end: a go-livepeer-shaped paid /segment through a real negotiator to a real transcode worker.

The test gateway (tests/negotiator/gateway.py) sends an ffmpeg lavfi segment
with its profiles in SegData.fullProfiles3 and a ticket; the real worker runs
ffmpeg. The test downloads each rendition from /stream/..., re-counts it with
ffprobe as a gateway does, and checks TranscodeData.sig: the orchestrator's
personal-sign over keccak256 of the concatenated keccak256 of each rendition
(livepeer-wire.md §3.1), then the debit of price × the pixels.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
from collections.abc import AsyncIterator, Iterator
from fractions import Fraction
from pathlib import Path

import httpx
import nats
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import keccak

from baton_common.pm import Balances
from baton_common.pm_nats import KvBalanceStore
from baton_common.proto import lp_rpc_pb2
from baton_common.schemas.payments import BALANCES
from tests.e2e.conftest import ServiceProc, start_transcode
from tests.helpers import PrivateNats
from tests.negotiator.conftest import RunningNegotiator, start_negotiator
from tests.negotiator.fake_chain import FakeChain
from tests.negotiator.gateway import TestGateway
from tests.transcode.segments import make_segment, probe

ORCH = Account.create()
PRICE, ADJUSTED = 1000, 1010  # wei per pixel, and after -autoAdjustPrice (overhead 1/100)
PROFILES = (
    lp_rpc_pb2.VideoProfile(name="P144p30fps16x9", width=256, height=144, bitrate=300_000, fps=30, gop=1000),
    lp_rpc_pb2.VideoProfile(name="P240p15fps16x9", width=426, height=240, bitrate=500_000, fps=15,
                            format=lp_rpc_pb2.VideoProfile.MP4),
)


@pytest.fixture(scope="module")
async def chain(e2e_nats: PrivateNats) -> AsyncIterator[FakeChain]:
    nc = await nats.connect(e2e_nats.url)
    fake = await FakeChain(nc, ORCH.address).start()
    yield fake
    await fake.stop()
    await nc.close()


@pytest.fixture(scope="module")
def negotiator(e2e_nats: PrivateNats, chain: FakeChain,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNegotiator]:
    folder = tmp_path_factory.mktemp("onchain")
    (folder / "secret").write_text("44" * 32)
    keystore = folder / "keystore.json"
    keystore.write_text(json.dumps(Account.encrypt(ORCH.key, "pw", kdf="scrypt", iterations=2**10)))
    running = start_negotiator(e2e_nats.url, folder / "state", BATON_NETWORK="arbitrum-one-mainnet",
                               BATON_NEGOTIATOR_TICKET_SECRET_FILE=str(folder / "secret"),
                               BATON_NEGOTIATOR_ETH_KEYSTORE_PATH=str(keystore), BATON_NEGOTIATOR_ETH_PASSWORD="pw",
                               BATON_NEGOTIATOR_PRICE_PER_UNIT=str(PRICE))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def worker(e2e_nats: PrivateNats, negotiator: RunningNegotiator,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProc]:
    running = start_transcode(e2e_nats, tmp_path_factory.mktemp("transcode"), "e2e-ffmpeg")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def segment(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return make_segment(tmp_path_factory.mktemp("seg") / "in.ts", size="320x180", seconds=1.0)


@pytest.fixture
def gw(negotiator: RunningNegotiator) -> Iterator[TestGateway]:
    """A gateway with a key of its own: every test pays into sessions nobody else uses."""
    gateway = TestGateway("127.0.0.1", negotiator.grpc_port)
    yield gateway
    gateway.close()


@pytest.fixture
async def balances(e2e_nats: PrivateNats, negotiator: RunningNegotiator) -> AsyncIterator[Balances]:
    """The balances the negotiator keeps in baton-pm-balances, read as the payment core reads them."""
    nc = await nats.connect(e2e_nats.url)
    yield Balances(KvBalanceStore(await nc.jetstream().key_value(BALANCES.bucket)))
    await nc.close()


def call(fn, *args, **kwargs):  # noqa: ANN001, ANN201
    return asyncio.to_thread(fn, *args, **kwargs)


def ev(info: lp_rpc_pb2.OrchestratorInfo) -> Fraction:
    params = info.ticket_params
    return Fraction(int.from_bytes(params.face_value, "big") * int.from_bytes(params.win_prob, "big"), 2**256 - 1)


async def post_segment(client: httpx.Client, gw: TestGateway, info: lp_rpc_pb2.OrchestratorInfo, body: bytes,
                       seg: str) -> httpx.Response:
    """A paid ``/segment`` POST as a gateway sends it: a fresh ticket, the SegData header, the MPEG-TS body."""
    return await call(client.post, f"{info.transcoder}/segment", content=body,
                      headers={"Livepeer-Payment": gw.payment_header(info), "Livepeer-Segment": seg,
                               "Content-Type": "video/MP2T"})


async def wait_transcode_capacity(gw: TestGateway, timeout: float = 10) -> lp_rpc_pb2.OrchestratorInfo:
    """GetOrchestrator, once the worker's advert is in: capability H264 advertised with capacity."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        info = await call(gw.get_orchestrator)
        if info.capabilities.capacities.get(0, 0) > 0 or asyncio.get_running_loop().time() > deadline:
            return info
        await asyncio.sleep(0.1)


async def test_a_paid_segment_comes_back_as_renditions_a_gateway_recounts_and_verifies(
        worker: ServiceProc, segment: bytes, gw: TestGateway, balances: Balances, tmp_path: Path) -> None:
    info = await wait_transcode_capacity(gw)
    assert (info.price_info.pricePerUnit, info.price_info.pixelsPerUnit) == (ADJUSTED, 1)
    seg = gw.segment_header(info, manifest=b"e2e-live", seq=5, body_hash=keccak(segment), profiles=PROFILES)
    with gw.http() as client:
        r = await post_segment(client, gw, info, segment, seg)
        assert r.status_code == 200, r.text
        result = lp_rpc_pb2.TranscodeResult.FromString(r.content)
        assert result.WhichOneof("result") == "data", (result.error, worker.log.read_text()[-2000:])
        assert result.seq == 5
        session = info.auth_token.session_id
        urls = [s.url for s in result.data.segments]
        assert urls == [f"{info.transcoder}/stream/{session}/P144p30fps16x9/5.ts",
                        f"{info.transcoder}/stream/{session}/P240p15fps16x9/5.mp4"]
        renditions = []
        for url in urls:
            got = await call(client.get, url)
            assert got.status_code == 200, url
            renditions.append(got.content)
    p144, p240 = probe(renditions[0], tmp_path, "a.ts"), probe(renditions[1], tmp_path, "b.mp4")
    assert (p144.codec, p144.width, p144.height, p144.frames, p144.fps) == ("h264", 256, 144, 30, "30/1")
    assert (p240.codec, p240.width, p240.height, p240.frames, p240.fps) == ("h264", 426, 240, 15, "15/1")
    assert [s.pixels for s in result.data.segments] == [p144.pixels, p240.pixels]  # exact, as gateways require

    digest = keccak(b"".join(keccak(r) for r in renditions))
    assert Account.recover_message(encode_defunct(primitive=digest), signature=result.data.sig) == ORCH.address

    assert await balances.balance(gw.address, session) == ev(info) - ADJUSTED * (p144.pixels + p240.pixels)


async def test_hostile_segments_get_go_livepeers_texts_cost_nothing_and_a_portrait_source_keeps_its_aspect(
        worker: ServiceProc, gw: TestGateway, balances: Balances, tmp_path: Path) -> None:
    """An audio-only segment: lpms's exact `TranscoderInvalidVideo` (gateways do not retry it), nothing debited.
    A profile the container cannot carry: named in the error. Then a portrait segment, scaled as go-livepeer does
    (the box's height, the width from the aspect ratio), and its pixels re-counted exactly."""
    audio = tmp_path / "audio.ts"
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "sine=duration=1",
                    "-c:a", "aac", "-f", "mpegts", "-y", str(audio)], check=True, timeout=60)
    portrait = make_segment(tmp_path / "portrait.ts", size="180x320", seconds=1.0)
    vp8_in_ts = lp_rpc_pb2.VideoProfile(name="webm_in_ts", width=256, height=144, bitrate=300_000,
                                        encoder=lp_rpc_pb2.VideoProfile.VP8)
    info = await wait_transcode_capacity(gw)
    session = info.auth_token.session_id
    with gw.http() as client:

        async def post(body: bytes, seq: int, profiles: tuple[lp_rpc_pb2.VideoProfile, ...]) -> lp_rpc_pb2.TranscodeResult:
            seg = gw.segment_header(info, manifest=b"e2e-hostile", seq=seq, body_hash=keccak(body), profiles=profiles)
            r = await post_segment(client, gw, info, body, seg)
            assert r.status_code == 200, r.text
            return lp_rpc_pb2.TranscodeResult.FromString(r.content)

        before = await balances.balance(gw.address, session) or 0  # None: a session with no balance yet
        result = await post(audio.read_bytes(), 1, PROFILES)
        assert (result.WhichOneof("result"), result.error) == ("error", "TranscoderInvalidVideo")
        after = await balances.balance(gw.address, session)
        assert after - before == ev(info)  # the ticket is credited, nothing is debited

        result = await post(portrait, 2, (*PROFILES, vp8_in_ts))
        assert result.WhichOneof("result") == "error"
        assert result.error.startswith("profile 'webm_in_ts': VP8 cannot be carried in MPEG-TS"), result.error

        result = await post(portrait, 3, PROFILES)
        assert result.WhichOneof("result") == "data", (result.error, worker.log.read_text()[-2000:])
        renditions = [(await call(client.get, s.url)).content for s in result.data.segments]
    probes = [probe(r, tmp_path, f"p{i}") for i, r in enumerate(renditions)]
    assert [(p.width, p.height, p.frames) for p in probes] == [(82, 144, 30), (136, 240, 15)]
    assert [s.pixels for s in result.data.segments] == [p.pixels for p in probes]
    assert await balances.balance(gw.address, session) == (
        after + 2 * ev(info) - ADJUSTED * sum(p.pixels for p in probes))


async def test_a_segment_that_declares_no_duration_is_held_to_the_two_seconds_it_reserved(
        worker: ServiceProc, gw: TestGateway, balances: Balances, tmp_path: Path) -> None:
    """SegData.duration 0 reserves a 2 s segment's pixels: 6 s of video under it is refused as lpms refuses a
    segment with too many frames, and nothing is debited (it once ran whole and was billed past the balance)."""
    long = make_segment(tmp_path / "long.ts", size="320x180", seconds=6.0)
    info = await wait_transcode_capacity(gw)
    session = info.auth_token.session_id
    seg = gw.segment_header(info, manifest=b"e2e-no-duration", seq=1, body_hash=keccak(long), profiles=PROFILES)
    assert lp_rpc_pb2.SegData.FromString(base64.b64decode(seg)).duration == 0
    with gw.http() as client:
        r = await post_segment(client, gw, info, long, seg)
    assert r.status_code == 200, r.text
    result = lp_rpc_pb2.TranscodeResult.FromString(r.content)
    assert (result.WhichOneof("result"), result.error) == ("error", "Output frame count larger than expected")
    assert await balances.balance(gw.address, session) == ev(info)  # the ticket credited, nothing debited


async def test_a_segdata_with_an_unknown_profile_format_is_refused_403_before_payment_as_go_livepeer(
        worker: ServiceProc, segment: bytes, gw: TestGateway, balances: Balances) -> None:
    bad = lp_rpc_pb2.VideoProfile(name="P144p", width=256, height=144, bitrate=300_000)
    bad.format = 7  # an enum value go-livepeer's makeFfmpegVideoProfiles refuses (errFormat)
    info = await wait_transcode_capacity(gw)
    seg = gw.segment_header(info, manifest=b"e2e-badprofile", seq=1, body_hash=keccak(segment), profiles=(bad,))
    with gw.http() as client:
        r = await post_segment(client, gw, info, segment, seg)
    assert (r.status_code, r.text) == (403, "unknown VideoProfile format for protobufs\n")
    # Refused before the payment: its ticket credited nothing.
    assert await balances.balance(gw.address, info.auth_token.session_id) is None
