"""image-to-video: diffusers' StableVideoDiffusionPipeline, the frames encoded by ffmpeg as one H.264 MP4.

ai-runner answers the frames (``VideoResponse.frames``) and go-livepeer's
orchestrator encodes them into an MP4 it serves under ``/stream``; this model
does that encoding itself: ``frames`` holds one entry per video, the MP4 (a
``data:video/mp4`` URL the worker turns into a result file), and ``images``
the same, as go-livepeer's gateway reads it.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import Any

from baton_model import BadInput, data_url, open_image, seed_of, triton_model


def mp4(frames: list[Any], fps: int) -> bytes:
    """PIL frames as an H.264 MP4 (yuv420p, faststart), through ffmpeg."""
    width, height = frames[0].size
    raw = b"".join(frame.convert("RGB").tobytes() for frame in frames)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "video.mp4"
        done = subprocess.run(
            ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
             "-s", f"{width}x{height}", "-r", str(fps), "-i", "pipe:0", "-c:v", "libx264", "-pix_fmt", "yuv420p",
             "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-movflags", "+faststart", str(out)],
            input=raw, capture_output=True, timeout=600, check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"ffmpeg could not encode the video: {done.stderr.decode(errors='replace')[-300:]}")
        return out.read_bytes()


class Runner:
    def load(self, settings: Any) -> None:
        import torch
        from diffusers import StableVideoDiffusionPipeline

        self.torch = torch
        self.settings = settings
        dtype = torch.float16 if settings.device == "cuda" else torch.float32
        self.pipe = StableVideoDiffusionPipeline.from_pretrained(settings.weights, dtype=dtype).to(settings.device)
        self.pipe.set_progress_bar_config(disable=True)

    def run(self, params: dict[str, Any], body: bytes) -> dict[str, Any]:
        image = open_image(body, self.settings.max_pixels)
        height, width = int(params.get("height", 576)), int(params.get("width", 1024))
        if height % 8 or width % 8:
            raise BadInput(f"height and width must be multiples of 8, got {height}x{width}")
        if height * width > self.settings.max_pixels:
            raise BadInput(f"{width}x{height} is more than the {self.settings.max_pixels} pixels this model makes")
        fps = int(params.get("fps", 6))
        seed = seed_of(params)
        out = self.pipe(
            image,
            height=height,
            width=width,
            fps=fps,
            motion_bucket_id=int(params.get("motion_bucket_id", 127)),
            noise_aug_strength=float(params.get("noise_aug_strength", 0.02)),
            num_inference_steps=int(params.get("num_inference_steps", 25)),
            decode_chunk_size=8,
            generator=self.torch.Generator(self.settings.device).manual_seed(seed),
        )
        videos = [{"url": data_url(mp4(frames, fps), "video/mp4"), "seed": seed, "nsfw": False}
                  for frames in out.frames]
        return {"frames": [[video] for video in videos], "images": videos}


TritonPythonModel = triton_model(Runner)
