"""On-chain (paid) mode end to end: the test gateway signs its request, SegData and tickets with eth-account.

Chain data comes from a fake chain publisher writing the baton-chain contract;
balances and winners are read back from the real NATS payment buckets.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
from collections.abc import AsyncIterator, Iterator
from fractions import Fraction
from pathlib import Path

import grpc
import nats
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import keccak

from baton_common.pm import Balances
from baton_common.pm_nats import KvBalanceStore
from baton_common.proto import lp_rpc_pb2
from baton_common.schemas.jobs import JobRequest, JobResult
from baton_common.schemas.payments import BALANCES
from baton_common.streams import ensure_kv
from tests.negotiator.conftest import RunningNegotiator, start_negotiator
from tests.negotiator.fake_chain import FakeChain
from tests.negotiator.gateway import TestGateway, ai_caps
from tests.negotiator.workers import TestWorker

PRICE = 1000  # wei per unit, before -autoAdjustPrice
ADJUSTED = 1010  # face value = 100 x txCost: overhead 1 + 1/100
UNITS = 576 * 1024  # text-to-image at the OpenAPI defaults
ORCH = Account.create()


@pytest.fixture(scope="module")
async def chain(module_nc: nats.NATS) -> AsyncIterator[FakeChain]:
    fake = await FakeChain(module_nc, ORCH.address).start()
    yield fake
    await fake.stop()


def start_onchain(module_nats: str, folder: Path, **env: str) -> RunningNegotiator:
    (folder / "secret").write_text("22" * 32)
    keystore = folder / "keystore.json"
    keystore.write_text(json.dumps(Account.encrypt(ORCH.key, "pw", kdf="scrypt", iterations=2**10)))
    return start_negotiator(module_nats, folder / "state", BATON_NETWORK="arbitrum-one-mainnet",
                            BATON_NEGOTIATOR_TICKET_SECRET_FILE=str(folder / "secret"),
                            BATON_NEGOTIATOR_ETH_KEYSTORE_PATH=str(keystore), BATON_NEGOTIATOR_ETH_PASSWORD="pw",
                            BATON_NEGOTIATOR_PRICE_PER_UNIT=str(PRICE), **env)


@pytest.fixture(scope="module")
def onchain(module_nats: str, chain: FakeChain, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNegotiator]:
    running = start_onchain(module_nats, tmp_path_factory.mktemp("onchain"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
async def echo(module_nc: nats.NATS, workers_kv) -> AsyncIterator[TestWorker]:  # noqa: ANN001
    worker = await TestWorker(module_nc, workers_kv, "paid-echo").start()
    await asyncio.sleep(0.3)
    yield worker
    await worker.stop()


@pytest.fixture
def gw(onchain: RunningNegotiator) -> Iterator[TestGateway]:
    gateway = TestGateway("127.0.0.1", onchain.grpc_port)
    yield gateway
    gateway.close()


@pytest.fixture(scope="module")
async def balances(module_nc: nats.NATS, onchain: RunningNegotiator) -> Balances:
    return Balances(KvBalanceStore(await ensure_kv(module_nc.jetstream(), BALANCES)))


def call(fn, *args, **kwargs):  # noqa: ANN001, ANN201
    return asyncio.to_thread(fn, *args, **kwargs)


async def test_get_orchestrator_quotes_ticket_params_with_the_adjusted_price(gw: TestGateway, chain: FakeChain,
                                                                             echo: TestWorker) -> None:
    info = await call(gw.get_orchestrator)
    assert info.address == bytes.fromhex(ORCH.address[2:])
    assert (info.price_info.pricePerUnit, info.price_info.pixelsPerUnit) == (ADJUSTED, 1)
    params = info.ticket_params
    assert params.recipient == info.address
    assert int.from_bytes(params.expiration_block, "big") == 21_000_000 + 40
    assert params.expiration_params.creation_round == 4000
    assert int.from_bytes(params.face_value, "big") == 100 * 1_200_000 * 1_000_000_000
    assert chain.lookups == ["0x" + gw.address.hex()]  # the cold path, once for a new sender
    await call(gw.get_orchestrator)
    assert len(chain.lookups) == 1


async def test_an_unsigned_or_forged_request_is_refused(gw: TestGateway) -> None:
    for kwargs in ({"signed": False}, {"sig": b"\x01" * 65}):
        with pytest.raises(grpc.RpcError) as err:
            await call(gw.get_orchestrator, **kwargs)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "Invalid orchestrator request" in err.value.details()


async def test_ping_is_signed_by_the_orchestrator_key(gw: TestGateway) -> None:
    sig = await call(gw.ping, b"\x07" * 32)
    assert Account.recover_message(encode_defunct(primitive=keccak(b"\x07" * 32)), signature=sig) == ORCH.address


async def ai_request(gw: TestGateway, *, model: str = "echo-model", tickets: int = 1,
                     info: lp_rpc_pb2.OrchestratorInfo | None = None, payment: str | None = None,
                     segment: str | None = None):  # noqa: ANN202
    info = info or await call(gw.get_orchestrator, caps=ai_caps(27, model))
    headers = {"Livepeer-Payment": gw.payment_header(info, tickets) if payment is None else payment,
               "Livepeer-Segment": segment if segment is not None else
               gw.segment_header(info, manifest=f"27_{model}".encode())}
    with gw.http() as client:
        return await call(client.post, f"{info.transcoder}/text-to-image", json={"prompt": "x", "model_id": model},
                          headers=headers)


def ev(info: lp_rpc_pb2.OrchestratorInfo) -> Fraction:
    params = info.ticket_params
    return Fraction(int.from_bytes(params.face_value, "big") * int.from_bytes(params.win_prob, "big"), 2**256 - 1)


async def test_a_paid_job_credits_the_ticket_and_debits_price_times_units(gw: TestGateway, echo: TestWorker,
                                                                          balances: Balances) -> None:
    info = await call(gw.get_orchestrator, caps=ai_caps(27, "echo-model"))
    r = await ai_request(gw, info=info)
    assert r.status_code == 200, r.text
    left = await balances.balance(gw.address, "27_echo-model")
    assert left == ev(info) - ADJUSTED * UNITS
    assert await balances.fixed_price(gw.address, "27_echo-model") == ADJUSTED


async def test_the_same_payment_twice_credits_once(gw: TestGateway, echo: TestWorker, balances: Balances) -> None:
    info = await call(gw.get_orchestrator, caps=ai_caps(27, "echo-model"))
    payment = gw.payment_header(info)
    assert (await ai_request(gw, info=info, payment=payment)).status_code == 200
    once = await balances.balance(gw.address, "27_echo-model")
    jobs = len(echo.jobs)
    again = await ai_request(gw, info=info, payment=payment)
    # Its credit reached the balance and left the journal: the same tickets again are a replay.
    assert again.status_code == 400 and again.text.startswith("invalid ticket senderNonce: already seen")
    assert await balances.balance(gw.address, "27_echo-model") == once
    assert len(echo.jobs) == jobs


def ticketless(gw: TestGateway) -> str:
    """A payment that names its sender and carries no tickets."""
    payment = lp_rpc_pb2.Payment(sender=gw.address, expected_price=lp_rpc_pb2.PriceInfo(pricePerUnit=ADJUSTED,
                                                                                          pixelsPerUnit=1))
    return base64.b64encode(payment.SerializeToString()).decode()


async def test_no_tickets_and_no_balance_is_insufficient_balance(gw: TestGateway, echo: TestWorker) -> None:
    r = await ai_request(gw, payment=ticketless(gw))
    assert (r.status_code, r.text) == (400, "Insufficient balance\n")


async def test_an_empty_payment_on_chain_names_no_sender(gw: TestGateway, echo: TestWorker) -> None:
    r = await ai_request(gw, payment="")
    assert (r.status_code, r.text) == (403, "Could not find Sender for payment\n")


async def test_a_payment_for_another_orchestrator_is_refused_and_credits_nothing(
        gw: TestGateway, echo: TestWorker, balances: Balances) -> None:
    info = await call(gw.get_orchestrator, caps=ai_caps(27, "echo-model"))
    info.ticket_params.recipient = bytes.fromhex(Account.create().address[2:])
    jobs = len(echo.jobs)
    r = await ai_request(gw, info=info)
    # go-livepeer checks the ticket's recipient is an active orchestrator first: another one is not us.
    assert r.status_code == 400 and ("recipient" in r.text or "is inactive" in r.text), r.text
    assert await balances.balance(gw.address, "27_echo-model") is None
    assert len(echo.jobs) == jobs


async def test_malformed_headers_get_402_and_403(gw: TestGateway, echo: TestWorker, balances: Balances) -> None:
    info = await call(gw.get_orchestrator, caps=ai_caps(27, "echo-model"))
    for payment in ("not base64!", base64.b64encode(b"\xff\xff\xff").decode()):
        r = await ai_request(gw, info=info, payment=payment)
        assert r.status_code == 402, r.text
    r = await ai_request(gw, info=info, segment="%%%")
    assert r.status_code == 403 and "Livepeer-Segment" in r.text
    other = TestGateway("127.0.0.1", gw.port)  # a segment signed by someone else than the payer
    try:
        r = await ai_request(gw, info=info, segment=other.segment_header(info, manifest=b"27_echo-model"))
        assert r.status_code == 403 and "sig" in r.text
    finally:
        other.close()
    assert await balances.balance(gw.address, "27_echo-model") is None


async def test_the_metrics_count_refusals_by_verified_sender(onchain: RunningNegotiator, gw: TestGateway,
                                                             echo: TestWorker) -> None:
    import httpx

    # A payment without tickets proves no sender: its refusal is counted under `unknown`.
    assert (await ai_request(gw, payment=ticketless(gw))).status_code == 400
    # A ticket signature proves one: a job dearer than the balance is counted under the sender's address.
    info = await call(gw.get_orchestrator, caps=ai_caps(27, "echo-model"))
    headers = {"Livepeer-Payment": gw.payment_header(info), "Livepeer-Segment":
               gw.segment_header(info, manifest=b"27_echo-model")}
    with gw.http() as client:
        r = await call(client.post, f"{info.transcoder}/text-to-image", headers=headers,
                       json={"prompt": "x", "model_id": "echo-model", "num_images_per_prompt": 16})
    assert (r.status_code, r.text) == (400, "Insufficient balance\n")
    text = httpx.get(f"http://127.0.0.1:{onchain.health_port}/metrics").text
    sender = Account.from_key(gw.key).address
    assert 'baton_negotiator_refusals_total{reason="insufficient_balance",sender="unknown"}' in text
    assert f'baton_negotiator_refusals_total{{reason="insufficient_balance",sender="{sender}"}}' in text
    assert 'baton_requests_total{endpoint="/text-to-image",outcome="payment_error"}' in text
    assert f'livepeer_tickets_recv{{sender="{sender}"}}' in text


async def test_a_gateway_spends_its_credit_without_tickets_under_a_refreshed_auth_token(
        gw: TestGateway, echo: TestWorker, balances: Balances) -> None:
    """go-livepeer gateways keep their credit across GetOrchestrator refreshes (every ticket-params expiry) and
    send no tickets while it lasts: by default (ticketless_spend = sender) that job runs, as on go-livepeer."""
    manifest = "27_echo-model"
    info = await call(gw.get_orchestrator, caps=ai_caps(27, "echo-model"))
    assert (await ai_request(gw, info=info, tickets=3)).status_code == 200
    funded = await balances.balance(gw.address, manifest)
    refreshed = await call(gw.get_orchestrator, caps=ai_caps(27, "echo-model"))
    assert refreshed.auth_token.token != info.auth_token.token
    r = await ai_request(gw, info=refreshed, payment=ticketless(gw))
    assert r.status_code == 200, r.text
    assert await balances.balance(gw.address, manifest) == funded - ADJUSTED * UNITS


async def test_verified_sessions_only_a_replayed_header_with_a_ticketless_payment_spends_nothing(
        module_nats: str, chain: FakeChain, echo: TestWorker, balances: Balances,
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """A batch AI SegData signature covers only the manifest, so any orchestrator the gateway uses holds a
    copy; with ticketless_spend = verified-session, an auth token of its own and a payment naming the gateway
    must not spend the gateway's balance."""
    strict = start_onchain(module_nats, tmp_path_factory.mktemp("strict"),
                           BATON_NEGOTIATOR_TICKETLESS_SPEND="verified-session")
    gw = TestGateway("127.0.0.1", strict.grpc_port)
    try:
        manifest = "27_echo-model"
        info = await call(gw.get_orchestrator, caps=ai_caps(27, "echo-model"))
        assert (await ai_request(gw, info=info, tickets=3)).status_code == 200
        funded = await balances.balance(gw.address, manifest)
        assert funded == 3 * ev(info) - ADJUSTED * UNITS
        # The gateway itself spends its credit without tickets under the token its tickets came with.
        r = await ai_request(gw, info=info, payment=ticketless(gw))
        assert r.status_code == 200, r.text
        assert await balances.balance(gw.address, manifest) == funded - ADJUSTED * UNITS
        left, jobs = funded - ADJUSTED * UNITS, len(echo.jobs)
        # The replay: the same signed manifest under a token it got from GetOrchestrator, no tickets.
        other = await call(gw.get_orchestrator, caps=ai_caps(27, "echo-model"))
        replay = gw.segment_header(other, manifest=manifest.encode())
        r = await ai_request(gw, info=other, payment=ticketless(gw), segment=replay)
        assert (r.status_code, r.text) == (400, "Insufficient balance\n")
        assert await balances.balance(gw.address, manifest) == left
        assert len(echo.jobs) == jobs
    finally:
        gw.close()
        strict.stop()


