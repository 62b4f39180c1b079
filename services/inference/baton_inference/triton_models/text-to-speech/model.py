"""text-to-speech: transformers' VitsModel (MMS-TTS), answered as a WAV data URL."""

from __future__ import annotations

import io
import wave
from typing import Any

from baton_model import BadInput, data_url, triton_model

MAX_CHARACTERS = 10_000


class Runner:
    def load(self, settings: Any) -> None:
        import torch
        from transformers import AutoTokenizer, VitsModel

        self.torch = torch
        self.settings = settings
        self.tokenizer = AutoTokenizer.from_pretrained(settings.weights)
        self.model = VitsModel.from_pretrained(settings.weights).to(settings.device).eval()

    def run(self, params: dict[str, Any], body: bytes) -> dict[str, Any]:
        text = params.get("text") or ""
        if not text.strip():
            raise BadInput("text is required")
        if len(text) > MAX_CHARACTERS:
            raise BadInput(f"text has {len(text)} characters; at most {MAX_CHARACTERS}")
        inputs = self.tokenizer(text, return_tensors="pt").to(self.settings.device)
        if inputs["input_ids"].shape[-1] == 0:
            raise BadInput("text has no character this voice can speak")
        with self.torch.inference_mode():
            waveform = self.model(**inputs).waveform[0].float().cpu().numpy()
        pcm = (waveform.clip(-1, 1) * 32767).astype("<i2").tobytes()
        buf = io.BytesIO()
        with wave.open(buf, "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(self.model.config.sampling_rate)
            wav.writeframes(pcm)
        return {"audio": {"url": data_url(buf.getvalue(), "audio/wav")}}


TritonPythonModel = triton_model(Runner)
