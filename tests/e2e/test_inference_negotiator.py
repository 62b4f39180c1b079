"""Issue 10 end to end: every AI pipeline from the test gateway through the real negotiator to the real Triton.

The negotiator runs offchain as a process on the session's nats-server, where
the session's inference service (tests/inference/conftest.py: one real
tritonserver, the demo set loaded once) advertises its warm demo models. The
test gateway (tests/negotiator/gateway.py, grpcio, the certificate pinned)
asks GetOrchestrator for the capabilities, then posts each pipeline's request
as a go-livepeer gateway does (JSON, or multipart with the file), and checks
the answer against the pipeline's type in ``baton_common.schemas.ai``. Media
come back as ``data:`` URLs (images, for a gateway that is not an AI worker)
or ``/stream`` URLs the test fetches (audio, video). The LLM streams SSE.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import msgspec
import numpy as np
import pytest
from PIL import Image

from baton_common.proto import lp_rpc_pb2
from baton_common.schemas import ai
from baton_inference.demo import DEMO_MODELS
from tests.inference.conftest import Running, demo, inference_state, triton  # noqa: F401 - the session's fixtures
from tests.inference.test_jobs import png, wav
from tests.negotiator.conftest import RunningNegotiator, start_negotiator
from tests.negotiator.gateway import TestGateway, ai_caps

CAPABILITY = {"text-to-image": 27, "image-to-image": 28, "image-to-video": 29, "upscale": 30, "audio-to-text": 31,
              "segment-anything-2": 32, "llm": 33, "image-to-text": 34, "text-to-speech": 36}


@pytest.fixture(scope="module")
async def negotiator(nats_url: str, demo: Running,  # noqa: F811 - the imported fixture
                     tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningNegotiator]:
    # every demo model warm (after tests/inference killed Triton, the manager may still be reloading some)
    await demo.wait_served(set(DEMO_MODELS.items()), timeout=400)
    running = start_negotiator(nats_url, tmp_path_factory.mktemp("negotiator-inference"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def gateway(negotiator: RunningNegotiator) -> Iterator[TestGateway]:
    gw = TestGateway("127.0.0.1", negotiator.grpc_port)
    yield gw
    gw.close()


async def orchestrator(gw: TestGateway, pipeline: str, timeout: float = 15) -> lp_rpc_pb2.OrchestratorInfo:
    """GetOrchestrator with the gateway's caps for the demo model, once the negotiator lists it warm."""
    capability, model = CAPABILITY[pipeline], DEMO_MODELS[pipeline]
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        info = await asyncio.to_thread(gw.get_orchestrator, caps=ai_caps(capability, model), signed=False)
        models = info.capabilities.constraints.PerCapability[capability].models
        if (model in models and models[model].warm) or asyncio.get_running_loop().time() > deadline:
            return info
        await asyncio.sleep(0.2)


async def post(gw: TestGateway, pipeline: str, *, json_body: dict | None = None, data: dict | None = None,
               files: dict | None = None, headers: dict | None = None, busy_for: float = 30) -> httpx.Response:
    """The job as a gateway sends it; a 503 (no free slot) is retried for ``busy_for`` s, as a gateway retries.

    Once in a full CI run the segment-anything-2 demo model answered 503 for several seconds (cause not found:
    see the issue note); a model that never comes back still fails the test."""
    manifest = f"{CAPABILITY[pipeline]}_{DEMO_MODELS[pipeline]}".encode()
    deadline = asyncio.get_running_loop().time() + busy_for
    while True:
        info = await orchestrator(gw, pipeline)
        seg = gw.segment_header(info, manifest=manifest, signed=False)
        with gw.http() as client:
            r = await asyncio.to_thread(
                client.post, f"{info.transcoder}/{pipeline}", json=json_body, data=data, files=files,
                headers={"Livepeer-Payment": "", "Livepeer-Segment": seg, **(headers or {})}, timeout=120,
            )
        if r.status_code != 503 or asyncio.get_running_loop().time() > deadline:
            return r
        await asyncio.sleep(0.5)