async def test_concurrent_requests_cannot_spend_more_than_the_balance(
        gw: TestGateway, module_nc, workers_kv, balances: Balances) -> None:  # noqa: ANN001
    racer = await TestWorker(module_nc, workers_kv, "paid-racer", models=(("text-to-image", "race-model"),),
                             capacity=8, mode="slow").start()
    await asyncio.sleep(0.3)
    try:
        caps = ai_caps(27, "race-model")
        info = await call(gw.get_orchestrator, caps=caps)
        seg = gw.segment_header(info, manifest=b"27_race-model", caps=caps)
        with gw.http() as client:  # two tickets' credit, by /payment
            r = await call(client.post, f"{info.transcoder}/payment", content=b"",
                           headers={"Livepeer-Payment": gw.payment_header(info, 2), "Livepeer-Segment": seg})
        assert r.status_code == 200, r.text
        funded = await balances.balance(gw.address, "27_race-model")
        assert funded == 2 * ev(info)
        cost, allowed, left = ADJUSTED * UNITS * 9, 0, funded  # each job: 9 images
        while left >= max(ev(info), cost):  # what the balance pays for one by one (each needs one EV first)
            left, allowed = left - cost, allowed + 1
        assert allowed == 2

        def one() -> int:
            with gw.http() as client:
                return client.post(f"{info.transcoder}/text-to-image",
                                   json={"prompt": "x", "model_id": "race-model", "num_images_per_prompt": 9},
                                   headers={"Livepeer-Payment": ticketless(gw),
                                            "Livepeer-Segment": gw.segment_header(info,
                                                                                  manifest=b"27_race-model")}).status_code

        statuses = await asyncio.gather(*(asyncio.to_thread(one) for _ in range(6)))
        done = statuses.count(200)
        assert 1 <= done <= allowed and statuses.count(400) == 6 - done, statuses
        assert await balances.balance(gw.address, "27_race-model") == funded - done * cost >= 0
        assert len(racer.jobs) == done
    finally:
        await racer.stop()


