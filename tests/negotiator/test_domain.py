"""The negotiator's pure logic: worker slots, capabilities, compatibility, prices, image sizes."""

from __future__ import annotations

import io
import struct
import time
import zlib
from fractions import Fraction

import msgspec
import pytest
from PIL import Image

from baton_common.proto import lp_rpc_pb2
from baton_common.schemas.pricing import CapabilityPrice, GatewayPrice, PriceTable, WeiPrice
from baton_common.schemas.workers import ModelState, WorkerAdvert
from baton_negotiator.domain import WorkerPool, auto_adjust, capabilities_for, compatible, price_for_pairs
from baton_negotiator.errors import BadInput, BodyTooLarge
from baton_negotiator.media import image_size


def advert(worker: str, capacity: int = 2, in_use: int = 0, at: float | None = None, warm: bool = True) -> WorkerAdvert:
    return WorkerAdvert(worker_id=worker, kind="inference", job_subject=f"baton.jobs.inference.{worker}",
                        at=time.time() if at is None else at,
                        models=(ModelState(pipeline="text-to-image", model_id="m", warm=warm, capacity=capacity,
                                           in_use=in_use),))


def test_slots_go_to_the_freest_fresh_worker_and_come_back() -> None:
    pool = WorkerPool()
    pool.put("inference.a", advert("a", capacity=2))
    pool.put("inference.b", advert("b", capacity=3, in_use=1))
    pool.put("inference.old", advert("old", capacity=9, at=time.time() - 60))
    pool.put("inference.cold", advert("cold", capacity=9, warm=False))
    # In use on b is the larger of its advert's count (1) and the slots held here: b takes 3 of ours, a 2.
    slots = [pool.reserve("inference", "text-to-image", "m") for _ in range(5)]
    assert sorted(s.worker_id for s in slots if s) == ["a", "a", "b", "b", "b"]
    assert pool.reserve("inference", "text-to-image", "m") is None
    for slot in slots:
        slot.release()
        slot.release()  # idempotent
    assert pool.held == 0
    (model,) = pool.models()
    assert (model.capacity, model.in_use) == (5, 1)


def test_capabilities_always_carry_the_default_bits() -> None:
    caps = capabilities_for([])
    assert caps.bitstring == [sum(1 << c for c in (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 26))]
    assert caps.version == "0.9.1" and not caps.mandatories


def test_compatibility_checks_version_bits_and_models() -> None:
    pool = WorkerPool()
    pool.put("inference.a", advert("a"))
    ours = capabilities_for(pool.models())
    theirs = lp_rpc_pb2.Capabilities(bitstring=[1 << 27])
    theirs.constraints.PerCapability[27].models["m"].warm = True
    assert compatible(ours, theirs) == ""
    theirs.constraints.minVersion = "0.10.0"
    assert "below the gateway's minimum" in compatible(ours, theirs)
    theirs.constraints.minVersion = "0.9.1-rc1"
    assert compatible(ours, theirs) == ""
    theirs.bitstring[0] |= 1 << 30
    assert compatible(ours, theirs) == "capabilities not supported"
    other = lp_rpc_pb2.Capabilities(bitstring=[1 << 27])
    other.constraints.PerCapability[27].models["other"].warm = True
    assert compatible(ours, other) == "model other is not served"
    assert compatible(ours, other, models=False) == ""


def test_auto_adjust_truncates_to_thousandths() -> None:
    assert auto_adjust(Fraction(1000), Fraction(100)) == 1010
    assert auto_adjust(Fraction(1, 3), Fraction(7)) == Fraction(380, 1000)  # trunc(0.38095 x 1000) / 1000
    assert auto_adjust(Fraction(5), Fraction(0)) == 5


def test_prices_sum_the_pairs_fall_back_to_base_and_clamp() -> None:
    gw = "0x" + "ab" * 20
    table = PriceTable(base=WeiPrice(num=100), at=time.time(),
                       gateways={gw: GatewayPrice(price=WeiPrice(num=80), floor=WeiPrice(num=50),
                                                  ceiling=WeiPrice(num=90))},
                       capabilities=(CapabilityPrice(capability=27, model_id="m", price=WeiPrice(num=7)),
                                     CapabilityPrice(capability=33, model_id="l", price=WeiPrice(num=3))))
    assert price_for_pairs(table, gw, [(27, "m"), (33, "l")]) == 10
    assert price_for_pairs(table, gw, []) == 80
    assert price_for_pairs(table, "default", [(99, "x")]) == 100
    assert table.clamp(Fraction(10), gw) == 50 and table.clamp(Fraction(95), gw) == 90


