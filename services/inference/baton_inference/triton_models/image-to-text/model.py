"""image-to-text: transformers' BlipForConditionalGeneration with its BlipProcessor."""

from __future__ import annotations

from typing import Any

from baton_model import open_image, triton_model


class Runner:
    def load(self, settings: Any) -> None:
        import torch
        from transformers import BlipForConditionalGeneration, BlipProcessor

        self.torch = torch
        self.settings = settings
        self.processor = BlipProcessor.from_pretrained(settings.weights)
        self.model = BlipForConditionalGeneration.from_pretrained(settings.weights).to(settings.device).eval()

    def run(self, params: dict[str, Any], body: bytes) -> dict[str, Any]:
        image = open_image(body, self.settings.max_pixels)
        prompt = params.get("prompt") or None
        inputs = self.processor(images=image, text=prompt, return_tensors="pt").to(self.settings.device)
        with self.torch.inference_mode():
            ids = self.model.generate(**inputs, max_new_tokens=20)
        return {"text": self.processor.decode(ids[0], skip_special_tokens=True).strip()}


TritonPythonModel = triton_model(Runner)
