"""segment-anything-2: transformers' Sam2Model, preprocessed without torchvision.

transformers' ``Sam2ImageProcessor`` is torchvision-only, and torchvision has
no CPU build for torch 2.13.0 in the registries. This does what it does with
torch alone: resize to the model's square input (bilinear, antialiased,
rounded back to 8-bit as torchvision does with 8-bit images), rescale by
1/255, normalize with the ImageNet mean and std (or the values in the
checkpoint's ``preprocessor_config.json``); coordinates are scaled to the
model's input as ``Sam2Processor`` does. The masks are scaled back to the
image's size (``post_process_masks``: bilinear).

Request fields follow ai-runner: ``point_coords`` (``[[x, y], ...]`` in
pixels, or in [0, 1] with ``normalize_coords=false``), ``point_labels``
(``[1, 0, ...]``), ``box`` (``[x1, y1, x2, y2]``), ``mask_input``
(``[[[...]]]``, 1 x H x W low-resolution logits). The answer's ``masks``,
``scores`` and ``logits`` are JSON text of the nested lists: masks at the
image's size (logits, or 0/1 with ``return_logits=false``), one score per
mask, and the low-resolution logits.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from baton_model import BadInput, open_image, triton_model

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MAX_POINTS = 64
MAX_MASK_SIDE = 1024


def _json_list(params: dict[str, Any], name: str) -> Any:
    text = params.get(name)
    if text is None or text == "":
        return None
    try:
        value = json.loads(text) if isinstance(text, str) else text
    except ValueError:
        raise BadInput(f"{name} is not JSON: send e.g. {_EXAMPLES[name]}") from None
    if not isinstance(value, list):
        raise BadInput(f"{name} must be a JSON list, e.g. {_EXAMPLES[name]}")
    return value


_EXAMPLES = {"point_coords": "[[120, 80]]", "point_labels": "[1]", "box": "[10, 10, 200, 150]",
             "mask_input": "[[[0.0, ...], ...]] (1 x H x W)"}


def _numbers(value: Any, shape: tuple[int, ...], name: str) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise BadInput(f"{name} must hold numbers only") from None
    if array.ndim != len(shape) or any(want not in (-1, got) for want, got in zip(shape, array.shape, strict=True)):
        raise BadInput(f"{name} has shape {list(array.shape)}; expected {_EXAMPLES[name]}")
    if not np.isfinite(array).all():
        raise BadInput(f"{name} holds a number that is not finite")
    return array


def _rounded(array: np.ndarray) -> Any:
    return np.round(array.astype(np.float64), 4).tolist()


class Runner:
    def load(self, settings: Any) -> None:
        import torch
        from transformers import Sam2Model

        self.torch = torch
        self.settings = settings
        self.model = Sam2Model.from_pretrained(settings.weights).to(settings.device).eval()
        side = self.model.config.vision_config.backbone_config.image_size
        self.size = (int(side[0]), int(side[1])) if isinstance(side, list | tuple) else (int(side), int(side))
        self.mean, self.std, self.scale = IMAGENET_MEAN, IMAGENET_STD, 1 / 255
        config = Path(settings.weights) / "preprocessor_config.json"
        if config.is_file():  # a hub checkpoint's Sam2ImageProcessor settings
            pre = json.loads(config.read_text())
            size = pre.get("size") or {}
            if "height" in size and "width" in size:
                self.size = (int(size["height"]), int(size["width"]))
            self.mean = tuple(pre.get("image_mean", self.mean))
            self.std = tuple(pre.get("image_std", self.std))
            self.scale = float(pre.get("rescale_factor", self.scale))

    def pixel_values(self, image: Any) -> Any:
        """What Sam2ImageProcessor makes of ``image`` (RGB PIL): 1 x 3 x H x W floats, H x W the model's input."""
        torch = self.torch
        pixels = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1)[None].float()
        resized = torch.nn.functional.interpolate(pixels, size=self.size, mode="bilinear", antialias=True,
                                                  align_corners=False)
        resized = resized.round().clamp(0, 255) * self.scale
        mean = torch.tensor(self.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.std).view(1, 3, 1, 1)
        return (resized - mean) / std

    def prompts(self, params: dict[str, Any], width: int, height: int) -> dict[str, Any]:
        torch = self.torch
        normalize = str(params.get("normalize_coords", True)).lower() not in ("false", "0")
        sx, sy = (self.size[1] / width, self.size[0] / height) if normalize else (self.size[1], self.size[0])
        out: dict[str, Any] = {}
        coords, labels = _json_list(params, "point_coords"), _json_list(params, "point_labels")
        box, mask = _json_list(params, "box"), _json_list(params, "mask_input")
        if coords is not None:
            points = _numbers(coords, (-1, 2), "point_coords")
            if not 1 <= len(points) <= MAX_POINTS:
                raise BadInput(f"point_coords holds {len(points)} points; 1 to {MAX_POINTS}")
            if labels is None:
                raise BadInput("point_labels is required with point_coords (1 foreground, 0 background)")
            marks = _numbers(labels, (-1,), "point_labels")
            if len(marks) != len(points):
                raise BadInput(f"point_labels has {len(marks)} labels for {len(points)} points")
            if not np.isin(marks, (0, 1)).all():
                raise BadInput("point_labels must be 1 (foreground) or 0 (background)")
            points = points * (sx, sy)
            out["input_points"] = torch.tensor(points, dtype=torch.float32).view(1, 1, -1, 2)
            out["input_labels"] = torch.tensor(marks, dtype=torch.int64).view(1, 1, -1)
        elif labels is not None:
            raise BadInput("point_labels without point_coords")
        if box is not None:
            corners = _numbers(box, (4,), "box")
            if corners[2] < corners[0] or corners[3] < corners[1]:
                raise BadInput("box must be [x1, y1, x2, y2] with x1 <= x2 and y1 <= y2")
            out["input_boxes"] = torch.tensor(corners * (sx, sy, sx, sy), dtype=torch.float32).view(1, 1, 4)
        if mask is not None:
            low = _numbers(mask, (1, -1, -1), "mask_input")
            if max(low.shape[1:]) > MAX_MASK_SIDE or min(low.shape[1:]) < 1:
                raise BadInput(f"mask_input is {low.shape[1]}x{low.shape[2]}; at most {MAX_MASK_SIDE} a side")
            out["input_masks"] = torch.tensor(low, dtype=torch.float32).view(1, 1, *low.shape[1:])
        if not out:
            raise BadInput("send a prompt: point_coords with point_labels, a box, or a mask_input")
        return out

    def run(self, params: dict[str, Any], body: bytes) -> dict[str, Any]:
        image = open_image(body, self.settings.max_pixels)
        width, height = image.size
        prompts = self.prompts(params, width, height)
        multimask = str(params.get("multimask_output", True)).lower() not in ("false", "0")
        logits_out = str(params.get("return_logits", True)).lower() not in ("false", "0")
        device = self.settings.device
        with self.torch.inference_mode():
            out = self.model(pixel_values=self.pixel_values(image).to(device),
                             **{k: v.to(device) for k, v in prompts.items()}, multimask_output=multimask)
        low = out.pred_masks[0, 0].float().cpu()  # masks x h x w
        scores = out.iou_scores[0, 0].float().cpu()
        full = self.torch.nn.functional.interpolate(low[None], size=(height, width), mode="bilinear",
                                                    align_corners=False)[0]
        masks = _rounded(full.numpy()) if logits_out else (full > 0).to(self.torch.uint8).numpy().tolist()
        return {"masks": json.dumps(masks), "scores": json.dumps(_rounded(scores.numpy())),
                "logits": json.dumps(_rounded(low.numpy()))}


TritonPythonModel = triton_model(Runner)