def typed(r: httpx.Response, type_: type) -> msgspec.Struct:
    assert r.status_code == 200, r.text
    return msgspec.json.decode(r.content, type=type_)


def image_of(url: str) -> Image.Image:
    assert url.startswith("data:image/png;base64,"), url[:60]
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))


async def fetch(gw: TestGateway, url: str) -> bytes:
    with gw.http() as client:
        got = await asyncio.to_thread(client.get, url)
    assert got.status_code == 200, url
    return got.content


def model(pipeline: str) -> dict[str, str]:
    return {"model_id": DEMO_MODELS[pipeline]}


async def test_the_negotiator_advertises_every_warm_demo_model(gateway: TestGateway) -> None:
    info = await orchestrator(gateway, "segment-anything-2")
    for pipeline, capability in CAPABILITY.items():
        entry = info.capabilities.constraints.PerCapability[capability].models[DEMO_MODELS[pipeline]]
        assert entry.warm and entry.capacity == 1, pipeline


async def test_text_to_image(gateway: TestGateway) -> None:
    r = await post(gateway, "text-to-image", json_body={
        "prompt": "a fox", "height": 64, "width": 48, "num_inference_steps": 2, "seed": 4, **model("text-to-image")})
    [media] = typed(r, ai.ImageResponse).images
    assert media.seed == 4 and image_of(media.url).size == (48, 64)


async def test_image_to_image_as_an_ai_worker_gets_stream_urls(gateway: TestGateway) -> None:
    r = await post(gateway, "image-to-image", data={"prompt": "blue", "num_inference_steps": "2", "strength": "0.5",
                                                    "seed": "2", **model("image-to-image")},
                   files={"image": ("in.png", png(40, 32), "image/png")},
                   headers={"Authorization": "Livepeer-AI-Worker-1.0"})
    [media] = typed(r, ai.ImageResponse).images
    assert "/stream/" in media.url and media.url.endswith("/image-0.png")  # go-livepeer: URLs for AI workers
    assert Image.open(io.BytesIO(await fetch(gateway, media.url))).size == (40, 32)


async def test_upscale(gateway: TestGateway) -> None:
    r = await post(gateway, "upscale", data={"prompt": "sharp", "num_inference_steps": "2", **model("upscale")},
                   files={"image": ("in.png", png(24, 16), "image/png")})
    [media] = typed(r, ai.ImageResponse).images
    assert image_of(media.url).size == (96, 64)


