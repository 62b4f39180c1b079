"""An HTTP listener the runtime owns: Hypercorn in the service's loop, stopped before NATS drains.

The runtime's own health server is one; a service opens more through
:meth:`ServiceContext.serve_http` (the negotiator's public TLS port). The
socket is bound and listening when :meth:`Listener.open` returns, so a port
in use fails the start-up and connections made right after queue rather than
being refused. At shutdown the runtime calls :meth:`Listener.stop_accepting`
on every listener, then :meth:`Listener.wait_closed`: Hypercorn closes the
listening sockets (new connections are refused), closes idle keep-alive
connections, refuses new HTTP/2 streams, and waits for the requests in
flight up to its ``graceful_timeout``, then cancels them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from hypercorn.asyncio.run import worker_serve
from hypercorn.config import Config as HypercornConfig
from hypercorn.config import Sockets
from hypercorn.utils import wrap_app

__all__ = ["Listener", "hypercorn_config"]

log = logging.getLogger("baton.runtime")


def hypercorn_config(bind: str | list[str], *, certfile: str | None = None, keyfile: str | None = None) -> HypercornConfig:
    """A Hypercorn config for ``bind`` ("host:port", or several), with TLS (HTTP/2 and 1.1 by ALPN) if a cert is given."""
    config = HypercornConfig()
    config.bind = [bind] if isinstance(bind, str) else list(bind)
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    if certfile or keyfile:
        if not (certfile and keyfile):
            raise ValueError("a TLS listener needs both a certificate and a key file")
        config.certfile, config.keyfile = certfile, keyfile
    return config


class Listener:
    """One HTTP server: :meth:`open` binds and serves, :meth:`stop_accepting` and :meth:`wait_closed` end it."""

    def __init__(self, name: str, app: Any, config: HypercornConfig, *, on_exit: Callable[[str], None],
                 drain_timeout: float) -> None:
        self.name = name
        self.app = app
        self.config = config
        # The runtime's shutdown budget decides, not the caller. Hypercorn gives up on the requests in
        # flight before wait_closed() would, so it cancels them itself and returns cleanly.
        self.config.graceful_timeout = 0.8 * drain_timeout
        self._on_exit = on_exit
        self._trigger = asyncio.Event()
        self._sockets: Sockets | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """The bound (host, port) pairs, TLS ones first; port 0 in the bind becomes the port chosen."""
        if self._sockets is None:
            return []
        socks = [*self._sockets.secure_sockets, *self._sockets.insecure_sockets]
        return [s.getsockname()[:2] for s in socks]

    @property
    def port(self) -> int:
        return self.addresses[0][1]

    @property
    def stopping(self) -> bool:
        return self._trigger.is_set()

    def open(self) -> None:
        """Bind and listen now (raising OSError for a port in use), then serve in a task of this loop."""
        sockets = self.config.create_sockets()
        try:
            for sock in [*sockets.secure_sockets, *sockets.insecure_sockets]:
                sock.listen(self.config.backlog)
        except OSError:
            _close_sockets(sockets)
            raise
        self._sockets = sockets
        app = wrap_app(self.app, self.config.wsgi_max_body_size, None)
        self._task = asyncio.create_task(
            worker_serve(app, self.config, sockets=sockets, shutdown_trigger=self._trigger.wait), name=f"http-{self.name}"
        )
        self._task.add_done_callback(self._exited)

    def stop_accepting(self) -> None:
        """Begin the end: no new connections or requests; those in flight go on."""
        self._trigger.set()

    async def wait_closed(self, timeout: float) -> None:
        """Wait for the requests in flight to finish, then for the server to close: at most ``timeout`` s."""
        self.stop_accepting()
        if self._task is not None:
            await asyncio.wait({self._task}, timeout=0.9 * timeout)
            if not self._task.done():  # Hypercorn did not stop at its graceful timeout: cancel it
                log.warning("HTTP listener did not stop in time; cancelling it", extra={"listener": self.name})
                self._task.cancel()
                await asyncio.wait({self._task}, timeout=0.1 * timeout)
        if self._sockets is not None:
            _close_sockets(self._sockets)

    def _exited(self, task: asyncio.Task[None]) -> None:
        if self._trigger.is_set():
            return
        exc = None if task.cancelled() else task.exception()
        self._on_exit(f"HTTP server stopped: listener {self.name} ended: {exc!r}")


def _close_sockets(sockets: Sockets) -> None:
    for sock in [*sockets.secure_sockets, *sockets.insecure_sockets, *sockets.quic_sockets]:
        with contextlib.suppress(OSError):
            sock.close()
