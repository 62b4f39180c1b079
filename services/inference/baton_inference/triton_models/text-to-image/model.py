"""text-to-image: diffusers' AutoPipelineForText2Image (Stable Diffusion, SDXL...), dynamically batched.

Requests that share every setting but the prompt and seed run as one batch; a Triton batch of mixed
settings runs as one batch per setting (``Runner.batch_key``).
"""

from __future__ import annotations

from typing import Any

from baton_model import BadInput, png_url, seed_of, triton_model


def _args(params: dict[str, Any]) -> dict[str, Any]:
    if not params.get("prompt"):
        raise BadInput("prompt is required")
    height, width = int(params.get("height", 576)), int(params.get("width", 1024))
    if height % 8 or width % 8:
        raise BadInput(f"height and width must be multiples of 8, got {height}x{width}")
    return {
        "height": height,
        "width": width,
        "guidance_scale": float(params.get("guidance_scale", 7.5)),
        "num_inference_steps": int(params.get("num_inference_steps", 50)),
        "negative_prompt": params.get("negative_prompt") or None,
        "num_images_per_prompt": int(params.get("num_images_per_prompt", 1)),
    }


class Runner:
    def load(self, settings: Any) -> None:
        import torch
        from diffusers import AutoPipelineForText2Image

        self.torch = torch
        self.device = settings.device
        dtype = torch.float16 if settings.device == "cuda" else torch.float32
        self.pipe = AutoPipelineForText2Image.from_pretrained(settings.weights, dtype=dtype).to(settings.device)
        self.pipe.set_progress_bar_config(disable=True)

    def run(self, params: dict[str, Any], body: bytes) -> dict[str, Any]:
        return self.run_batch([(params, body)])[0]

    def batch_key(self, params: dict[str, Any]) -> tuple[Any, ...]:
        """Requests batch together when these settings are equal (one pipeline call takes one of each)."""
        return tuple(_args(params).items())

    def run_batch(self, items: list[tuple[dict[str, Any], bytes]]) -> list[dict[str, Any]]:
        args = [_args(p) for p, _ in items]
        if any(a != args[0] for a in args):
            raise ValueError("not one batch")
        per = args[0]["num_images_per_prompt"]
        seeds = [seed_of(p) for p, _ in items]
        generators = [self.torch.Generator(self.device).manual_seed(s + i) for s in seeds for i in range(per)]
        negative = args[0].pop("negative_prompt")
        out = self.pipe(
            prompt=[p["prompt"] for p, _ in items],
            negative_prompt=[negative] * len(items) if negative else None,
            generator=generators,
            **args[0],
        )
        nsfw = getattr(out, "nsfw_content_detected", None) or [False] * len(out.images)
        results = []
        for n, seed in enumerate(seeds):
            images = out.images[n * per:(n + 1) * per]
            flags = nsfw[n * per:(n + 1) * per]
            results.append({"images": [{"url": png_url(img), "seed": seed + i, "nsfw": bool(flag)}
                                       for i, (img, flag) in enumerate(zip(images, flags, strict=True))]})
        return results


TritonPythonModel = triton_model(Runner)
