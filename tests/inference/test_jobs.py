"""Every demo pipeline end to end over the bus, and bad input: a test client stands in for the negotiator."""

from __future__ import annotations

import base64
import io
import json
import struct
import subprocess
import time
import uuid
import wave

import msgspec
import numpy as np
import pytest
from PIL import Image

from baton_common.schemas import ai, decode, encode
from baton_common.schemas.jobs import JobChunk, JobError, JobReply, JobRequest, JobResult
from baton_inference.demo import DEMO_MODELS

from .conftest import Running


async def job(w: Running, pipeline: str, params: dict, body: bytes = b"", *, stream: bool = False,
              model_id: str | None = None, timeout: float = 60, max_units: int = 0) -> list[JobReply]:
    """Send one JobRequest; every reply until the JobResult or JobError."""
    req = JobRequest(job_id=uuid.uuid4().hex, kind="inference", pipeline=pipeline,
                     model_id=DEMO_MODELS.get(pipeline, "") if model_id is None else model_id,
                     deadline=time.time() + timeout, params=params, body=body, stream=stream,
                     max_units=max_units)
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
    """The JobResult's JSON as ``type_``, each url naming a result file put back as that file's data: URL."""
    last = replies[-1]
    assert isinstance(last, JobResult), last
    files = {o.name: f"data:{o.content_type};base64,{base64.b64encode(o.data).decode()}"
             for o in last.outputs if o.ref is None}
    doc = json.loads(last.data)
    return msgspec.convert(_urls(doc, files), type=type_)


def _urls(doc: object, files: dict[str, str]) -> object:
    if isinstance(doc, dict):
        return {k: files.get(v, v) if k == "url" and isinstance(v, str) else _urls(v, files) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_urls(v, files) for v in doc]
    return doc


