"""The first program a supervised child runs: die with the supervisor, then become the real command.

    python -I -S _child.py SUPERVISOR_PID -- COMMAND [ARG...]

It asks Linux for SIGTERM when its parent dies (prctl PR_SET_PDEATHSIG),
then checks that its parent is still ``SUPERVISOR_PID``: a supervisor that
died before the prctl would never send that signal, so the child exits at
once instead of running orphaned. Then it execs the command, which keeps the
death signal. Doing this in a fresh process, not in a ``preexec_fn``, keeps
ctypes and any lock out of the fork of a threaded parent (rich's refresh
thread runs in ``baton up``). Only the standard library: it runs isolated
and by path.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

__all__ = ["PARENT_GONE", "main"]

PR_SET_PDEATHSIG = 1
PARENT_GONE = 3
"""Exit status when the supervisor died before the child could start."""


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: _child.py SUPERVISOR_PID -- COMMAND [ARG...]", file=sys.stderr)
        return 2
    supervisor, command = int(argv[0]), argv[2:]
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: no death signal, but the supervisor still stops us
        pass
    if os.getppid() != supervisor:
        print(f"supervisor {supervisor} is gone; not starting {command[0]}", file=sys.stderr)
        return PARENT_GONE
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        print(f"cannot start {command[0]}: {exc}", file=sys.stderr)
        return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