async def test_a_stream_that_breaks_off_is_billed_the_tokens_it_delivered(
        gw: TestGateway, module_nc, workers_kv, balances: Balances) -> None:  # noqa: ANN001
    breaker = await TestWorker(module_nc, workers_kv, "paid-breaker", models=(("llm", "break-llm"),),
                               mode="stream-fail").start()
    await asyncio.sleep(0.3)
    try:
        info = await call(gw.get_orchestrator, caps=ai_caps(33, "break-llm"))
        body = {"model": "break-llm", "stream": True, "max_tokens": 100,
                "messages": [{"role": "user", "content": "go"}]}
        with gw.http() as client:
            r = await call(client.post, f"{info.transcoder}/llm", json=body,
                           headers={"Livepeer-Payment": gw.payment_header(info),
                                    "Livepeer-Segment": gw.segment_header(info, manifest=b"33_break-llm")})
        assert r.status_code == 200
        events = [line[6:] for line in r.text.split("\n") if line.startswith("data: ")]
        assert [json.loads(e)["choices"][0]["delta"]["content"] for e in events[:2]] == ["half", "way"]
        assert json.loads(events[-1]) == {"error": "the runner crashed"} and len(events) == 3
        assert await balances.balance(gw.address, "33_break-llm") == ev(info) - ADJUSTED * 2
        after = await call(gw.get_orchestrator)
        assert after.capabilities.constraints.PerCapability[33].models["break-llm"].capacityInUse == 0
    finally:
        await breaker.stop()