def _image(size: tuple[int, int], fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (1, 2, 3)).save(buf, fmt)
    return buf.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def test_image_sizes_of_png_jpeg_and_webp() -> None:
    assert image_size(_image((640, 480), "PNG")) == (640, 480)
    assert image_size(_image((1280, 720), "JPEG")) == (1280, 720)
    assert image_size(_image((100, 50), "WEBP")) == (100, 50)
    for bad in (b"GIF89a....", _image((4, 4), "GIF"), b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, b"\xff\xd8\xff"):
        with pytest.raises(BadInput):
            image_size(bad)


def test_image_size_is_not_fooled_by_crafted_headers_and_is_capped() -> None:
    png = _image((2048, 2048), "PNG")
    # A chunk before IHDR whose bytes 16..24 read as 1x1 to a hand parser.
    assert image_size(png[:8] + _png_chunk(b"tEXt", struct.pack(">II", 1, 1) + b"k\0v") + png[8:]) == (2048, 2048)
    jpeg = _image((2048, 1024), "JPEG")
    # Fill bytes and an APP1 segment hiding a fake SOF0 in front of the real one.
    fake_sof = b"\xff\xc0\x00\x11\x08" + struct.pack(">HH", 1, 1) + b"\x03" + b"\x00" * 9
    app1 = b"\xff\xe1" + struct.pack(">H", 2 + len(fake_sof)) + fake_sof
    assert image_size(jpeg[:2] + b"\xff\xff\xff" + app1 + jpeg[2:]) == (2048, 1024)
    with pytest.raises(BodyTooLarge):
        image_size(png[:8] + _png_chunk(b"IHDR", struct.pack(">II", 8193, 8192) + png[24:29]) + png[33:])


def test_the_price_table_is_refused_when_missing_or_stale() -> None:
    from baton_negotiator.state import PricesUnavailable, TablePrices

    class Mirror:
        values: dict[str, PriceTable] = {}

    now = [1000.0]
    prices = TablePrices(Mirror(), clock=lambda: now[0])  # type: ignore[arg-type]
    with pytest.raises(PricesUnavailable, match="no price table"):
        prices.table()
    Mirror.values["table"] = PriceTable(base=WeiPrice(num=5), at=1000.0)
    assert prices.table().base.num == 5
    now[0] += 181
    with pytest.raises(PricesUnavailable, match="181 s old"):
        prices.table()


def test_transcode_sessions_expire_after_70_s_idle_and_cap_new_ones() -> None:
    from baton_negotiator.errors import Capped
    from baton_negotiator.sessions import Sessions

    now = [0.0]
    sessions = Sessions(lambda: 1, clock=lambda: now[0])
    sessions.open("a")
    with pytest.raises(Capped):
        sessions.open("b")
    now[0] += 69
    sessions.open("a")  # used again: idle time starts over
    now[0] += 70.5
    assert len(sessions) == 0
    sessions.open("b")


async def test_ai_quotes_are_held_within_each_capability_s_own_bounds_not_the_transcoding_ones() -> None:
    from baton_negotiator.orchestrator import Orchestrator
    from baton_negotiator.payments import OffchainPayments

    table = PriceTable(base=WeiPrice(num=1000), auto_adjust=False, at=time.time(),
                       gateways={"default": GatewayPrice(floor=WeiPrice(num=500), ceiling=WeiPrice(num=1200))},
                       capabilities=(CapabilityPrice(capability=27, model_id="sdxl", price=WeiPrice(num=5_000_000),
                                                     floor=WeiPrice(num=4_000_000)),
                                     CapabilityPrice(capability=33, model_id="llm", price=WeiPrice(num=10)),
                                     CapabilityPrice(capability=33, model_id="floor", price=WeiPrice(num=10),
                                                     floor=WeiPrice(num=70))))
    orch = Orchestrator(pool=WorkerPool(), prices=lambda: table, payments=OffchainPayments(), tokens=None,  # type: ignore[arg-type]
                        address=b"", eth_key=None, transcoder_uri="", max_sessions=lambda: 1, open_sessions=lambda: 0)
    sender = b"\x11" * 20
    assert await orch.price(sender, [(27, "sdxl")]) == 5_000_000  # not the transcoding ceiling 1200
    assert await orch.price(sender, [(33, "llm")]) == 10  # not the transcoding floor 500
    assert await orch.price(sender, [(33, "floor")]) == 70  # its own floor
    assert await orch.price(sender, [(27, "sdxl"), (33, "floor")]) == 5_000_070  # each clamped, then summed
    assert await orch.price(sender, []) == 1000  # transcoding: the gateway bounds


