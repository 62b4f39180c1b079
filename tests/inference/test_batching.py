"""Gathering a burst into one Triton batch (``baton_inference.batching.Gather``): who waits, for how long."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import httpx

from baton_common.schemas.jobs import JobResult
from baton_inference.batching import Gather
from baton_inference.domain import triton_name
from baton_inference.triton import MODELS_DIR

from .conftest import LocalTriton, Running, start_inference, stop_inference
from .test_jobs import job
from .test_lifecycle import models_dir, settings_for


async def spell(gather: Gather, jobs: int, *, call: float = 0.2, spread: float = 0.0) -> list[float]:
    """``jobs`` jobs, one every ``spread`` s, each a Triton call of ``call`` s; when each went in, from the first."""
    started = time.monotonic()
    went: list[float] = []

    async def one(delay: float) -> None:
        await asyncio.sleep(delay)
        async with gather.turn():
            went.append(time.monotonic() - started)
            await asyncio.sleep(call)

    await asyncio.gather(*(one(i * spread) for i in range(jobs)))
    return sorted(went)


async def test_a_lone_job_never_waits() -> None:
    gather = Gather(16, max_wait=0.5)
    for _ in range(3):
        went = await spell(gather, 1)
        assert went[0] < 0.01
    assert gather.peak == 1


async def test_a_spread_burst_after_a_busy_spell_goes_in_together() -> None:
    gather = Gather(16, max_wait=0.5)
    await spell(gather, 4, call=1.0)  # a spell of 4 at once: the next one is expected to be as big
    assert gather.peak == 4
    went = await spell(gather, 4, spread=0.02, call=0.05)
    assert went[-1] - went[0] < 0.01, went  # all four in one go, when the fourth came
    assert 0.05 < went[0] < 0.1


async def test_the_wait_is_a_tenth_of_the_last_call_and_at_most_max_wait() -> None:
    gather = Gather(16, max_wait=0.5)
    await spell(gather, 4, call=0.3)
    went = await spell(gather, 2, spread=0.0)  # the load dropped: two of the four expected come
    assert 0.025 < went[0] < 0.06, went  # 0.1 x 0.3 s
    assert gather.peak == 2  # the next spell expects two
    went = await spell(gather, 2)
    assert went[-1] < 0.01
    capped = Gather(16, max_wait=0.01)
    await spell(capped, 4, call=0.3)
    went = await spell(capped, 1)
    assert went[0] < 0.02


async def test_a_job_that_finds_the_model_busy_goes_at_once() -> None:
    gather = Gather(16, max_wait=0.5)
    await spell(gather, 4)
    went = await spell(gather, 3, spread=0.1, call=0.3)  # the second and third find the first in Triton
    assert went[1] - 0.1 < 0.01 and went[2] - 0.2 < 0.01, went


async def test_no_wait_when_off_or_for_more_than_the_capacity() -> None:
    off = Gather(16, max_wait=0.0)
    await spell(off, 4)
    assert (await spell(off, 2, spread=0.02))[0] < 0.01
    small = Gather(2, max_wait=0.5)
    await spell(small, 4, call=1.0)
    went = await spell(small, 2, spread=0.02)  # a full batch of 2 goes when the second comes
    assert 0.015 < went[0] < 0.04 and went[1] - went[0] < 0.01, went


async def test_a_held_job_that_is_cancelled_leaves_no_trace() -> None:
    gather = Gather(16, max_wait=0.5)
    await spell(gather, 4)

    async def held() -> None:
        async with gather.turn():
            raise AssertionError("it was cancelled before its turn")

    task = asyncio.create_task(held())
    await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert gather.in_triton == 0 and not gather._held
    went = await spell(gather, 4)
    assert went[-1] < 0.01  # four at once still go at once


async def test_the_window_is_timed_on_a_batch_that_found_the_model_idle_not_on_a_queued_one() -> None:
    gather = Gather(16, max_wait=0.5)

    async def call(seconds: float, delay: float = 0.0) -> None:
        await asyncio.sleep(delay)
        async with gather.turn():
            await asyncio.sleep(seconds)

    await asyncio.gather(call(0.2), call(0.2))  # idle model: the batch took 0.2 s
    assert abs(gather.last_call - 0.2) < 0.05
    await asyncio.gather(call(0.1), call(0.6, delay=0.03))  # the second found the first in Triton: queued
    assert abs(gather.last_call - 0.1) < 0.05, gather.last_call


class Runner:
    """A runner that batches requests of one ``steps``, and says which batches it ran."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def batch_key(self, params: dict) -> int:
        if "steps" not in params:
            raise ValueError("steps is required")
        return int(params["steps"])

    def run_batch(self, items: list[tuple[dict, bytes]]) -> list[dict]:
        self.batches.append([p["prompt"] for p, _ in items])
        return [{"prompt": p["prompt"]} for p, _ in items]

    def run(self, params: dict, body: bytes) -> dict:
        self.batch_key(params)
        return self.run_batch([(params, body)])[0]