async def test_audio_under_a_second_is_billed_the_minimum_unit(gw: TestGateway, module_nc, workers_kv,  # noqa: ANN001
                                                               balances: Balances) -> None:
    whisper = await TestWorker(module_nc, workers_kv, "paid-whisper", models=(("audio-to-text", "echo-whisper"),)).start()
    await asyncio.sleep(0.3)
    try:
        info = await call(gw.get_orchestrator, caps=ai_caps(31, "echo-whisper"))
        with gw.http() as client:  # the echo worker measures no whole second: it reports 0 units
            r = await call(client.post, f"{info.transcoder}/audio-to-text", data={"model_id": "echo-whisper"},
                           files={"audio": ("a.wav", wav(0.5), "audio/wav")},
                           headers={"Livepeer-Payment": gw.payment_header(info),
                                    "Livepeer-Segment": gw.segment_header(info, manifest=b"31_echo-whisper")})
        assert r.status_code == 200, r.text
        assert await balances.balance(gw.address, "31_echo-whisper") == ev(info) - ADJUSTED * 1000
    finally:
        await whisper.stop()


async def test_audio_is_reserved_by_its_measured_duration_before_it_runs(gw: TestGateway, module_nc,  # noqa: ANN001
                                                                        workers_kv, balances: Balances) -> None:
    """One ticket (EV 8e9 wei) covers ~7900 s of audio at this price: a 9000 s file is refused before it runs, and
    an unreadable one is 400 as go-livepeer refuses it; nothing is debited."""
    whisper = await TestWorker(module_nc, workers_kv, "paid-whisper-2", models=(("audio-to-text", "echo-whisper2"),)).start()
    await asyncio.sleep(0.3)
    try:
        info = await call(gw.get_orchestrator, caps=ai_caps(31, "echo-whisper2"))
        assert ev(info) < ADJUSTED * 9_000_000
        for audio, answer in ((wav(9000, rate=100), (400, "Insufficient balance\n")),
                              (b"RIFF" + b"\0" * 400, (400, "Unable to calculate duration\n"))):
            before = await balances.balance(gw.address, "31_echo-whisper2") or 0
            with gw.http() as client:
                r = await call(client.post, f"{info.transcoder}/audio-to-text", data={"model_id": "echo-whisper2"},
                               files={"audio": ("a.wav", audio, "audio/wav")},
                               headers={"Livepeer-Payment": gw.payment_header(info),
                                        "Livepeer-Segment": gw.segment_header(info, manifest=b"31_echo-whisper2")})
            assert (r.status_code, r.text) == answer
            after = await balances.balance(gw.address, "31_echo-whisper2") or 0
            assert after - before in (0, ev(info))  # the ticket credited, if it got that far; no job debited
        assert whisper.jobs == []
    finally:
        await whisper.stop()


