"""What every Baton Triton model shares: the tensors, the error output, images and data URLs.

Shipped into each Triton model beside its ``model.py`` (the load API's file
override), so it is importable there as ``baton_model``. Each pipeline's
``model.py`` defines a ``Runner`` (``load`` once per instance, ``run`` per
request, optionally ``run_batch`` with ``batch_key``: the requests of one
batch have equal keys) and exports
``TritonPythonModel = triton_model(Runner)``.

Tensors: input ``request`` (UINT8, the JSON params) and optional ``body``
(UINT8, the uploaded file); outputs ``response`` (UINT8, the ai-runner JSON)
and ``error`` (UINT8, ``{"code", "message"}`` JSON, empty on success). A
decoupled model (the LLM) takes ``request`` as a string and sends ``chunk``
strings, one per token piece, the last one ``{"done": true, ...}``.
"""

from __future__ import annotations

import base64
import io
import json
import random
from typing import Any

import numpy as np

__all__ = ["BadInput", "data_url", "open_image", "seed_of", "triton_model"]

FORMATS = {"PNG", "JPEG", "WEBP", "BMP", "GIF"}


class BadInput(Exception):
    """The request or its file is not valid for this pipeline; the message says why."""

    code = "bad_input"


def seed_of(params: dict[str, Any]) -> int:
    seed = params.get("seed")
    return int(seed) if seed is not None else random.randrange(2**32)


def data_url(data: bytes, content_type: str) -> str:
    return f"data:{content_type};base64,{base64.b64encode(data).decode()}"


def png_url(image: Any) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return data_url(buf.getvalue(), "image/png")


def open_image(body: bytes, max_pixels: int) -> Any:
    """The uploaded image as RGB; BadInput for a missing, unreadable or too large one."""
    from PIL import Image, UnidentifiedImageError

    if not body:
        raise BadInput("missing image: send the image file")
    try:
        image = Image.open(io.BytesIO(body))
    except (UnidentifiedImageError, OSError):
        raise BadInput(f"the image is not a {', '.join(sorted(FORMATS))} file") from None
    if image.format not in FORMATS:
        raise BadInput(f"image format {image.format} is not accepted (send {', '.join(sorted(FORMATS))})")
    width, height = image.size
    if width * height > max_pixels:
        raise BadInput(f"the image is {width}x{height} = {width * height} pixels; this model takes at most {max_pixels}")
    try:
        return image.convert("RGB")
    except OSError:
        raise BadInput("the image file is truncated or damaged") from None


