"""Transcode sessions: go-livepeer's per-session segment buffer (4, serial) and 70 s idle expiry.

EndTranscodingSession ends a session once its segments in flight are done: until then it still counts toward
-maxSessions and a segment sent under its token joins the same buffer (end-then-resend gets no fresh one).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from . import metrics
from .errors import Capped

__all__ = ["SEGMENT_BUFFER", "SESSION_IDLE", "Session", "Sessions"]

SEGMENT_BUFFER = 4
SESSION_IDLE = 70.0


class Session:
    def __init__(self, session_id: str, now: float) -> None:
        self.id = session_id
        self.lock = asyncio.Lock()
        self.queued = 0
        self.last_used = now
        self.ended = False
        """EndTranscodingSession came: dropped once no segment of it is in flight."""


class Sessions:
    def __init__(self, max_sessions: Callable[[], int], *, clock: Callable[[], float] = time.monotonic) -> None:
        self._max = max_sessions
        self._clock = clock
        self._sessions: dict[str, Session] = {}

    def __contains__(self, session_id: str) -> bool:
        self._expire()
        return session_id in self._sessions

    def __len__(self) -> int:
        self._expire()
        return len(self._sessions)

    def _expire(self) -> None:
        now = self._clock()
        for sid, s in list(self._sessions.items()):
            if s.queued == 0 and (s.ended or now - s.last_used > SESSION_IDLE):
                del self._sessions[sid]
        metrics.CURRENT_SESSIONS.set(len(self._sessions))

    def check(self, session_id: str) -> None:
        """OrchestratorCapped if ``session_id`` is new and -maxSessions are open; opens nothing."""
        self._expire()
        if session_id not in self._sessions and len(self._sessions) >= self._max():
            raise Capped()

    def open(self, session_id: str) -> Session:
        """The session (new ones only while under -maxSessions: else OrchestratorCapped)."""
        self._expire()
        session = self._sessions.get(session_id)
        if session is None:
            if len(self._sessions) >= self._max():
                raise Capped()
            session = self._sessions[session_id] = Session(session_id, self._clock())
            metrics.CURRENT_SESSIONS.set(len(self._sessions))
        session.last_used = self._clock()
        session.ended = False  # a segment after the end: the session goes on
        return session

    def end(self, session_id: str) -> None:
        """End the session: now if no segment of it is in flight, else once they are done."""
        session = self._sessions.get(session_id)
        if session is not None:
            session.ended = True
        self._expire()