async def test_image_to_video_is_an_mp4_under_stream(gateway: TestGateway, tmp_path: Path) -> None:
    r = await post(gateway, "image-to-video", data={"height": "32", "width": "48", "num_inference_steps": "2",
                                                    "fps": "8", **model("image-to-video")},
                   files={"image": ("in.png", png(40, 30), "image/png")})
    response = typed(r, ai.VideoResponse)
    [[video]] = response.frames
    assert response.images == (video,) and video.url.endswith("/video-0.mp4")
    clip = tmp_path / "v.mp4"
    clip.write_bytes(await fetch(gateway, video.url))
    probe = json.loads(subprocess.run(["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(clip)],
                                      capture_output=True, check=True).stdout)
    [stream] = probe["streams"]
    assert (stream["codec_name"], stream["width"], stream["height"], stream["r_frame_rate"]) == ("h264", 48, 32, "8/1")


async def test_audio_to_text_with_word_timestamps(gateway: TestGateway) -> None:
    r = await post(gateway, "audio-to-text", data={"return_timestamps": "word", **model("audio-to-text")},
                   files={"audio": ("in.wav", wav(2.2), "audio/wav")})
    response = typed(r, ai.TextResponse)
    assert response.chunks and all(len(c.timestamp) == 2 for c in response.chunks)


async def test_segment_anything_2(gateway: TestGateway) -> None:
    r = await post(gateway, "segment-anything-2", data={"point_coords": "[[10, 10]]", "point_labels": "[1]",
                                                        "multimask_output": "false", **model("segment-anything-2")},
                   files={"image": ("in.png", png(40, 30), "image/png")})
    response = typed(r, ai.MasksResponse)
    assert np.asarray(json.loads(response.masks)).shape == (1, 30, 40)
    assert np.asarray(json.loads(response.scores)).shape == (1,)


async def test_image_to_text(gateway: TestGateway) -> None:
    r = await post(gateway, "image-to-text", data=model("image-to-text"),
                   files={"image": ("in.png", png(32, 32), "image/png")})
    assert isinstance(typed(r, ai.ImageToTextResponse).text, str)


async def test_text_to_speech_is_a_wav_under_stream(gateway: TestGateway) -> None:
    r = await post(gateway, "text-to-speech", json_body={"text": "hello there", **model("text-to-speech")})
    response = typed(r, ai.AudioResponse)
    assert "/stream/" in response.audio.url
    assert (await fetch(gateway, response.audio.url))[:4] == b"RIFF"


async def test_llm_streams_tokens_as_server_sent_events(gateway: TestGateway) -> None:
    r = await post(gateway, "llm", json_body={"model": DEMO_MODELS["llm"], "stream": True, "max_tokens": 5,
                                              "messages": [{"role": "user", "content": "hello"}]})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream"), r.text
    events = [line[6:] for line in r.text.split("\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [msgspec.json.decode(e, type=ai.LLMResponse) for e in events[:-1]]
    assert len(chunks) >= 2 and all(c.choices[0].delta is not None for c in chunks)  # text pieces, then the finish
    assert "".join(c.choices[0].delta.content for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "length" and chunks[-1].usage.completion_tokens == 5


async def test_llm_without_stream_is_one_answer(gateway: TestGateway) -> None:
    r = await post(gateway, "llm", json_body={"model": DEMO_MODELS["llm"], "max_tokens": 3,
                                              "messages": [{"role": "user", "content": "hi"}]})
    whole = typed(r, ai.LLMResponse)
    assert whole.choices[0].message is not None and whole.usage.completion_tokens <= 3


@pytest.mark.parametrize(
    ("pipeline", "data", "files", "words"),
    [
        # The negotiator measures the audio before it reserves its cost: go-livepeer's text for one it cannot.
        ("audio-to-text", {}, {"audio": ("a.wav", b"RIFF....WAVEnope", "audio/wav")}, "Unable to calculate duration"),
        ("segment-anything-2", {}, {"image": ("a.png", png(16, 16), "image/png")}, "send a prompt"),
        ("upscale", {}, {"image": ("a.png", png(16, 16), "image/png")}, "prompt"),
        ("image-to-video", {}, {"image": ("a.gif", b"GIF89a", "image/gif")}, "image"),
    ],
)
async def test_bad_input_is_a_400_and_the_worker_keeps_serving(gateway: TestGateway, pipeline: str, data: dict,
                                                               files: dict, words: str) -> None:
    r = await post(gateway, pipeline, data={**data, **model(pipeline)}, files=files)
    assert r.status_code == 400 and words in r.text, r.text
    r = await post(gateway, "image-to-text", data=model("image-to-text"),
                   files={"image": ("in.png", png(16, 16), "image/png")})
    assert r.status_code == 200, r.text


async def test_a_result_too_big_to_ride_inline_still_arrives(gateway: TestGateway) -> None:
    # 3 masks of 220 x 220 logits as JSON text: about 1 MB, through the baton-bodies object store
    r = await post(gateway, "segment-anything-2", data={"box": "[10, 10, 200, 200]", **model("segment-anything-2")},
                   files={"image": ("in.png", png(220, 220), "image/png")})
    response = typed(r, ai.MasksResponse)
    assert np.asarray(json.loads(response.masks)).shape == (3, 220, 220)