class OverReporting(TestWorker):
    """An audio-to-text worker that reports far more seconds than the file's container declares."""

    async def _result(self, msg, job: JobRequest) -> JobResult:  # noqa: ANN001
        return JobResult(job_id=job.job_id, data=json.dumps({"text": "", "chunks": []}).encode(), units=200_000)


async def test_audio_is_never_billed_past_what_was_reserved_for_it(gw: TestGateway, module_nc, workers_kv,  # noqa: ANN001
                                                                   balances: Balances) -> None:
    """The reservation is the container's duration as a go-livepeer gateway pays it: a worker that decoded
    longer (the file lied) cannot push the balance past it; the real worker refuses such audio. An MP3's
    duration is ffprobe's estimate: it is billed as decoded, up to 1.5 x + 10 s."""
    whisper = await OverReporting(module_nc, workers_kv, "paid-whisper-4", models=(("audio-to-text", "over"),)).start()
    await asyncio.sleep(0.3)
    try:
        info = await call(gw.get_orchestrator, caps=ai_caps(31, "over"))
        with gw.http() as client:
            r = await call(client.post, f"{info.transcoder}/audio-to-text", data={"model_id": "over"},
                           files={"audio": ("a.wav", wav(2.5), "audio/wav")},
                           headers={"Livepeer-Payment": gw.payment_header(info),
                                    "Livepeer-Segment": gw.segment_header(info, manifest=b"31_over")})
        assert r.status_code == 200, r.text
        # what it may decode reaches the worker, which enforces it: the reserved seconds and the one rounded off
        assert (whisper.jobs[0].billed_units, whisper.jobs[0].max_units) == (2000, 3000)
        assert await balances.balance(gw.address, "31_over") == ev(info) - ADJUSTED * 2000
        mp3 = subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono",
                              "-t", "2", "-b:a", "8k", "-f", "mp3", "pipe:1"], capture_output=True, check=True).stdout
        with gw.http() as client:
            r = await call(client.post, f"{info.transcoder}/audio-to-text", data={"model_id": "over"},
                           files={"audio": ("a.mp3", mp3, "audio/mpeg")},
                           headers={"Livepeer-Payment": gw.payment_header(info), "Livepeer-Segment": gw.segment_header(
                               info, manifest=b"31_over")})
        assert r.status_code == 200, r.text
        assert (whisper.jobs[1].billed_units, whisper.jobs[1].max_units) == (2000, 13_000)
        assert await balances.balance(gw.address, "31_over") == 2 * ev(info) - ADJUSTED * (2000 + 13_000)
    finally:
        await whisper.stop()


