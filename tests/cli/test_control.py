"""`baton status --watch` redraws until Ctrl-C; `baton stop|start` without a `baton up` say so.

`baton stop negotiator` / `baton start negotiator` against a running stack are
exercised end to end in tests/e2e/test_paging.py.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from tests.helpers import free_port


def test_status_watch_redraws_until_interrupted(nats_url: str) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "baton_cli", "status", "--watch", "--interval", "0.3",
                             "--nats-url", nats_url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(4)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 1, err  # no service heartbeats on this NATS: down
    assert out.count("supervisor") >= 2, out  # the table's header, drawn more than once
    assert "Traceback" not in err


def test_stop_without_a_baton_up_is_a_clear_error(nats_url: str) -> None:
    result = subprocess.run([sys.executable, "-m", "baton_cli", "stop", "negotiator", "--nats-url", nats_url,
                             "--timeout", "2"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "no `baton up` listens" in result.stderr, result.stderr


def test_start_with_nats_unreachable_is_a_clear_error() -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    result = subprocess.run([sys.executable, "-m", "baton_cli", "start", "negotiator", "--nats-url", url],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "cannot reach NATS" in result.stderr, result.stderr
