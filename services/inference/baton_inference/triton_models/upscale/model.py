"""upscale: diffusers' StableDiffusionUpscalePipeline (x4: the output has the VAE's scale factor times the pixels a side)."""

from __future__ import annotations

from typing import Any

from baton_model import BadInput, open_image, png_url, seed_of, triton_model


class Runner:
    def load(self, settings: Any) -> None:
        import torch
        from diffusers import StableDiffusionUpscalePipeline

        self.torch = torch
        self.settings = settings
        dtype = torch.float16 if settings.device == "cuda" else torch.float32
        self.pipe = StableDiffusionUpscalePipeline.from_pretrained(settings.weights, dtype=dtype).to(settings.device)
        self.pipe.set_progress_bar_config(disable=True)

    def run(self, params: dict[str, Any], body: bytes) -> dict[str, Any]:
        if not params.get("prompt"):
            raise BadInput("prompt is required")
        image = open_image(body, self.settings.max_pixels)
        seed = seed_of(params)
        out = self.pipe(
            prompt=params["prompt"],
            image=image,
            num_inference_steps=int(params.get("num_inference_steps", 75)),
            generator=self.torch.Generator(self.settings.device).manual_seed(seed),
        )
        nsfw = getattr(out, "nsfw_content_detected", None) or [False] * len(out.images)
        return {"images": [{"url": png_url(img), "seed": seed, "nsfw": bool(flag)}
                           for img, flag in zip(out.images, nsfw, strict=True)]}


TritonPythonModel = triton_model(Runner)