async def test_an_upload_from_a_sender_with_no_balance_is_refused_before_ffprobe_reads_it(
        gw: TestGateway, module_nc, workers_kv) -> None:  # noqa: ANN001
    """ffprobe runs for a paying sender only: a stranger's unreadable "audio" with a ticketless payment gets
    Insufficient balance, not the duration error that measuring it would give."""
    whisper = await TestWorker(module_nc, workers_kv, "paid-whisper-3", models=(("audio-to-text", "echo-whisper3"),)).start()
    await asyncio.sleep(0.3)
    stranger = TestGateway(gw.host, gw.port)
    try:
        info = await call(stranger.get_orchestrator, caps=ai_caps(31, "echo-whisper3"))
        with stranger.http() as client:
            r = await call(client.post, f"{info.transcoder}/audio-to-text", data={"model_id": "echo-whisper3"},
                           files={"audio": ("a.wav", b"RIFF" + b"\0" * 400, "audio/wav")},
                           headers={"Livepeer-Payment": ticketless(stranger),
                                    "Livepeer-Segment": stranger.segment_header(info, manifest=b"31_echo-whisper3")})
        assert (r.status_code, r.text) == (400, "Insufficient balance\n")
        assert whisper.jobs == []
    finally:
        stranger.close()
        await whisper.stop()


def wav(seconds: float, rate: int = 8000) -> bytes:
    """A mono 8-bit PCM WAV of silence, ``seconds`` long."""
    import io
    import wave

    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(rate)
        w.writeframes(b"\x80" * int(seconds * rate))
    return buf.getvalue()


_ = Path


