"""Runs child processes and restarts them when they die.

Restarts back off from 0.5 s, doubling up to 30 s; a child that stays up for
a minute starts again from the shortest delay. Five crashes within a minute
put the child in ``crash-loop`` (reported in the status and the logs), and
restarts go on at the longest delay until it stays up for a minute. Children run in their own session
and process group, and get SIGTERM if the supervisor itself dies (set up by :mod:`._child`, which each
child runs first), so nothing is left behind. A stop sends SIGTERM, then SIGKILL after
:data:`STOP_TIMEOUT`: the services' shutdown budget and a margin.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from baton_common.runtime import SHUTDOWN_BUDGET
from baton_common.schemas import Supervision

from . import _child

__all__ = ["Backoff", "Child", "CRASH_LOOP_CRASHES", "CRASH_LOOP_WINDOW", "STOP_MARGIN", "STOP_TIMEOUT", "child_argv"]

log = logging.getLogger("baton.up")

FIRST_DELAY = 0.5
MAX_DELAY = 30.0
STABLE_AFTER = 60.0
CRASH_LOOP_CRASHES = 5
CRASH_LOOP_WINDOW = 60.0
STOP_MARGIN = 5.0
"""Seconds beyond the runtime's budget: interpreter exit, log flushing, a loaded machine."""
STOP_TIMEOUT = SHUTDOWN_BUDGET + STOP_MARGIN
"""Seconds between SIGTERM and SIGKILL."""


class Backoff:
    """Restart delays and crash-loop detection for one child (pure; time is passed in)."""

    def __init__(self) -> None:
        self.delay = FIRST_DELAY
        self.crashes: deque[float] = deque()
        self.crash_loop = False
        """Set by five crashes within a minute; cleared only by a run of a minute or more."""

    def crashed(self, now: float, uptime: float) -> float:
        """Record a crash after ``uptime`` seconds up; return the delay before the restart."""
        if uptime >= STABLE_AFTER:
            self.delay = FIRST_DELAY
            self.crash_loop = False
        self.crashes.append(now)
        while self.crashes and now - self.crashes[0] > CRASH_LOOP_WINDOW:
            self.crashes.popleft()
        if len(self.crashes) >= CRASH_LOOP_CRASHES:
            self.crash_loop = True
        delay = MAX_DELAY if self.crash_loop else self.delay
        self.delay = min(self.delay * 2, MAX_DELAY)
        return delay


class Child:
    """One supervised process: started, watched, restarted, stopped."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        log_path: Path,
        on_change: Callable[[Child], None] = lambda c: None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.log_path = log_path
        self.on_change = on_change
        self.backoff = Backoff()
        self.proc: asyncio.subprocess.Process | None = None
        self.state = "starting"
        self.restarts = 0
        self.last_exit: int | None = None
        self.started_at = 0.0
        self.next_restart_at = 0.0
        self.stop_timeout = STOP_TIMEOUT
        """Seconds between SIGTERM and SIGKILL: the runtime's shutdown budget and a margin."""
        self._stopping = asyncio.Event()

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc and self.proc.returncode is None else 0

    def record(self) -> Supervision:
        return Supervision(
            service=self.name,
            state=self.state,  # type: ignore[arg-type]
            pid=self.pid,
            restarts=self.restarts,
            crashes_last_minute=len(self.backoff.crashes),
            last_exit=self.last_exit,
            next_restart_in=max(0.0, self.next_restart_at - time.time()) if self.state != "running" else 0.0,
            at=time.time(),
        )

    def _set(self, state: str) -> None:
        self.state = state
        self.on_change(self)

    async def _spawn(self) -> asyncio.subprocess.Process:
        if shutil.which(self.argv[0], path=self.env.get("PATH")) is None:
            raise FileNotFoundError(f"no such program: {self.argv[0]}")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as out:
            # No preexec_fn: Python code between fork and exec can deadlock in a threaded parent.
            return await asyncio.create_subprocess_exec(
                *child_argv(self.argv),
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )

    async def run(self) -> None:
        """Keep the child running until :meth:`stop`."""
        while not self._stopping.is_set():
            self.started_at = time.monotonic()
            try:
                self.proc = await self._spawn()
            except OSError as exc:
                log.error("cannot start %s: %s", self.name, exc)
                self.last_exit = -1
            else:
                if self._stopping.is_set():  # stop() came while the process was being forked
                    await _terminate(self.proc, self.name, self.stop_timeout)
                    break
                self._set("running")
                self.last_exit = await self.proc.wait()
            if self._stopping.is_set():
                break
            delay = self.backoff.crashed(time.time(), time.monotonic() - self.started_at)
            self.next_restart_at = time.time() + delay
            if self.backoff.crash_loop:
                log.error(
                    "%s is crash-looping: %d crashes within %ds, last exit %s; restarting every %ds",
                    self.name, len(self.backoff.crashes), CRASH_LOOP_WINDOW, self.last_exit, MAX_DELAY,
                )
                self._set("crash-loop")
            else:
                log.warning("%s exited with %s; restarting in %.1fs", self.name, self.last_exit, delay)
                self._set("restarting")
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=delay)
            except TimeoutError:
                self.restarts += 1
        self._set("stopped")

    async def stop(self, timeout: float | None = None) -> None:
        """SIGTERM the child's process group; SIGKILL it after ``timeout`` seconds (default :attr:`stop_timeout`)."""
        self._stopping.set()
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        await _terminate(proc, self.name, self.stop_timeout if timeout is None else timeout)

    def resume(self) -> None:
        """Let :meth:`run` be called again after :meth:`stop` (``baton start``)."""
        self._stopping.clear()
        self._set("starting")

    def kill_now(self) -> None:
        self._stopping.set()
        if self.proc is not None and self.proc.returncode is None:
            _signal_group(self.proc.pid, signal.SIGKILL)


async def _terminate(proc: asyncio.subprocess.Process, name: str, timeout: float) -> None:
    _signal_group(proc.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), timeout=timeout)
    except TimeoutError:
        log.warning("%s did not stop within %ss; killing it", name, timeout)
    _signal_group(proc.pid, signal.SIGKILL)  # anything left in its group
    await proc.wait()


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def child_argv(argv: Sequence[str]) -> list[str]:
    """``argv`` run through :mod:`._child`: it dies with this process, and never outlives it."""
    return [sys.executable, "-I", "-S", _child.__file__, str(os.getpid()), "--", *argv]
