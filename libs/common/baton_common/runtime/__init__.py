"""The service runtime: what every Baton service runs on (see :mod:`.runtime`)."""

from .runtime import Runtime, run_service
from .service import Probe, ServiceBase, ServiceContext

__all__ = ["Probe", "Runtime", "ServiceBase", "ServiceContext", "run_service"]