def test_billed_units_follow_the_spec_with_the_openapi_defaults() -> None:
    from baton_common.schemas import ai
    from baton_negotiator.billing import AUDIO_MIN_UNITS, billed_units, job_params

    t2i = msgspec.json.decode(b'{"prompt": "x", "model_id": "m"}', type=ai.TextToImageParams)
    assert billed_units("text-to-image", t2i) == 576 * 1024
    llm = msgspec.json.decode(b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}', type=ai.LLMParams)
    assert billed_units("llm", llm) == 256  # no max_tokens: runs and bills 256
    assert job_params(llm)["max_tokens"] == 256 and job_params(llm)["messages"] == [{"role": "user", "content": "hi"}]
    assert billed_units("image-to-video", ai.params("image-to-video", {"model_id": "m"})) == 576 * 1024 * 25
    assert billed_units("image-to-image", ai.params("image-to-image", {"prompt": "x", "num_images_per_prompt": "2"}),
                        640, 480) == 640 * 480 * 2
    assert billed_units("text-to-speech", ai.TextToSpeechParams(text="héllo")) == 5000
    assert billed_units("audio-to-text", ai.AudioToTextParams()) == AUDIO_MIN_UNITS == 1000
    assert billed_units("audio-to-text", ai.AudioToTextParams(), audio_ms=2999) == 2000  # whole seconds, down (go-livepeer)


def test_a_segment_is_estimated_as_go_livepeer_gateways_pay_for_it() -> None:
    from baton_negotiator.billing import segment_estimate

    seg = lp_rpc_pb2.SegData(duration=2001)  # 3 whole seconds, rounded up
    seg.fullProfiles3.add(width=1280, height=720, fps=30000, fpsDen=1001)  # 29.97: 30
    seg.fullProfiles3.add(width=640, height=360)  # no frame rate: 60
    assert segment_estimate(seg) == 1280 * 720 * 30 * 3 + 640 * 360 * 60 * 3
    assert segment_estimate(lp_rpc_pb2.SegData()) == 0
    # The gateway's duration is floored at go-livepeer's 2 s segment: duration 0 does not make pixels free.
    seg = lp_rpc_pb2.SegData(duration=0)
    seg.fullProfiles3.add(width=8192, height=8192, fps=30)
    assert segment_estimate(seg) == 8192 * 8192 * 30 * 2


def test_sender_labels_are_bounded_and_sessions_bind_for_the_token_s_life() -> None:
    from baton_negotiator.metrics import SenderLabels
    from baton_negotiator.payments import SessionBindings

    labels = SenderLabels(limit=2)
    assert [labels.label(a) for a in ("0xA", "0xB", "0xC", "0xA", "unknown")] == ["0xA", "0xB", "other", "0xA",
                                                                                   "unknown"]
    now = [0.0]
    bindings = SessionBindings(ttl=10, max_entries=2, clock=lambda: now[0])
    bindings.bind("s1", b"a" * 20)
    assert bindings.sender_of("s1") == b"a" * 20 and bindings.sender_of("s2") is None
    now[0] = 11
    assert bindings.sender_of("s1") is None
    for sid in ("s2", "s3", "s4"):
        bindings.bind(sid, b"b" * 20)
    assert bindings.sender_of("s2") is None and bindings.sender_of("s4") == b"b" * 20


def test_ending_a_session_with_segments_in_flight_keeps_it_until_they_finish() -> None:
    import pytest

    from baton_negotiator.errors import Capped
    from baton_negotiator.sessions import Sessions

    sessions = Sessions(lambda: 1, clock=lambda: 0.0)
    busy = sessions.open("s1")
    busy.queued = 5  # one transcoding, four waiting: the buffer is full
    sessions.end("s1")
    assert len(sessions) == 1  # still counted toward -maxSessions
    with pytest.raises(Capped):
        sessions.check("s2")
    assert sessions.open("s1") is busy  # a resend joins the same full buffer, not a fresh one
    sessions.end("s1")
    busy.queued = 0  # its segments are done: the end takes effect
    assert len(sessions) == 0
    sessions.end("never-opened")
    assert len(sessions) == 0


async def test_audio_duration_is_read_by_ffprobe_and_a_playlist_is_refused() -> None:
    import pytest

    from baton_negotiator.errors import BadInput
    from baton_negotiator.media import AudioDuration, audio_duration
    from tests.negotiator.test_paid import wav

    assert await audio_duration(wav(2.5, rate=100)) == AudioDuration(2500, estimated=False)
    for n, hostile in enumerate((b"#EXTM3U\n#EXTINF:9999,\nhttp://127.0.0.1:9/x.ts\n",
                                 b"ffconcat version 1.0\nfile /etc/hostname\n", b"RIFF" + b"\0" * 400)):
        with pytest.raises(BadInput, match="Unable to calculate duration"):
            await audio_duration(hostile, f"0xpayer{n}")


