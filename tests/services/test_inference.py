"""Inference service: settings and its Triton check while no Triton answers."""

from __future__ import annotations

import httpx
import pytest

from baton_common.config import ConfigError, load_settings
from baton_inference.config import InferenceSettings
from baton_inference.triton import TritonHealth
from tests.helpers import free_port


def test_triton_url_must_be_http() -> None:
    with pytest.raises(ConfigError, match="BATON_INFERENCE_TRITON_URL must be an http"):
        load_settings(InferenceSettings, "inference", env={"BATON_INFERENCE_TRITON_URL": "triton:8000"}, argv=[])


async def test_unreachable_triton_fails_the_check() -> None:
    async with httpx.AsyncClient(timeout=1) as http:
        with pytest.raises(httpx.ConnectError):
            await TritonHealth(f"http://127.0.0.1:{free_port()}", http).check()
