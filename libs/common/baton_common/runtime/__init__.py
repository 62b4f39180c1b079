"""The service runtime: what every Baton service runs on (see :mod:`.runtime`)."""

from .budget import SHUTDOWN_BUDGET, ShutdownPhases
from .listener import Listener
from .runtime import Runtime, run_loop, run_service
from .service import Probe, ServiceBase, ServiceContext

__all__ = ["SHUTDOWN_BUDGET", "Listener", "Probe", "Runtime", "ServiceBase", "ServiceContext", "ShutdownPhases",
           "run_loop", "run_service"]
