"""image-to-image: diffusers' AutoPipelineForImage2Image (Stable Diffusion img2img, SDXL, InstructPix2Pix...)."""

from __future__ import annotations

import inspect
from typing import Any

from baton_model import BadInput, open_image, png_url, seed_of, triton_model


class Runner:
    def load(self, settings: Any) -> None:
        import torch
        from diffusers import AutoPipelineForImage2Image

        self.torch = torch
        self.settings = settings
        dtype = torch.float16 if settings.device == "cuda" else torch.float32
        self.pipe = AutoPipelineForImage2Image.from_pretrained(settings.weights, dtype=dtype).to(settings.device)
        self.pipe.set_progress_bar_config(disable=True)
        self.accepts = set(inspect.signature(self.pipe.__call__).parameters)

    def run(self, params: dict[str, Any], body: bytes) -> dict[str, Any]:
        if not params.get("prompt"):
            raise BadInput("prompt is required")
        image = open_image(body, self.settings.max_pixels)
        width, height = (side - side % 8 for side in image.size)
        if width < 8 or height < 8:
            raise BadInput(f"the image is {image.size[0]}x{image.size[1]}; at least 8x8")
        image = image.resize((width, height)) if (width, height) != image.size else image
        per = int(params.get("num_images_per_prompt", 1))
        seed = seed_of(params)
        args: dict[str, Any] = {
            "prompt": params["prompt"],
            "image": image,
            "strength": float(params.get("strength", 0.8)),
            "guidance_scale": float(params.get("guidance_scale", 7.5)),
            "negative_prompt": params.get("negative_prompt") or None,
            "num_inference_steps": int(params.get("num_inference_steps", 100)),
            "num_images_per_prompt": per,
            "generator": [self.torch.Generator(self.settings.device).manual_seed(seed + i) for i in range(per)],
        }
        if "image_guidance_scale" in self.accepts:  # InstructPix2Pix
            args["image_guidance_scale"] = float(params.get("image_guidance_scale", 1.5))
            args.pop("strength")
        out = self.pipe(**args)
        nsfw = getattr(out, "nsfw_content_detected", None) or [False] * len(out.images)
        return {"images": [{"url": png_url(img), "seed": seed + i, "nsfw": bool(flag)}
                           for i, (img, flag) in enumerate(zip(out.images, nsfw, strict=True))]}


TritonPythonModel = triton_model(Runner)