async def test_a_paid_segment_is_signed_and_debited_by_output_pixels(gw: TestGateway, module_nc, workers_kv,  # noqa: ANN001
                                                                     balances: Balances) -> None:
    transcoder = await TestWorker(module_nc, workers_kv, "paid-tc", kind="transcode",
                                  models=(("transcode", ""),)).start()
    await asyncio.sleep(0.3)
    try:
        info = await call(gw.get_orchestrator)
        body = b"\x47" * 188 * 4
        # 15 fps: one ticket (EV 8e9 wei) covers the estimate of a 2 s segment (the shortest one assumed).
        profiles = (lp_rpc_pb2.VideoProfile(name="P144p", width=256, height=144, bitrate=400000, fps=15),
                    lp_rpc_pb2.VideoProfile(name="P240p", width=426, height=240, bitrate=600000, fps=15))
        seg = gw.segment_header(info, manifest=b"paid-stream", seq=3, body_hash=keccak(body), profiles=profiles)
        with gw.http() as client:
            r = await call(client.post, f"{info.transcoder}/segment", content=body,
                           headers={"Livepeer-Payment": gw.payment_header(info), "Livepeer-Segment": seg})
            result = lp_rpc_pb2.TranscodeResult.FromString(r.content)
            assert result.WhichOneof("result") == "data", result.error
            renditions = [(await call(client.get, s.url)).content for s in result.data.segments]
        pixels = sum(s.pixels for s in result.data.segments)
        assert pixels == (256 * 144 + 426 * 240) * 2
        digest = keccak(b"".join(keccak(r) for r in renditions))
        signer = Account.recover_message(encode_defunct(primitive=digest), signature=result.data.sig)
        assert signer == ORCH.address
        session = info.auth_token.session_id
        assert await balances.balance(gw.address, session) == ev(info) - ADJUSTED * pixels
        assert result.info.auth_token.session_id == session  # the request's token is kept
        # A body that does not match SegData.hash is refused after the payment (go-livepeer's order):
        # its ticket is credited, nothing is transcoded or debited.
        seg = gw.segment_header(info, manifest=b"paid-stream", seq=4, body_hash=keccak(b"other"), profiles=profiles)
        jobs = len(transcoder.jobs)
        with gw.http() as client:
            r = await call(client.post, f"{info.transcoder}/segment", content=body,
                           headers={"Livepeer-Payment": gw.payment_header(info), "Livepeer-Segment": seg})
        assert (r.status_code, r.text) == (403, "Mismatched segment hash\n")
        assert await balances.balance(gw.address, session) == 2 * ev(info) - ADJUSTED * pixels
        assert len(transcoder.jobs) == jobs
    finally:
        await transcoder.stop()


async def test_payment_credits_the_manifest_and_refresh_payment_quotes_its_fixed_price(
        gw: TestGateway, echo: TestWorker, balances: Balances) -> None:
    caps = ai_caps(27, "echo-model")
    info = await call(gw.get_orchestrator, caps=caps)
    seg = gw.segment_header(info, manifest=b"27_echo-model", caps=caps)
    with gw.http() as client:
        r = await call(client.post, f"{info.transcoder}/payment", content=b"ignored",
                       headers={"Livepeer-Payment": gw.payment_header(info, 2), "Livepeer-Segment": seg})
        assert r.status_code == 200, r.text
        reply = lp_rpc_pb2.PaymentResult.FromString(r.content)
        assert reply.info.ticket_params.recipient_rand_hash and reply.info.auth_token == info.auth_token
        assert await balances.balance(gw.address, "27_echo-model") == 2 * ev(info)

        sender = Account.from_key(gw.key).address
        r = await call(client.post, f"{info.transcoder}/refresh-payment",
                       json={"sender": sender, "manifest_id": "27_echo-model"})
        assert r.status_code == 200, r.text
        doc = r.json()
        refreshed = lp_rpc_pb2.OrchestratorInfo.FromString(base64.b64decode(doc["payment_params"]))
        assert (refreshed.price_info.pricePerUnit, refreshed.price_info.pixelsPerUnit) == (ADJUSTED, 1)
        assert doc["manifest_id"] == "27_echo-model" and doc["payment_url"].endswith("/payment")
        for body, status in (({"sender": "0x12", "manifest_id": "m"}, 400), ({"sender": sender}, 400),
                             ({"sender": sender, "manifest_id": "no-such-session"}, 409)):
            r = await call(client.post, f"{info.transcoder}/refresh-payment", json=body)
            assert r.status_code == status, (body, r.text)


async def test_a_streamed_llm_job_is_debited_max_tokens_and_a_failed_job_nothing(
        gw: TestGateway, echo: TestWorker, module_nc, workers_kv, balances: Balances) -> None:  # noqa: ANN001
    caps = ai_caps(33, "echo-llm")
    info = await call(gw.get_orchestrator, caps=caps)
    seg = gw.segment_header(info, manifest=b"33_echo-llm")
    body = {"model": "echo-llm", "stream": True, "max_tokens": 100, "messages": [{"role": "user", "content": "a b"}]}
    with gw.http() as client:
        r = await call(client.post, f"{info.transcoder}/llm", json=body,
                       headers={"Livepeer-Payment": gw.payment_header(info), "Livepeer-Segment": seg})
    assert r.status_code == 200 and r.text.endswith("data: [DONE]\n\n")
    assert await balances.balance(gw.address, "33_echo-llm") == ev(info) - ADJUSTED * 100

    failing = await TestWorker(module_nc, workers_kv, "paid-failing", models=(("text-to-image", "bad-model"),),
                               mode="fail").start()
    await asyncio.sleep(0.3)
    try:
        info = await call(gw.get_orchestrator, caps=ai_caps(27, "bad-model"))
        r = await ai_request(gw, model="bad-model", info=info)
        assert (r.status_code, r.text) == (500, "the runner crashed\n")
        assert await balances.balance(gw.address, "27_bad-model") == ev(info)  # credited, never debited
    finally:
        await failing.stop()