def test_a_triton_batch_of_mixed_settings_runs_as_one_batch_per_setting() -> None:
    sys.path.insert(0, str(MODELS_DIR))
    try:
        from baton_model import triton_model
    finally:
        sys.path.remove(str(MODELS_DIR))
    model = triton_model(Runner)()
    model.runner = Runner()
    items = [({"prompt": "a", "steps": 8}, b""), ({"prompt": "b", "steps": 1}, b""), ({"prompt": "c"}, b""),
             ({"prompt": "d", "steps": 8}, b""), ({"prompt": "e", "steps": 1}, b"")]
    out = model._run_all(items)
    assert [o["prompt"] if isinstance(o, dict) else type(o).__name__ for o in out] == ["a", "b", "ValueError", "d", "e"]
    assert sorted(model.runner.batches) == [["a", "d"], ["b", "e"]]  # not five one by one

# --- with the real Triton -------------------------------------------------------------------------------------


async def test_a_burst_that_reaches_the_worker_spread_out_runs_as_one_triton_batch(
        demo: Running, triton: LocalTriton, tmp_path: Path, nats_url: str, inference_state: Path) -> None:
    """Jobs a few ms apart (as the negotiator forwards a gateway's burst) would start a batch of one, then one of
    the rest; gathered, Triton runs them as one batch, as its statistics say."""
    models_dir(tmp_path / "models", inference_state)
    settings = settings_for(nats_url, triton, tmp_path,
                            [{"pipeline": "text-to-image", "model_id": "acme/tiny-sd", "warm": True, "capacity": 4}])
    assert settings.batch_gather_ms == 50  # the default
    worker = await start_inference(nats_url, settings)
    name = triton_name("text-to-image", "acme/tiny-sd")
    params = {"prompt": "a lighthouse", "height": 64, "width": 64, "num_inference_steps": 8, "seed": 1}

    async def burst(spread: float) -> tuple[int, int]:
        before = await batches(triton, name)

        async def one(i: int) -> None:
            await asyncio.sleep(i * spread)
            replies = await job(worker, "text-to-image", params, model_id="acme/tiny-sd")
            assert isinstance(replies[-1], JobResult), replies[-1]

        await asyncio.gather(*(one(i) for i in range(4)))
        after = await batches(triton, name)
        return after[0] - before[0], after[1] - before[1]

    try:
        await worker.wait_served({("text-to-image", "acme/tiny-sd")}, timeout=120)
        await burst(0.0)  # four at once: the worker now expects bursts of four
        assert await burst(0.005) == (1, 4)  # one batch of four, not one of one and one of three
        assert await burst(0.005) == (1, 4)
    finally:
        await stop_inference(worker)


async def batches(triton: LocalTriton, name: str) -> tuple[int, int]:
    """The model's batches run and requests served so far, from Triton's statistics."""
    async with httpx.AsyncClient() as http:
        stats = (await http.get(f"{triton.url}/v2/models/{name}/stats")).json()["model_stats"][0]
    return stats["execution_count"], stats["inference_count"]
