"""Adapter to NVIDIA Triton's KServe v2 HTTP API."""

from __future__ import annotations

import httpx

__all__ = ["TritonHealth"]


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
