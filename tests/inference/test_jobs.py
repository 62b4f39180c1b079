"""Every demo pipeline end to end over the bus, and bad input: a test client stands in for the negotiator."""

from __future__ import annotations

import base64
import io
import time
import uuid

import msgspec
import pytest
from PIL import Image

from baton_common.schemas import ai, decode, encode
from baton_common.schemas.jobs import JobChunk, JobError, JobReply, JobRequest, JobResult
from baton_inference.demo import DEMO_MODELS

from .conftest import Running


async def job(w: Running, pipeline: str, params: dict, body: bytes = b"", *, stream: bool = False,
              model_id: str | None = None, timeout: float = 60) -> list[JobReply]:
    """Send one JobRequest; every reply until the JobResult or JobError."""
    req = JobRequest(job_id=uuid.uuid4().hex, kind="inference", pipeline=pipeline,
                     model_id=DEMO_MODELS.get(pipeline, "") if model_id is None else model_id,
                     deadline=time.time() + timeout, params=params, body=body, stream=stream)
    inbox = w.nc.new_inbox()
    sub = await w.nc.subscribe(inbox)
    await w.nc.publish(w.subject, encode(req), reply=inbox)
    replies: list[JobReply] = []
    try:
        while True:
            msg = await sub.next_msg(timeout=timeout)
            reply = decode(msg.data, JobReply)
            replies.append(reply)
            if not isinstance(reply, JobChunk):
                return replies
    finally:
        await sub.unsubscribe()


def png(width: int, height: int, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buf, format=fmt)
    return buf.getvalue()


def result_of(replies: list[JobReply], type_: type) -> msgspec.Struct:
    last = replies[-1]
    assert isinstance(last, JobResult), last
    return msgspec.json.decode(last.data, type=type_)


async def test_text_to_image(demo: Running) -> None:
    replies = await job(demo, "text-to-image",
                        {"prompt": "a red fox", "height": 64, "width": 48, "num_inference_steps": 2, "seed": 7,
                         "num_images_per_prompt": 2})
    response = result_of(replies, ai.ImageResponse)
    assert [m.seed for m in response.images] == [7, 8]
    for media in response.images:
        assert media.url.startswith("data:image/png;base64,") and media.nsfw is False
        image = Image.open(io.BytesIO(base64.b64decode(media.url.split(",", 1)[1])))
        assert image.size == (48, 64)


async def test_image_to_image(demo: Running) -> None:
    replies = await job(demo, "image-to-image", {"prompt": "make it blue", "num_inference_steps": 2, "strength": 0.5,
                                                 "seed": 3}, png(40, 32))
    [media] = result_of(replies, ai.ImageResponse).images
    assert media.seed == 3
    assert Image.open(io.BytesIO(base64.b64decode(media.url.split(",", 1)[1]))).size == (40, 32)


async def test_llm_streams_tokens(demo: Running) -> None:
    replies = await job(demo, "llm", {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 6,
                                      "stream": True}, stream=True)
    chunks = [r for r in replies if isinstance(r, JobChunk)]
    assert chunks and [c.seq for c in chunks] == list(range(len(chunks)))
    events = [msgspec.json.decode(c.data, type=ai.LLMResponse) for c in chunks]
    assert all(e.choices[0].delta is not None for e in events)
    whole = result_of(replies, ai.LLMResponse)
    assert whole.choices[0].message.content == "".join(e.choices[0].delta.content for e in events)
    assert whole.usage.completion_tokens == 6 and whole.choices[0].finish_reason == "length"


async def test_llm_without_stream_answers_once(demo: Running) -> None:
    replies = await job(demo, "llm", {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3})
    assert len(replies) == 1
    whole = result_of(replies, ai.LLMResponse)
    assert whole.usage.prompt_tokens > 0 and whole.usage.completion_tokens <= 3


async def test_image_to_text(demo: Running) -> None:
    response = result_of(await job(demo, "image-to-text", {"prompt": ""}, png(40, 30)), ai.ImageToTextResponse)
    assert isinstance(response.text, str)


async def test_text_to_speech(demo: Running) -> None:
    response = result_of(await job(demo, "text-to-speech", {"text": "hello there"}), ai.AudioResponse)
    assert response.audio.url.startswith("data:audio/wav;base64,")
    assert base64.b64decode(response.audio.url.split(",", 1)[1])[:4] == b"RIFF"


@pytest.mark.parametrize(
    ("pipeline", "params", "body", "code", "words"),
    [
        ("image-to-text", {}, b"GIF89a not really", "bad_input", "not a"),
        ("image-to-text", {}, b"", "bad_input", "missing image"),
        ("image-to-image", {"prompt": "x"}, b"not an image", "bad_input", "not a"),
        ("image-to-image", {}, b"", "bad_input", "prompt"),
        ("text-to-image", {"height": 64}, b"", "bad_input", "prompt"),
        ("text-to-image", {"prompt": "x", "height": "tall"}, b"", "bad_input", "height"),
        ("llm", {"messages": []}, b"", "bad_input", "messages"),
        ("text-to-speech", {"text": ""}, b"", "bad_input", "text is required"),
    ],
)
async def test_bad_input_gets_a_clear_error(demo: Running, pipeline: str, params: dict, body: bytes, code: str,
                                            words: str) -> None:
    [reply] = await job(demo, pipeline, params, body)
    assert isinstance(reply, JobError) and reply.code == code and words in reply.message, reply
    assert not reply.retryable


async def test_oversized_and_wrong_format_images(demo: Running) -> None:
    limit = demo.service.settings.max_image_pixels
    side = int(limit**0.5) + 8
    [reply] = await job(demo, "image-to-text", {}, png(side, side, "PNG"))
    assert isinstance(reply, JobError) and reply.code == "bad_input" and "pixels" in reply.message
    tiff = io.BytesIO()
    Image.new("RGB", (8, 8)).save(tiff, format="TIFF")
    [reply] = await job(demo, "image-to-text", {}, tiff.getvalue())
    assert isinstance(reply, JobError) and "TIFF" in reply.message
    # the worker keeps serving
    assert isinstance((await job(demo, "image-to-text", {}, png(16, 16)))[-1], JobResult)


async def test_unknown_model_is_not_loaded(demo: Running) -> None:
    [reply] = await job(demo, "text-to-image", {"prompt": "x"}, model_id="nobody/nothing")
    assert isinstance(reply, JobError) and reply.code == "model_not_loaded" and reply.retryable
