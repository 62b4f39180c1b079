"""Gathering a batch before Triton starts it: jobs that come spread out go in together.

Triton's dynamic batcher starts a batch once its queue delay (1 ms) has
passed. Jobs that come through the negotiator reach the worker spread over
tens of ms, because each is parsed, checked and paid for in turn. So once a
burst of jobs finds the model idle, the first one or two would start a batch
alone, and the rest would wait a whole batch for the next. Triton then runs
two or three small batches where one would do, and each batch has a fixed
cost (on a GPU, a small batch costs nearly what a full one does).

``Gather`` holds a job back only while its model has nothing in Triton and
the last busy spell had more than one job at once. The job waits until as
many jobs as that spell's peak are ready, or until its window passes, then
they all go in together. The window is ``share`` of the model's last batch
(the last Triton call that found the model idle, whatever its settings),
and never more than ``max_wait``: that cap is the most any job waits. A job
after a spell of lone jobs never waits, and neither does one that finds the
model busy (Triton queues it with the next batch). When the load drops, the
first job of the next spell waits one window; that spell's peak is then the
new one. Jobs of other settings gathered together still run as one batch
per setting (``batch_key`` in the Triton model).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

__all__ = ["Gather"]

SHARE = 0.1
"""The window as a share of the model's last batch: a wait that gathers nobody costs a tenth of a batch like it."""


class Gather:
    def __init__(self, capacity: int, *, max_wait: float, share: float = SHARE) -> None:
        self.capacity = max(1, capacity)
        self.max_wait = max_wait
        self.share = share
        self.in_triton = 0
        """Jobs sent to Triton and not answered yet."""
        self.peak = 1
        """The most jobs at once (in Triton and held) in the last busy spell."""
        self.last_call = 0.0
        """Seconds the last Triton call that found the model idle took: one batch's compute."""
        self._spell_peak = 0
        self._held: list[asyncio.Future[None]] = []
        self._timer: asyncio.TimerHandle | None = None

    def window(self) -> float:
        return min(self.max_wait, self.share * self.last_call)

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Held until the job may go to Triton; the block is its Triton call."""
        idle = await self._enter()
        started = time.monotonic()
        try:
            yield
        finally:
            # only a call that found the model idle times its batch (one queued behind another would time both)
            self._leave(time.monotonic() - started if idle else 0.0)

    async def _enter(self) -> bool:
        """Whether the job went in with the model idle (nothing in Triton before it and those sent with it)."""
        wanted = min(self.peak, self.capacity)
        if self.in_triton or wanted <= 1 or len(self._held) + 1 >= wanted or self.window() <= 0:
            idle = self.in_triton == 0
            self._release()
            self._go()
            return idle
        loop = asyncio.get_running_loop()
        held: asyncio.Future[None] = loop.create_future()
        self._held.append(held)
        self._spell_peak = max(self._spell_peak, self.in_triton + len(self._held))
        if self._timer is None:
            self._timer = loop.call_later(self.window(), self._release)
        try:
            await held  # released with the model idle: the held go in only together, before any other
        except asyncio.CancelledError:
            if held in self._held:
                self._held.remove(held)
            elif held.done() and not held.cancelled():
                self._leave(0.0)  # released and counted in, but never sent
            raise
        return True

    def _go(self) -> None:
        self.in_triton += 1
        self._spell_peak = max(self._spell_peak, self.in_triton + len(self._held))

    def _release(self) -> None:
        """Send every held job in (they and the one calling, together)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        held, self._held = self._held, []
        for future in held:
            if not future.done():
                self._go()
                future.set_result(None)

    def _leave(self, seconds: float) -> None:
        self.in_triton -= 1
        if seconds > 0:
            self.last_call = seconds
        if self.in_triton == 0 and not self._held:
            self.peak = max(1, self._spell_peak)
            self._spell_peak = 0
