"""Adapter to NVIDIA Triton: tritonclient's asyncio HTTP client, and ``generate_stream`` for streams.

Why HTTP: tritonclient's gRPC client needs protobuf < 7, and the project's
generated gateway code pins protobuf 7. The HTTP client carries tensors as
binary (no JSON of arrays), and Triton's ``generate_stream`` endpoint streams
a decoupled model's responses as server-sent events, which is what the LLM
needs; tritonclient has no call for it, so httpx reads it.

Every Triton model is loaded with the load API's config override and file
override: the pipeline's ``model.py`` and ``baton_model.py`` travel in the
request, so the Triton side needs only the Python backend and the libraries.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import tritonclient.http.aio as triton_http
from tritonclient.utils import InferenceServerException

from .errors import ModelNotLoaded, RunnerFailed

__all__ = ["MODELS_DIR", "Triton", "TritonHealth", "model_files"]

SLOW_ANSWERS = 3
"""Health questions in a row that may time out (2 s each) before a model or the server counts as gone."""
MODELS_DIR = Path(__file__).parent / "triton_models"
"""The Python-backend model code Baton ships: ``<pipeline>/model.py`` and the shared ``baton_model.py``."""


def model_files(pipeline: str) -> dict[str, bytes]:
    """The file override of a ``pipeline`` model: its model.py and the shared helper, as version 1."""
    return {
        "file:1/model.py": (MODELS_DIR / pipeline / "model.py").read_bytes(),
        "file:1/baton_model.py": (MODELS_DIR / "baton_model.py").read_bytes(),
    }


class TritonHealth:
    """Asks Triton whether it is ready (``GET /v2/health/ready``) and which version it runs."""

    def __init__(self, url: str, client: httpx.AsyncClient) -> None:
        self.url = url.rstrip("/")
        self.client = client

    async def check(self) -> str:
        ready = await self.client.get(f"{self.url}/v2/health/ready")
        if ready.status_code != 200:
            raise RuntimeError(f"Triton at {self.url} is not ready (HTTP {ready.status_code})")
        meta = await self.client.get(f"{self.url}/v2")
        version = meta.json().get("version", "?") if meta.status_code == 200 else "?"
        return f"ready at {self.url}, Triton {version}"


class Triton:
    """One Triton server, driven in explicit model control."""

    def __init__(self, url: str, *, timeout: float = 600.0) -> None:
        self.url = url.rstrip("/")
        host = self.url.split("://", 1)[1]
        self.client = triton_http.InferenceServerClient(host, ssl=self.url.startswith("https"), conn_timeout=timeout)
        self.http = httpx.AsyncClient(base_url=self.url, timeout=httpx.Timeout(timeout, connect=2.0))
        self.version = ""
        self._timeouts: dict[str, int] = {}

    def _slow(self, key: str) -> bool:
        """A health question that timed out: still taken as ready until SLOW_ANSWERS in a row time out.

        A loaded host (stubs importing torch) can make Triton answer late; a late answer is not a lost
        model. A killed server refuses the connection and an unloaded model answers 400, at once.
        """
        self._timeouts[key] = self._timeouts.get(key, 0) + 1
        return self._timeouts[key] < SLOW_ANSWERS

    async def close(self) -> None:
        await self.client.close()
        await self.http.aclose()

    async def ready(self) -> bool:
        try:
            response = await self.http.get("/v2/health/ready", timeout=2.0)
            if response.status_code == 200 and not self.version:
                self.version = (await self.http.get("/v2", timeout=2.0)).json().get("version", "")
            self._timeouts.pop("", None)
            return response.status_code == 200
        except httpx.TimeoutException:
            return self._slow("")
        except httpx.HTTPError:
            return False

    async def model_ready(self, name: str) -> bool:
        try:
            response = await self.http.get(f"/v2/models/{name}/ready", timeout=2.0)
            self._timeouts.pop(name, None)
            return response.status_code == 200
        except httpx.TimeoutException:
            return self._slow(name)
        except httpx.HTTPError:
            return False

    async def load(self, name: str, pipeline: str, config: dict[str, Any]) -> None:
        """Load (or reload) ``name``; RunnerFailed with Triton's reason when it does not load."""
        try:
            await self.client.load_model(name, config=json.dumps(config), files=model_files(pipeline))
        except InferenceServerException as exc:
            raise RunnerFailed(f"Triton did not load {name}: {exc.message()}") from None
        except OSError as exc:
            raise RunnerFailed(f"Triton at {self.url} is unreachable: {exc}") from None

    async def unload(self, name: str) -> None:
        try:
            await self.client.unload_model(name)
        except (InferenceServerException, OSError):
            pass  # gone already, or Triton is down: either way it does not serve it

    async def infer(self, name: str, request: bytes, body: bytes = b"") -> tuple[bytes, bytes]:
        """One request to a batched model: (response JSON, error JSON); the error is empty on success."""
        inputs = [_uint8("request", request)]
        if body:
            inputs.append(_uint8("body", body))
        outputs = [triton_http.InferRequestedOutput(n, binary_data=True) for n in ("response", "error")]
        try:
            result = await self.client.infer(name, inputs, outputs=outputs)
        except InferenceServerException as exc:
            raise _infer_error(name, exc) from None
        except OSError as exc:
            raise ModelNotLoaded(f"Triton at {self.url} is unreachable: {exc}") from None
        return _bytes(result.as_numpy("response")), _bytes(result.as_numpy("error"))

    async def stream(self, name: str, request: bytes) -> AsyncIterator[dict[str, Any]]:
        """A decoupled model's responses, each ``chunk`` decoded from JSON, through ``generate_stream``."""
        body = {"request": request.decode()}
        try:
            async with self.http.stream("POST", f"/v2/models/{name}/generate_stream", json=body) as response:
                if response.status_code != 200:
                    text = (await response.aread()).decode(errors="replace")
                    raise _status_error(name, response.status_code, text)
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    event = json.loads(line[5:])
                    if "error" in event and "chunk" not in event:
                        raise RunnerFailed(f"{name}: {event['error']}")
                    yield json.loads(event["chunk"])
        except httpx.HTTPError as exc:
            raise ModelNotLoaded(f"Triton at {self.url} is unreachable: {exc}") from None


def _uint8(name: str, data: bytes) -> triton_http.InferInput:
    tensor = triton_http.InferInput(name, [1, len(data)], "UINT8")
    tensor.set_data_from_numpy(np.frombuffer(data, dtype=np.uint8).reshape(1, -1), binary_data=True)
    return tensor


def _bytes(array: np.ndarray | None) -> bytes:
    return b"" if array is None else array.tobytes()


def _infer_error(name: str, exc: InferenceServerException) -> Exception:
    status = str(exc.status() or "")
    message = exc.message() or str(exc)
    if status in ("400", "404") and ("unknown model" in message or "not found" in message or "not ready" in message):
        return ModelNotLoaded(f"Triton does not serve {name} now")
    return RunnerFailed(f"Triton failed on {name}: {message}")


def _status_error(name: str, status: int, text: str) -> Exception:
    if status in (400, 404) and ("unknown model" in text or "not found" in text or "not ready" in text):
        return ModelNotLoaded(f"Triton does not serve {name} now")
    return RunnerFailed(f"Triton failed on {name}: HTTP {status} {text[:300]}")