class Settings:
    """What the load API's config override passes a model in ``parameters``."""

    def __init__(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        params = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
        self.weights = params.get("weights", "")
        self.max_pixels = int(params.get("max_pixels") or 4096 * 4096)
        self.max_audio_seconds = int(params.get("max_audio_seconds") or 4 * 3600)
        self.model_id = params.get("model_id", "")
        self.device = "cuda" if args.get("model_instance_kind") == "GPU" else "cpu"
        self.decoupled = bool(config.get("model_transaction_policy", {}).get("decoupled"))


def _bytes_tensor(pb_utils: Any, name: str, data: bytes) -> Any:
    return pb_utils.Tensor(name, np.frombuffer(data, dtype=np.uint8).reshape(1, -1).copy())


def triton_model(runner_cls: type) -> type:
    """The ``TritonPythonModel`` class Triton's Python backend loads, around ``runner_cls``."""

    class TritonPythonModel:
        def initialize(self, args: dict[str, str]) -> None:
            self.settings = Settings(args)
            self.runner = runner_cls()
            self.runner.load(self.settings)

        def _decode(self, pb_utils: Any, request: Any) -> tuple[dict[str, Any], bytes]:
            raw = pb_utils.get_input_tensor_by_name(request, "request").as_numpy()
            params = json.loads(raw.tobytes() if raw.dtype == np.uint8 else raw.reshape(-1)[0])
            body_tensor = pb_utils.get_input_tensor_by_name(request, "body")
            body = body_tensor.as_numpy().tobytes() if body_tensor is not None else b""
            return params, body

        def execute(self, requests: list[Any]) -> list[Any] | None:
            import triton_python_backend_utils as pb_utils

            if self.settings.decoupled:
                for request in requests:
                    self._stream(pb_utils, request)
                return None
            decoded: list[tuple[dict[str, Any], bytes] | BaseException] = []
            for request in requests:
                try:
                    decoded.append(self._decode(pb_utils, request))
                except (ValueError, UnicodeDecodeError) as exc:
                    decoded.append(BadInput(f"the request is not JSON: {exc}"))
            good = [d for d in decoded if not isinstance(d, BaseException)]
            results = iter(self._run_all(good))
            responses = []
            for item in decoded:
                result = item if isinstance(item, BaseException) else next(results)
                responses.append(self._response(pb_utils, result))
            return responses

        def _run_all(self, items: list[tuple[dict[str, Any], bytes]]) -> list[Any]:
            """The results of ``items`` in order: each group the runner's ``batch_key`` puts together (the same
            settings) as one batch, so one job with other settings does not make the rest run one by one."""
            run_batch = getattr(self.runner, "run_batch", None)
            if run_batch is None or len(items) < 2:
                return self._one_by_one(items)
            key_of = getattr(self.runner, "batch_key", lambda params: None)
            groups: dict[Any, list[int]] = {}
            for n, (params, _) in enumerate(items):
                try:
                    key = key_of(params)
                except Exception:  # noqa: BLE001 - a bad member runs alone and gets its own error
                    key = ("alone", n)
                groups.setdefault(key, []).append(n)
            out: list[Any] = [None] * len(items)
            for members in groups.values():
                batch = [items[n] for n in members]
                results = None
                if len(batch) > 1:
                    try:
                        results = run_batch(batch)
                    except Exception:  # noqa: BLE001 - a bad member: run them one by one, each with its own error
                        results = None
                for n, result in zip(members, results or self._one_by_one(batch), strict=True):
                    out[n] = result
            return out

        def _one_by_one(self, items: list[tuple[dict[str, Any], bytes]]) -> list[Any]:
            out: list[Any] = []
            for params, body in items:
                try:
                    out.append(self.runner.run(params, body))
                except Exception as exc:  # reported to the caller as an error output
                    out.append(exc)
            return out

        def _response(self, pb_utils: Any, result: Any) -> Any:
            if isinstance(result, BaseException):
                code = getattr(result, "code", "runner_failed")
                message = str(result) if code == "bad_input" else f"{type(result).__name__}: {result}"
                error = json.dumps({"code": code, "message": message[:1000]}).encode()
                return pb_utils.InferenceResponse([_bytes_tensor(pb_utils, "response", b""),
                                                   _bytes_tensor(pb_utils, "error", error)])
            return pb_utils.InferenceResponse([_bytes_tensor(pb_utils, "response", json.dumps(result).encode()),
                                               _bytes_tensor(pb_utils, "error", b"")])

        def _stream(self, pb_utils: Any, request: Any) -> None:
            sender = request.get_response_sender()
            final = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL

            def send(chunk: dict[str, Any], flags: int = 0) -> None:
                text = np.array([json.dumps(chunk).encode()], dtype=np.object_)
                sender.send(pb_utils.InferenceResponse([pb_utils.Tensor("chunk", text)]), flags=flags)

            try:
                params, _ = self._decode(pb_utils, request)
                for chunk in self.runner.stream(params):
                    send(chunk)
                send({"done": True, **self.runner.last_usage}, final)
            except Exception as exc:  # sent as the stream's last chunk
                code = getattr(exc, "code", "runner_failed")
                message = str(exc) if code == "bad_input" else f"{type(exc).__name__}: {exc}"
                send({"done": True, "error": {"code": code, "message": message[:1000]}}, final)

        def finalize(self) -> None:
            self.runner = None

    return TritonPythonModel
