"""The supervisor behind `baton up`: back-off, crash loops, the kill timeout, and no process left behind."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from baton_cli._child import PARENT_GONE
from baton_cli.supervisor import STOP_TIMEOUT, Backoff, Child, child_argv
from baton_common.runtime import SHUTDOWN_BUDGET, ShutdownPhases
from tests.helpers import process_alive


def test_backoff_doubles_from_half_a_second_to_thirty() -> None:
    b = Backoff()
    delays = [b.crashed(now=t * 100.0, uptime=1.0) for t in range(9)]  # crashes far apart: never a loop
    assert delays == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]


def test_five_crashes_in_a_minute_is_a_crash_loop_and_restarts_go_on_slowly() -> None:
    b = Backoff()
    delays = [b.crashed(now=float(t), uptime=0.1) for t in range(6)]
    assert delays[:4] == [0.5, 1, 2, 4] and not Backoff().crash_loop
    assert delays[4:] == [30, 30] and b.crash_loop
    b.crashed(now=200.0, uptime=100.0)  # long after: the window has emptied, and it ran stably
    assert not b.crash_loop and b.crashed(now=400.0, uptime=100.0) == 0.5


def test_a_crash_loop_lasts_until_the_child_stays_up() -> None:
    b = Backoff()
    for t in range(5):
        b.crashed(now=float(t), uptime=0.1)
    assert b.crash_loop
    # then one crash every 30 s: the one-minute window never again holds five, but it is still a loop
    for t in range(1, 10):
        assert b.crashed(now=5.0 + 30 * t, uptime=0.1) == 30 and b.crash_loop
    b.crashed(now=400.0, uptime=61.0)  # it stayed up for over a minute
    assert not b.crash_loop


async def test_stop_while_the_child_is_being_started_leaves_nothing(tmp_path: Path) -> None:
    child = Child("sleeper", ["sleep", "300"], os.environ, tmp_path / "s.log")
    task = asyncio.create_task(child.run())
    await asyncio.sleep(0)  # run() is inside the fork now
    await child.stop(timeout=2)
    await asyncio.wait_for(task, 10)
    assert child.state == "stopped"
    assert child.proc is None or child.proc.returncode is not None


async def test_a_crashing_child_is_restarted_then_reported_as_crash_looping(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    states: list[str] = []
    child = Child("flaky", [sys.executable, "-c", "import sys; sys.exit(3)"], os.environ, tmp_path / "flaky.log",
                  on_change=lambda c: states.append(c.state))
    task = asyncio.create_task(child.run())
    deadline = time.monotonic() + 20
    with caplog.at_level(logging.WARNING, logger="baton.up"):
        while child.state != "crash-loop" and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
    assert child.state == "crash-loop"
    record = child.record()
    assert record.state == "crash-loop" and record.last_exit == 3 and record.restarts == 4
    assert record.crashes_last_minute == 5 and record.next_restart_in > 20
    assert "crash-looping: 5 crashes within 60s, last exit 3" in caplog.text
    assert states.count("restarting") == 4
    await child.stop()
    await asyncio.wait_for(task, 5)
    assert child.state == "stopped"


async def test_stop_leaves_no_grandchild_behind(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    script = f"sleep 300 & echo $! > {pidfile}; wait"
    child = Child("parent", ["sh", "-c", script], os.environ, tmp_path / "p.log")
    task = asyncio.create_task(child.run())
    for _ in range(50):
        if pidfile.exists() and pidfile.read_text().strip():
            break
        await asyncio.sleep(0.1)
    grandchild = int(pidfile.read_text())
    assert process_alive(grandchild)
    await child.stop(timeout=2)
    await asyncio.wait_for(task, 5)
    await asyncio.sleep(0.2)
    assert not process_alive(grandchild)


def test_the_kill_timeout_covers_the_runtime_shutdown_budget() -> None:
    child = Child("svc", ["sleep", "1"], os.environ, Path("unused.log"))
    worst = ShutdownPhases.of(SHUTDOWN_BUDGET).total  # every phase runs out its time
    assert worst == pytest.approx(SHUTDOWN_BUDGET)
    assert child.stop_timeout == STOP_TIMEOUT >= worst + 1.0


async def test_stop_waits_the_stop_timeout_then_kills(tmp_path: Path) -> None:
    pidfile = tmp_path / "stubborn.pid"
    script = f"trap '' TERM; echo $$ > {pidfile}; while :; do sleep 0.1; done"
    child = Child("stubborn", ["sh", "-c", script], os.environ, tmp_path / "s.log")
    child.stop_timeout = 0.5
    task = asyncio.create_task(child.run())
    while not (pidfile.exists() and pidfile.read_text().strip()):
        await asyncio.sleep(0.05)
    began = time.monotonic()
    await asyncio.wait_for(child.stop(), 10)  # no timeout given: the child's own stop_timeout
    await asyncio.wait_for(task, 5)
    assert child.proc is not None and child.proc.returncode == -signal.SIGKILL
    assert time.monotonic() - began >= 0.5


def test_the_child_wrapper_does_not_start_the_command_once_its_supervisor_is_gone(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    command = ["sh", "-c", f"touch {marker}"]
    wrapper = child_argv(command)
    assert wrapper[-len(command) - 1:] == ["--", *command] and wrapper[-len(command) - 2] == str(os.getpid())
    gone = [*wrapper[:-len(command) - 2], "1", "--", *command]  # "supervisor" pid 1: not our parent
    run = subprocess.run(gone, capture_output=True, text=True, timeout=30)
    assert run.returncode == PARENT_GONE and "supervisor 1 is gone" in run.stderr
    assert not marker.exists()
    assert subprocess.run(wrapper, timeout=30).returncode == 0  # its real parent: it runs the command
    assert marker.exists()


def test_a_child_dies_with_a_killed_supervisor(tmp_path: Path, repo: Path) -> None:
    pidfile = tmp_path / "child.pid"
    supervisor = (
        "import asyncio, os, sys\n"
        "from pathlib import Path\n"
        "from baton_cli.supervisor import Child\n"
        "async def main():\n"
        f"    child = Child('sleeper', ['sleep', '300'], os.environ, Path({str(tmp_path / 's.log')!r}))\n"
        "    task = asyncio.create_task(child.run())\n"
        "    while child.state != 'running':\n"
        "        await asyncio.sleep(0.05)\n"
        f"    Path({str(pidfile)!r}).write_text(str(child.pid))\n"
        "    await task\n"
        "asyncio.run(main())\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", supervisor], cwd=repo)
    try:
        deadline = time.monotonic() + 20
        while not (pidfile.exists() and pidfile.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        pid = int(pidfile.read_text())
        for _ in range(100):  # until the wrapper has exec'd sleep
            if Path(f"/proc/{pid}/comm").read_text().strip() == "sleep":
                break
            time.sleep(0.05)
        assert process_alive(pid)
    finally:
        proc.kill()  # SIGKILL: the supervisor cleans nothing up itself
        proc.wait()
    deadline = time.monotonic() + 5
    while process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    orphaned = process_alive(pid)
    if orphaned:
        os.kill(pid, signal.SIGKILL)  # leave nothing behind even when the test fails
    assert not orphaned