async def test_a_segment_needs_its_estimated_cost_in_the_balance_before_it_is_transcoded(
        gw: TestGateway, module_nc, workers_kv, balances: Balances) -> None:  # noqa: ANN001
    """go-livepeer gateways pay ahead width x height x ceil(fps) x ceil(seconds) per profile: one ticket
    does not cover a 2 s 720p30 segment (55 million pixels), eight do."""
    transcoder = await TestWorker(module_nc, workers_kv, "paid-tc-estimate", kind="transcode",
                                  models=(("transcode", ""),)).start()
    await asyncio.sleep(0.3)
    try:
        info = await call(gw.get_orchestrator)
        body = b"\x47" * 188 * 4
        profile = lp_rpc_pb2.VideoProfile(name="P720p", width=1280, height=720, bitrate=3_000_000, fps=30)
        estimate = 1280 * 720 * 30 * 2
        assert ADJUSTED * estimate > ev(info)

        def post(seq: int, tickets: int) -> lp_rpc_pb2.TranscodeResult | str:
            seg = lp_rpc_pb2.SegData.FromString(base64.b64decode(gw.segment_header(
                info, manifest=b"estimate-stream", seq=seq, body_hash=keccak(body), profiles=(profile,))))
            seg.duration = 2000  # not signed (go-livepeer's flatten leaves it out)
            with gw.http() as client:
                r = client.post(f"{info.transcoder}/segment", content=body,
                                headers={"Livepeer-Payment": gw.payment_header(info, tickets),
                                         "Livepeer-Segment": base64.b64encode(seg.SerializeToString()).decode()})
            return r.text if r.status_code != 200 else lp_rpc_pb2.TranscodeResult.FromString(r.content)

        jobs = len(transcoder.jobs)
        assert await call(post, 1, 1) == "Insufficient balance\n"
        assert len(transcoder.jobs) == jobs
        session = info.auth_token.session_id
        assert await balances.balance(gw.address, session) == ev(info)  # credited, nothing taken
        result = await call(post, 2, 7)
        assert isinstance(result, lp_rpc_pb2.TranscodeResult) and result.WhichOneof("result") == "data"
        # The reservation is settled with the pixels the renditions have.
        assert await balances.balance(gw.address, session) == 8 * ev(info) - ADJUSTED * 1280 * 720 * 2
    finally:
        await transcoder.stop()


async def test_baton_try_pays_with_a_test_key(onchain: RunningNegotiator, echo: TestWorker, tmp_path: Path,
                                              balances: Balances) -> None:
    import subprocess
    import sys

    key = Account.create()
    (tmp_path / "gateway.key").write_text(key.key.hex())
    run = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "baton_cli", "try", "text-to-image", "--model", "echo-model",
                         "--param", "prompt=a cat", "--orchestrator", f"127.0.0.1:{onchain.grpc_port}",
                         "--key", str(tmp_path / "gateway.key"), "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "GetOrchestrator" in run.stdout and "paid" in run.stdout
    assert json.loads((tmp_path / "out" / "output.json").read_text())["images"][0]["url"].startswith("data:")
    same = TestGateway("127.0.0.1", onchain.grpc_port, key=bytes(key.key))  # the ticket params that key gets
    try:
        info = await call(same.get_orchestrator, caps=ai_caps(27, "echo-model"))
    finally:
        same.close()
    sender = bytes.fromhex(key.address[2:])
    assert await balances.balance(sender, "27_echo-model") == ev(info) - ADJUSTED * UNITS  # one ticket, one job
    assert await balances.fixed_price(sender, "27_echo-model") == ADJUSTED