def wav(seconds: float, rate: int = 16_000) -> bytes:
    """A 440 Hz tone as a 16-bit mono WAV."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        t = np.arange(int(seconds * rate)) / rate
        out.writeframes((np.sin(2 * np.pi * 440 * t) * 8000).astype("<i2").tobytes())
    return buf.getvalue()


def media_bytes(url: str, content_type: str) -> bytes:
    prefix = f"data:{content_type};base64,"
    assert url.startswith(prefix), url[:40]
    return base64.b64decode(url[len(prefix):])


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
    assert chunks[-1].data == "[DONE]"  # as ai-runner ends its stream
    events = [msgspec.json.decode(c.data, type=ai.LLMResponse) for c in chunks[:-1]]
    assert all(e.choices[0].delta is not None for e in events)
    assert events[-1].choices[0].finish_reason == "length" and events[-1].usage.completion_tokens == 6
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


async def test_audio_to_text_segments_words_and_units(demo: Running, tmp_path) -> None:
    for mode in ("true", "word"):
        replies = await job(demo, "audio-to-text", {"return_timestamps": mode}, wav(2.5))
        response = result_of(replies, ai.TextResponse)
        assert isinstance(response.text, str) and response.chunks
        for chunk in response.chunks:
            assert len(chunk.timestamp) == 2 and isinstance(chunk.text, str)
        assert replies[-1].units == 2000  # whole seconds x 1000, as go-livepeer bills audio
    # MP3 goes through ffmpeg too; no timestamps: no chunks
    mp3 = tmp_path / "a.mp3"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "sine=frequency=300:duration=3.4",
                    str(mp3)], check=True)
    replies = await job(demo, "audio-to-text", {"return_timestamps": "false"}, mp3.read_bytes())
    assert result_of(replies, ai.TextResponse).chunks == () and replies[-1].units == 3000


async def test_upscale(demo: Running) -> None:
    replies = await job(demo, "upscale", {"prompt": "sharper", "num_inference_steps": 2, "seed": 5}, png(24, 16))
    [media] = result_of(replies, ai.ImageResponse).images
    assert media.seed == 5 and media.nsfw is False
    assert Image.open(io.BytesIO(media_bytes(media.url, "image/png"))).size == (96, 64)  # x4


async def test_image_to_video_is_an_mp4(demo: Running, tmp_path) -> None:
    replies = await job(demo, "image-to-video", {"height": 32, "width": 48, "num_inference_steps": 2, "fps": 6,
                                                 "seed": 9}, png(40, 30))
    response = result_of(replies, ai.VideoResponse)
    [[video]] = response.frames
    assert response.images == (video,) and video.seed == 9
    assert replies[-1].outputs[0].name == "video-0.mp4" and len(replies[-1].outputs) == 1
    clip = tmp_path / "v.mp4"
    clip.write_bytes(media_bytes(video.url, "video/mp4"))
    probe = json.loads(subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-show_streams", "-of", "json",
                                       str(clip)], capture_output=True, check=True).stdout)
    [stream] = probe["streams"]
    assert (stream["codec_name"], stream["width"], stream["height"]) == ("h264", 48, 32)
    assert int(stream["nb_read_frames"]) == 6 and stream["r_frame_rate"] == "6/1"


async def test_segment_anything_2(demo: Running) -> None:
    replies = await job(demo, "segment-anything-2", {"point_coords": "[[10, 12], [30, 20]]", "point_labels": "[1, 0]",
                                                     "box": "[2, 2, 38, 28]"}, png(40, 30))
    response = result_of(replies, ai.MasksResponse)
    masks, scores, logits = (json.loads(x) for x in (response.masks, response.scores, response.logits))
    assert np.asarray(masks).shape == (3, 30, 40)  # multimask: three masks at the image's size
    assert np.asarray(scores).shape == (3,) and np.asarray(logits).shape == (3, 16, 16)
    replies = await job(demo, "segment-anything-2", {"box": "[2, 2, 38, 28]", "multimask_output": False,
                                                     "return_logits": False}, png(40, 30))
    masks = np.asarray(json.loads(result_of(replies, ai.MasksResponse).masks))
    assert masks.shape == (1, 30, 40) and set(np.unique(masks)) <= {0, 1}


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
        ("audio-to-text", {}, b"", "bad_input", "missing audio"),
        ("audio-to-text", {}, b"RIFF....WAVEnot really audio", "bad_input", "could not be decoded"),
        ("audio-to-text", {}, b"#EXTM3U\n#EXTINF:1,\n/etc/passwd\n", "bad_input", "could not be decoded"),
        ("audio-to-text", {"return_timestamps": "maybe"}, wav(0.5), "bad_input", "return_timestamps"),
        ("upscale", {}, b"", "bad_input", "prompt"),
        ("upscale", {"prompt": "x"}, b"%PDF-1.4", "bad_input", "not a"),
        ("image-to-video", {}, b"", "bad_input", "missing image"),
        ("image-to-video", {"height": 30}, png(16, 16), "bad_input", "multiples of 8"),
        ("segment-anything-2", {}, png(16, 16), "bad_input", "send a prompt"),
        ("segment-anything-2", {"point_coords": "[[1, 2]]"}, png(16, 16), "bad_input", "point_labels is required"),
        ("segment-anything-2", {"point_coords": "[1, 2", "point_labels": "[1]"}, png(16, 16), "bad_input",
         "not JSON"),
        ("segment-anything-2", {"box": "[5, 5, 1, 1]"}, png(16, 16), "bad_input", "x1 <= x2"),
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
    for pipeline, params in (("upscale", {"prompt": "x"}), ("image-to-video", {}),
                             ("segment-anything-2", {"box": "[0, 0, 4, 4]"})):
        [reply] = await job(demo, pipeline, params, png(side, side, "PNG"))
        assert isinstance(reply, JobError) and reply.code == "bad_input" and "pixels" in reply.message, reply


async def test_overlong_audio_is_refused_and_the_worker_keeps_serving(demo: Running, tmp_path) -> None:
    limit = demo.service.settings.max_audio_seconds
    long = tmp_path / "long.mp3"  # silence at 8 kbit/s: a small upload, too long to transcribe
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono",
                    "-t", str(limit + 5), "-b:a", "8k", str(long)], check=True)
    [reply] = await job(demo, "audio-to-text", {}, long.read_bytes())
    assert isinstance(reply, JobError) and reply.code == "bad_input" and "longer than" in reply.message, reply
    assert isinstance((await job(demo, "audio-to-text", {}, wav(1.0)))[-1], JobResult)


def lying_mka(seconds: int, declared_ms: float) -> bytes:
    """A Matroska file of ``seconds`` of 8 kHz silence whose header declares ``declared_ms``."""
    data = subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono",
                           "-t", str(seconds), "-c:a", "pcm_s16le", "-f", "matroska", "pipe:1"],
                          capture_output=True, check=True).stdout
    at = data.find(b"\x44\x89\x88")  # Segment Info's Duration: an 8-byte float, in ms at the default scale
    assert at > 0
    return data[:at + 3] + struct.pack(">d", declared_ms) + data[at + 11:]


async def test_audio_longer_than_its_container_declares_is_refused_not_transcribed_for_free(demo: Running) -> None:
    """The negotiator reserves (and a go-livepeer gateway pays) the container's duration as ffprobe reads it, and
    sends the seconds the job may decode (max_units): a file declaring 1 s that holds 20 s is refused, whatever
    limit the gateway writes into its own fields."""
    lying = lying_mka(20, 1000.0)
    [reply] = await job(demo, "audio-to-text", {"baton_paid_seconds": 10**6}, lying, max_units=2000)
    assert isinstance(reply, JobError) and reply.code == "bad_input", reply
    assert "longer than the 2 s this job was paid for" in reply.message
    ran = (await job(demo, "audio-to-text", {}, lying, max_units=21_000))[-1]  # paid for its true length: it runs
    assert isinstance(ran, JobResult) and ran.units == 20_000, ran


async def test_unknown_model_is_not_loaded(demo: Running) -> None:
    [reply] = await job(demo, "text-to-image", {"prompt": "x"}, model_id="nobody/nothing")
    assert isinstance(reply, JobError) and reply.code == "model_not_loaded" and reply.retryable
