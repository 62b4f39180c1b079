"""Offchain end to end: a test gateway (grpcio, pinned self-signed cert) against the negotiator process."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl

import grpc
import httpx
import nats.js.errors
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from baton_common.proto import lp_rpc_pb2
from tests.negotiator.conftest import RunningNegotiator
from tests.negotiator.gateway import TestGateway, ai_caps
from tests.negotiator.workers import TestWorker


@pytest.fixture
async def worker(module_nc, workers_kv):  # noqa: ANN001, ANN201
    w = await TestWorker(module_nc, workers_kv, "echo-1").start()
    await asyncio.sleep(0.3)
    yield w
    await w.stop()


async def in_thread(fn, *args, **kwargs):  # noqa: ANN001, ANN201
    return await asyncio.to_thread(fn, *args, **kwargs)


def test_the_certificate_is_self_signed_ecdsa_p256_and_kept(offchain: RunningNegotiator, gateway: TestGateway) -> None:
    cert = x509.load_pem_x509_certificate(gateway.cert)
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert cert.public_key().curve.name == "secp256r1"
    assert cert.issuer == cert.subject
    on_disk = x509.load_pem_x509_certificate((offchain.state_dir / "cert.pem").read_bytes())
    assert on_disk == cert
    assert (offchain.state_dir / "key.pem").stat().st_mode & 0o077 == 0


async def test_get_orchestrator_offchain_advertises_defaults_and_warm_models(gateway: TestGateway,
                                                                           worker: TestWorker) -> None:
    info = await in_thread(gateway.get_orchestrator, signed=False)
    assert info.transcoder.startswith("https://127.0.0.1:")
    assert not info.HasField("ticket_params")
    assert info.capabilities.version == "0.9.1"
    bits = info.capabilities.bitstring[0]
    for capability in (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 26, 27, 33):
        assert bits & (1 << capability), capability
    model = info.capabilities.constraints.PerCapability[27].models["echo-model"]
    assert model.warm and model.capacity == 2 and model.capacityInUse == 0
    assert len(info.auth_token.session_id) == 8 and info.auth_token.expiration > 0
    assert {(p.capability, p.constraint) for p in info.capabilities_prices} >= {(27, "echo-model"), (33, "echo-llm")}


async def test_text_to_image_end_to_end_over_http2(gateway: TestGateway, worker: TestWorker) -> None:
    info = await in_thread(gateway.get_orchestrator, caps=ai_caps(27, "echo-model"), signed=False)
    seg = gateway.segment_header(info, manifest=b"27_echo-model", signed=False)
    with gateway.http(http2=True) as client:
        r = await in_thread(client.post, f"{info.transcoder}/text-to-image",
                            json={"prompt": "a cat", "model_id": "echo-model", "num_images_per_prompt": 2},
                            headers={"Livepeer-Payment": "", "Livepeer-Segment": seg})
    assert r.status_code == 200, r.text
    assert r.http_version == "HTTP/2"
    doc = r.json()
    assert [i["url"][:22] for i in doc["images"]] == ["data:image/png;base64,"] * 2
    # The worker ran the OpenAPI defaults: 576 x 1024.
    assert doc["echo"]["height"] == 576 and doc["echo"]["width"] == 1024
    assert worker.jobs[-1].billed_units == 576 * 1024 * 2


async def test_llm_streams_server_sent_events(gateway: TestGateway, worker: TestWorker) -> None:
    info = await in_thread(gateway.get_orchestrator, signed=False)
    seg = gateway.segment_header(info, manifest=b"33_echo-llm", signed=False)
    body = {"model": "echo-llm", "stream": True, "messages": [{"role": "user", "content": "one two three"}]}
    with gateway.http() as client:
        r = await in_thread(client.post, f"{info.transcoder}/llm", json=body, headers={"Livepeer-Segment": seg})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = [line[6:] for line in r.text.split("\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    assert [json.loads(e)["choices"][0]["delta"]["content"] for e in events[:-1]] == ["one", "two", "three"]
    assert worker.jobs[-1].billed_units == 256  # no max_tokens: runs and bills the OpenAPI default


async def test_segment_transcodes_and_serves_renditions(gateway: TestGateway, module_nc, workers_kv) -> None:  # noqa: ANN001
    transcoder = await TestWorker(module_nc, workers_kv, "tc-1", kind="transcode",
                                  models=(("transcode", ""),)).start()
    try:
        await asyncio.sleep(0.3)
        info = await in_thread(gateway.get_orchestrator, signed=False)
        body = b"\x47" * 188 * 10
        from eth_utils import keccak

        profiles = (lp_rpc_pb2.VideoProfile(name="P240p30fps16x9", width=426, height=240, bitrate=600000, fps=30),)
        seg = gateway.segment_header(info, manifest=b"stream-1", seq=7, body_hash=keccak(body), profiles=profiles,
                                     signed=False)
        with gateway.http() as client:
            r = await in_thread(client.post, f"{info.transcoder}/segment", content=body,
                                headers={"Livepeer-Segment": seg, "Content-Type": "video/MP2T"})
            assert r.status_code == 200
            result = lp_rpc_pb2.TranscodeResult.FromString(r.content)
            assert result.WhichOneof("result") == "data", result.error
            assert result.seq == 7
            (rendition,) = result.data.segments
            assert rendition.pixels == 426 * 240 * 2
            assert result.data.sig == b""  # offchain: empty, as go-livepeer
            assert rendition.url.endswith(f"/stream/{info.auth_token.session_id}/P240p30fps16x9/7.ts")
            got = await in_thread(client.get, rendition.url)
            assert got.status_code == 200 and got.content == body + b"P240p30fps16x9"
        await in_thread(gateway.end_session, info.auth_token)
    finally:
        await transcoder.stop()


async def test_stored_renditions_are_served_through_links_and_a_bad_digest_serves_nothing(
        gateway: TestGateway, module_nc, workers_kv) -> None:  # noqa: ANN001
    """Renditions the worker put in baton-bodies are served from there (a link, no copy); refused on a bad digest."""
    from eth_utils import keccak

    store = await module_nc.jetstream().object_store("baton-bodies")
    profiles = (lp_rpc_pb2.VideoProfile(name="P240p30fps16x9", width=426, height=240, bitrate=600000, fps=30),
                lp_rpc_pb2.VideoProfile(name="P144p30fps16x9", width=256, height=144, bitrate=400000, fps=30))
    for mode, seq in (("store", 3), ("store-bad", 4)):
        transcoder = await TestWorker(module_nc, workers_kv, f"tc-{mode}", kind="transcode",
                                      models=(("transcode", ""),), mode=mode).start()
        try:
            await asyncio.sleep(0.3)
            info = await in_thread(gateway.get_orchestrator, signed=False)
            body = b"\x47" * 188 * 10
            seg = gateway.segment_header(info, manifest=b"stream-2", seq=seq, body_hash=keccak(body),
                                         profiles=profiles, signed=False)
            with gateway.http() as client:
                r = await in_thread(client.post, f"{info.transcoder}/segment", content=body,
                                    headers={"Livepeer-Segment": seg, "Content-Type": "video/MP2T"})
                assert r.status_code == 200
                result = lp_rpc_pb2.TranscodeResult.FromString(r.content)
                (job,) = transcoder.jobs
                outputs = [f"{job.job_id}/out/{n}" for n in range(2)]
                session = info.auth_token.session_id
                paths = [f"{session}/{p.name}/{seq}.ts" for p in profiles]
                if mode == "store":
                    assert result.WhichOneof("result") == "data", result.error
                    assert [s.url for s in result.data.segments] == [f"{info.transcoder}/stream/{p}" for p in paths]
                    for s, p in zip(result.data.segments, profiles, strict=True):
                        got = await in_thread(client.get, s.url)
                        assert got.status_code == 200 and got.content == body + p.name.encode()
                    for path, output, p in zip(paths, outputs, profiles, strict=True):
                        link = (await store.get_info(f"stream/{path}")).options.link
                        assert (link.bucket, link.name) == ("baton-bodies", output)  # any replica reads it
                        assert (await store.get(output)).data == body + p.name.encode()
                else:
                    assert result.WhichOneof("result") == "error"
                    assert "does not match its digest" in result.error
                    for output in outputs:  # nothing of the refused segment is left, or served
                        with pytest.raises(nats.js.errors.NotFoundError):
                            await store.get_info(output)
                    for path in paths:
                        got = await in_thread(client.get, f"{info.transcoder}/stream/{path}")
                        assert got.status_code == 404
                # Only the served names are readable: never a job's objects by their own names.
                for name in (*outputs, f"{job.job_id}/in"):
                    got = await in_thread(client.get, f"{info.transcoder}/stream/{name}")
                    assert got.status_code == 404
            await in_thread(gateway.end_session, info.auth_token)
        finally:
            await transcoder.stop()


async def test_ping_offchain_answers_an_empty_signature(gateway: TestGateway) -> None:
    assert await in_thread(gateway.ping, b"hello") == b""


async def test_offchain_any_request_signature_is_accepted(gateway: TestGateway) -> None:
    for kwargs in ({"signed": True}, {"sig": b"\x01" * 65}, {"signed": False}):
        assert (await in_thread(gateway.get_orchestrator, **kwargs)).auth_token.session_id


_ = (base64, ssl, grpc, httpx)


async def test_baton_try_runs_a_first_job(offchain: RunningNegotiator, worker: TestWorker, tmp_path) -> None:  # noqa: ANN001
    import subprocess
    import sys

    run = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "baton_cli", "try", "text-to-image", "--model", "echo-model",
                         "--param", "prompt=a cat", "--orchestrator", f"127.0.0.1:{offchain.grpc_port}",
                         "--out", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "GetOrchestrator" in run.stdout and "offchain" in run.stdout
    assert json.loads((tmp_path / "output.json").read_text())["images"][0]["url"].startswith("data:image/png")
    refused = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "baton_cli", "try", "text-to-image", "--model", "nobody",
                         "--orchestrator", f"127.0.0.1:{offchain.grpc_port}", "--param", "prompt=x",
                         "--out", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and "refused: 503 insufficient capacity" in refused.stderr


async def test_baton_try_transcodes_a_file(offchain: RunningNegotiator, module_nc, workers_kv, tmp_path) -> None:  # noqa: ANN001
    import subprocess
    import sys

    transcoder = await TestWorker(module_nc, workers_kv, "tc-try", kind="transcode", models=(("transcode", ""),)).start()
    await asyncio.sleep(0.3)
    try:
        segment = tmp_path / "segment.ts"
        segment.write_bytes(b"\x47" * 188 * 8)
        run = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "baton_cli", "try", "transcode", str(segment),
                             "--orchestrator", f"127.0.0.1:{offchain.grpc_port}", "--out", str(tmp_path / "out")],
            capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        assert "GetOrchestrator" in run.stdout and f"({426 * 240 * 2} pixels)" in run.stdout
        # The echo worker's rendition: the segment, then the profile's name.
        assert (tmp_path / "out" / "rendition0.ts").read_bytes() == segment.read_bytes() + b"P240p30fps16x9"
    finally:
        await transcoder.stop()
    missing = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "baton_cli", "try", "transcode",
                         "--orchestrator", f"127.0.0.1:{offchain.grpc_port}", "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1 and "needs a segment file" in missing.stderr


def png(width: int, height: int, pad: int = 0) -> bytes:
    """A real PNG of that size, padded after its end to make a large upload."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height)).save(buf, "PNG")
    return buf.getvalue() + b"\x00" * pad


