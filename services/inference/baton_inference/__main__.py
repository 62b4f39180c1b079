"""Composition root of the inference service: GPU inference through NVIDIA Triton.

For now it reports Triton's readiness as a detail of its heartbeat; whether a
dead Triton makes the instance unready is decided with the inference pipelines.
"""

from __future__ import annotations

import httpx

from baton_common.runtime import ServiceBase, ServiceContext, run_service
from baton_common.schemas import Check

from .config import InferenceSettings
from .triton import TritonHealth

__all__ = ["Inference", "main"]


class Inference(ServiceBase[InferenceSettings]):
    name = "inference"

    async def start(self, ctx: ServiceContext) -> None:
        self.http = httpx.AsyncClient(timeout=2.0)
        ctx.probe("triton", TritonHealth(self.settings.triton_url, self.http).check)

    async def stop(self) -> None:
        await self.http.aclose()

    def checks(self) -> dict[str, Check]:
        return {"gpu": Check(ok=True, detail=self.settings.gpu or "none (CPU)")}


def main() -> None:
    run_service("inference", InferenceSettings, Inference)


if __name__ == "__main__":
    main()