async def test_an_mp3s_duration_is_an_estimate_and_a_payer_of_unreadable_files_is_stopped() -> None:
    """MP3 carries no duration (ffprobe estimates it from the bitrate): it may decode longer. A payer whose
    uploads ffprobe cannot read gets 5, then one per 12 s: it is refused before the probe, and others are not."""
    import subprocess

    import pytest

    from baton_negotiator.errors import BadInput, InsufficientCapacity
    from baton_negotiator.media import audio_duration
    from tests.negotiator.test_paid import wav

    mp3 = subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono",
                          "-t", "2", "-b:a", "8k", "-f", "mp3", "pipe:1"], capture_output=True, check=True).stdout
    assert (await audio_duration(mp3)).estimated
    for _ in range(5):
        with pytest.raises(BadInput, match="Unable to calculate duration"):
            await audio_duration(b"RIFF" + b"\0" * 400, "0xbogus")
    with pytest.raises(InsufficientCapacity, match="too many unreadable audio files from this sender"):
        await audio_duration(wav(1.0, rate=100), "0xbogus")  # even a good one: refused before the probe
    assert (await audio_duration(wav(1.0, rate=100), "0xhonest")).ms == 1000


async def test_one_payers_uploads_take_turns_and_cannot_hold_every_ffprobe_slot() -> None:
    """A payer holds at most 2 of the 4 ffprobe slots: its flood waits its turn (none refused), and another
    payer's upload is measured beside it."""
    import asyncio

    import pytest

    from baton_negotiator import media
    from tests.negotiator.test_paid import wav

    running, most = [0], [0]
    probe = media._probe  # noqa: SLF001

    async def counted(data: bytes) -> media.AudioDuration:
        running[0] += 1
        most[0] = max(most[0], running[0])
        try:
            return await probe(data)
        finally:
            running[0] -= 1

    audio = wav(1.5, rate=100)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(media, "_probe", counted)
        flood = [asyncio.ensure_future(media.audio_duration(audio, "0xattacker")) for _ in range(6)]
        other = await media.audio_duration(audio, "0xhonest")
        assert other.ms == 1500
        assert [a.ms for a in await asyncio.gather(*flood)] == [1500] * 6
        assert most[0] <= 3  # the attacker's 2 and the honest payer's one
    assert not media._PAYERS._keys  # noqa: SLF001 - nobody waits: forgotten


def test_recent_results_are_bounded_by_bytes_and_age() -> None:
    from baton_negotiator.dispatch import is_output_of
    from baton_negotiator.results import Recent

    now = [0.0]
    recent = Recent(max_bytes=10, max_age=30, clock=lambda: now[0])
    recent.add("s/P1/1.ts", b"abcd")
    recent.add("s/P2/1.ts", b"efgh")
    assert recent.get("s/P1/1.ts") == b"abcd" and recent.size == 8
    recent.add("s/P3/1.ts", b"ijkl")  # over 10 bytes: the oldest goes
    assert recent.get("s/P1/1.ts") is None and recent.get("s/P3/1.ts") == b"ijkl" and recent.size == 8
    recent.add("s/big.ts", b"x" * 11)  # larger than the whole bound: not held
    assert recent.get("s/big.ts") is None
    now[0] = 31.0
    assert recent.get("s/P2/1.ts") is None and recent.size == 0  # past its age: read from the store instead
    job = "0" * 32
    assert is_output_of(f"{job}/out/2", job) and is_output_of(f"{job}/out/2")
    assert not is_output_of(f"{job}/in") and not is_output_of(f"{job}/out/2", "1" * 32)
    assert not is_output_of(f"{job}/out/2/../in") and not is_output_of("stream/x/out/1")