@pytest.mark.parametrize("pad", [0, 700 * 1024])
async def test_image_to_image_multipart_bills_the_input_size(gateway: TestGateway, worker: TestWorker,
                                                             pad: int) -> None:
    import hashlib

    info = await in_thread(gateway.get_orchestrator, signed=False)
    seg = gateway.segment_header(info, manifest=b"28_echo-model", signed=False)
    image = png(640, 480, pad)
    with gateway.http() as client:
        r = await in_thread(client.post, f"{info.transcoder}/image-to-image", headers={"Livepeer-Segment": seg},
                            data={"prompt": "make it blue", "model_id": "echo-model", "num_images_per_prompt": "2"},
                            files={"image": ("in.png", image, "image/png")})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["echo"]["strength"] == 0.8 and doc["echo"]["num_images_per_prompt"] == 2  # OpenAPI defaults filled
    assert (doc["input_bytes"], doc["input_sha256"]) == (len(image), hashlib.sha256(image).hexdigest())
    assert worker.jobs[-1].billed_units == 640 * 480 * 2
    assert (worker.jobs[-1].body_ref is not None) == (pad > 0)  # above 512 KiB through baton-bodies


async def test_multipart_without_its_file_or_with_a_non_image_is_400(gateway: TestGateway, worker: TestWorker) -> None:
    info = await in_thread(gateway.get_orchestrator, signed=False)
    seg = gateway.segment_header(info, manifest=b"28_echo-model", signed=False)
    with gateway.http() as client:
        r = await in_thread(client.post, f"{info.transcoder}/image-to-image", headers={"Livepeer-Segment": seg},
                            data={"prompt": "x", "model_id": "echo-model"}, files={"other": ("a", b"1", "text/plain")})
        assert (r.status_code, r.text) == (400, "invalid request: the image file is required\n")
        r = await in_thread(client.post, f"{info.transcoder}/image-to-image", headers={"Livepeer-Segment": seg},
                            data={"prompt": "x", "model_id": "echo-model"}, files={"image": ("a.gif", b"GIF89a", "image/gif")})
        assert r.status_code == 400 and "not a PNG, JPEG or WebP" in r.text
