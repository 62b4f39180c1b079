"""audio-to-text: Whisper through transformers' AutoModelForSpeechSeq2Seq, AutoProcessor and the ASR pipeline.

The upload is decoded by ffmpeg (the demuxers in ``FORMATS`` only, from a
temporary file, no other protocol: a playlist cannot make it read anything
else) to 16 kHz mono, cut into 30 s chunks by the pipeline, with segment
(``return_timestamps=true``) or word (``word``) timestamps. The answer carries
the duration it decoded (at most ``max_audio_seconds``, the setting) (``baton.units``, whole seconds x 1000, at least
1000): what the job is billed by. Audio that decodes longer than the job may (``baton_paid_seconds``, the
worker's: what the negotiator reserved from the container's duration) is refused.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from typing import Any

import numpy as np
from baton_model import BadInput, triton_model

RATE = 16_000
FORMATS = "wav,mp3,flac,ogg,mov,mp4,m4a,matroska,webm,aac"
"""The ffmpeg demuxers accepted (WAV, MP3, FLAC, Ogg/Opus/Vorbis, MP4/M4A/MOV, Matroska/WebM, ADTS AAC)."""
TIMESTAMPS = {"true": True, "sentence": True, "false": False, "word": "word"}


def decode_audio(body: bytes, max_seconds: float, paid_seconds: float | None = None) -> np.ndarray:
    """The audio as 16 kHz mono float32; BadInput when it is missing, not audio, or too long (for the setting
    ``max_seconds``, or for the ``paid_seconds`` the job may decode, from the duration its container declared)."""
    limit = max_seconds if paid_seconds is None else min(max_seconds, paid_seconds)
    if not body:
        raise BadInput("missing audio: send the audio file")
    with tempfile.NamedTemporaryFile(suffix=".audio") as src:
        src.write(body)
        src.flush()
        done = subprocess.run(
            ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-protocol_whitelist", "file",
             "-format_whitelist", FORMATS, "-i", src.name, "-t", str(limit + 1), "-vn", "-f", "f32le",
             "-ac", "1", "-ar", str(RATE), "pipe:1"],
            capture_output=True, timeout=600, check=False,
        )
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip().splitlines()
        raise BadInput(f"the audio could not be decoded ({reason[-1][-200:] if reason else 'ffmpeg failed'}); "
                       "send WAV, MP3, FLAC, Ogg, M4A/MP4, WebM or AAC")
    samples = np.frombuffer(done.stdout, dtype=np.float32)
    if samples.size == 0:
        raise BadInput("the file holds no audio")
    if samples.size > limit * RATE:
        if limit < max_seconds:
            raise BadInput(f"the audio is longer than the {paid_seconds:g} s this job was paid for (from the "
                           "duration its container declares); send a file whose header gives its true duration")
        raise BadInput(f"the audio is longer than {max_seconds:g} s")
    return samples


def billed_ms(samples: int) -> int:
    """go-livepeer's unit: whole seconds x 1000 (a clip under a second counts as one)."""
    return max(1, samples // RATE) * 1000


class Runner:
    def load(self, settings: Any) -> None:
        import torch
        from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor, pipeline

        self.settings = settings
        dtype = torch.float16 if settings.device == "cuda" else torch.float32
        processor = AutoProcessor.from_pretrained(settings.weights)
        # eager attention: word timestamps read the cross-attention weights
        model = AutoModelForSpeechSeq2Seq.from_pretrained(settings.weights, dtype=dtype, attn_implementation="eager")
        self.pipe = pipeline(
            "automatic-speech-recognition", model=model.to(settings.device), tokenizer=processor.tokenizer,
            feature_extractor=processor.feature_extractor, chunk_length_s=30, batch_size=8, device=settings.device,
            ignore_warning=True,
        )

    def run(self, params: dict[str, Any], body: bytes) -> dict[str, Any]:
        mode = str(params.get("return_timestamps", "true")).strip().lower()
        if mode not in TIMESTAMPS:
            raise BadInput(f"return_timestamps must be one of {', '.join(TIMESTAMPS)}, got {mode!r}")
        try:
            json.loads(params.get("metadata") or "{}")
        except ValueError:
            raise BadInput("metadata is not JSON") from None
        paid = params.get("baton_paid_seconds")  # the worker's (AUDIO_LIMIT_KEY, JobRequest.max_units), never the gateway's
        audio = decode_audio(body, self.settings.max_audio_seconds, float(paid) if paid else None)
        out = self.pipe({"raw": audio, "sampling_rate": RATE}, return_timestamps=TIMESTAMPS[mode])
        chunks = [{"timestamp": list(c.get("timestamp") or (None, None)), "text": c.get("text", "")}
                  for c in out.get("chunks") or ()]
        return {"text": out.get("text", ""), "chunks": chunks, "baton": {"units": billed_ms(audio.size)}}


TritonPythonModel = triton_model(Runner)