async def test_max_float_leaves_room_for_the_senders_pending_winners() -> None:
    """reserveAlloc - pending (spec §3.4): a sender's winners not yet redeemed, as chain publishes them, shrink
    the face value it is quoted, until its deposit is 3x what is pending."""
    from types import SimpleNamespace

    from baton_common.pm import MemoryNonceStore, ParamsPolicy, TicketParamsIssuer
    from baton_common.schemas.chain import PARAMS_KEY, ProtocolParams, SenderInfo, sender_key
    from baton_negotiator.chain import KvChainData

    sender, now = b"\xab" * 20, time.time()

    def chain_with(pending: int, deposit: int = 10**15) -> KvChainData:
        info = SenderInfo(read_at=now, sender="0x" + sender.hex(), deposit=deposit, reserve=4 * 10**16, round=5,
                          pending=pending)
        params = ProtocolParams(read_at=now, ticket_validity_period=2, active_pool_size=2)
        mirror = SimpleNamespace(values={sender_key("0x" + sender.hex()): info, PARAMS_KEY: params})

        async def no_lookup(request):  # noqa: ANN001, ANN202
            raise AssertionError("the sender is in the bucket")

        return KvChainData(mirror, no_lookup)  # type: ignore[arg-type]

    def issuer(chain: KvChainData) -> TicketParamsIssuer:
        return TicketParamsIssuer(ParamsPolicy(recipient=b"\x01" * 20), b"\x02" * 32, chain, MemoryNonceStore())

    assert await issuer(chain_with(0)).max_float(sender) == 2 * 10**16  # the reserve's share: 4e16 / 2
    assert await issuer(chain_with(15 * 10**15)).max_float(sender) == 5 * 10**15  # less what is pending
    assert await issuer(chain_with(15 * 10**15, deposit=45 * 10**15)).max_float(sender) == 2 * 10**16


async def test_a_winner_this_replica_stores_counts_as_pending_at_once_and_once() -> None:
    """go-livepeer's sender monitor adds a queued winner to pending at once: a winner stored here shrinks the
    next quote's max float before the redeemer's pass publishes it, and counts once after that pass."""
    from types import SimpleNamespace

    import msgspec

    from baton_common.pm import MemoryWinningTickets, SignedTicket, Ticket
    from baton_common.schemas.chain import SenderInfo, sender_key
    from baton_negotiator.chain import KvChainData, NotedWinners

    sender, now = b"\xab" * 20, [1000.0]
    info = SenderInfo(read_at=now[0], sender="0x" + sender.hex(), deposit=10**15, reserve=10**16,
                      pending=10**14, pending_at=now[0] - 5)
    mirror = SimpleNamespace(values={sender_key("0x" + sender.hex()): info})

    async def no_lookup(request):  # noqa: ANN001, ANN202
        raise AssertionError("the sender is in the bucket")

    chain = KvChainData(mirror, no_lookup, clock=lambda: now[0])  # type: ignore[arg-type]
    winners = NotedWinners(MemoryWinningTickets(), chain)
    ticket = SignedTicket(Ticket(b"\x01" * 20, sender, 3 * 10**14, 2**255, 1, b"\x03" * 32, 5, b"\x04" * 32),
                          b"\x05" * 65, 7, 100)
    assert await chain.pending_redemptions(sender) == 10**14
    now[0] += 1
    assert await winners.store(ticket)
    assert not await winners.store(ticket)  # the same winner again is no new pending
    assert await chain.pending_redemptions(sender) == 4 * 10**14
    # The redeemer's pass read after the store publishes it in `pending`: counted once, not twice.
    mirror.values[sender_key("0x" + sender.hex())] = msgspec.structs.replace(
        info, pending=4 * 10**14, pending_at=now[0] + 0.5, read_at=now[0] + 1)
    now[0] += 2
    assert await chain.pending_redemptions(sender) == 4 * 10**14
    assert [t.ticket_hash for t in await winners.pending()] == [ticket.ticket_hash]
    # An older value published after that one (another chain replica's pass) does not lose the winner.
    mirror.values[sender_key("0x" + sender.hex())] = msgspec.structs.replace(info, read_at=now[0])
    assert await chain.pending_redemptions(sender) == 4 * 10**14
    # Ten minutes on, with no pass counting it (the redeemer stalled), the winner still counts.
    now[0] += 600
    mirror.values[sender_key("0x" + sender.hex())] = msgspec.structs.replace(info, read_at=now[0])
    assert await chain.pending_redemptions(sender) == 4 * 10**14


def test_keyed_buckets_refill_at_their_rate_and_forget_full_ones_first() -> None:
    from baton_negotiator.domain import KeyedBuckets

    buckets = KeyedBuckets(rate=0.5, burst=2, max_keys=2)
    assert buckets.left("a", 0.0) == 2 and not buckets._buckets  # noqa: SLF001 - asking keeps nothing
    buckets.get("a", 0.0).spend(0.0)
    buckets.get("a", 0.0).spend(0.0)
    assert buckets.left("a", 0.0) == 0
    assert buckets.left("a", 1.0) == 0.5  # half a token a second
    buckets.get("b", 0.0).spend(0.0)
    buckets.get("c", 10.0)  # two held: "b" is full again by now and goes, "a" (also full) too
    assert buckets.left("c", 10.0) == 2 and len(buckets._buckets) <= 2  # noqa: SLF001
