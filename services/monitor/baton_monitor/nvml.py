"""GPU telemetry through NVML (nvidia-ml-py), for every GPU the driver shows.

In compose the monitor reserves the GPUs' ``utility`` capability, which is
what mounts ``libnvidia-ml`` into the container. A host without a driver (or a
container without the capability) is handled cleanly: :meth:`Nvml.open`
returns False, the monitor reports ``baton_monitor_nvml_available 0`` and
zero GPUs, and says so once in its log. A value one GPU does not support
(power on some boards, encoder utilisation on a GPU without NVENC) is None.

XID errors come from an NVML event set registered for critical XID events on
every GPU; each read drains it without waiting.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from .domain import GpuSample

__all__ = ["Nvml"]

log = logging.getLogger("baton.monitor.nvml")

T = TypeVar("T")


class Nvml:
    def __init__(self, module: Any = None) -> None:
        self._nvml = module
        self._handles: list[Any] = []
        self._static: list[tuple[str, str]] = []
        self._events: Any = None
        self._xids: list[int] = []
        self._last_xid: list[int] = []
        self.error = ""
        """Why NVML is not available (empty when it is)."""

    def open(self) -> bool:
        """Initialise NVML and find the GPUs; False (with :attr:`error`) where there is no driver."""
        try:
            if self._nvml is None:
                import pynvml  # nvidia-ml-py

                self._nvml = pynvml
            nv = self._nvml
            nv.nvmlInit()
            count = nv.nvmlDeviceGetCount()
            self._handles = [nv.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        except Exception as exc:  # NVMLError (no library, no driver, no permission), ImportError
            self.error = f"{type(exc).__name__}: {exc}"
            self._handles = []
            return False
        self._static = [(_text(self._try(nv.nvmlDeviceGetName, h)) or "GPU",
                         _text(self._try(nv.nvmlDeviceGetUUID, h)) or "") for h in self._handles]
        self._xids = [0] * len(self._handles)
        self._last_xid = [0] * len(self._handles)
        self._open_events()
        return True

    def _open_events(self) -> None:
        nv = self._nvml
        try:
            self._events = nv.nvmlEventSetCreate()
            for h in self._handles:
                try:
                    nv.nvmlDeviceRegisterEvents(h, nv.nvmlEventTypeXidCriticalError, self._events)
                except Exception as exc:  # not supported on this GPU (e.g. some virtual GPUs)
                    log.info("no XID events on a GPU", extra={"error": str(exc)})
        except Exception as exc:
            log.info("no XID event set", extra={"error": str(exc)})
            self._events = None

    def _drain_events(self) -> None:
        if self._events is None:
            return
        nv = self._nvml
        uuids = [u for _, u in self._static]
        for _ in range(1000):
            try:
                event = nv.nvmlEventSetWait_v2(self._events, 0)
            except Exception:  # NVML_ERROR_TIMEOUT: nothing left
                return
            uuid = _text(self._try(nv.nvmlDeviceGetUUID, event.device))
            index = uuids.index(uuid) if uuid in uuids else 0
            if index < len(self._xids):
                self._xids[index] += 1
                self._last_xid[index] = int(event.eventData)

    def sample(self) -> list[GpuSample]:
        """Every GPU's current values (an empty list without NVML)."""
        if not self._handles:
            return []
        nv = self._nvml
        self._drain_events()
        out = []
        for i, h in enumerate(self._handles):
            name, uuid = self._static[i]
            mem = self._try(nv.nvmlDeviceGetMemoryInfo, h)
            util = self._try(nv.nvmlDeviceGetUtilizationRates, h)
            power = self._try(nv.nvmlDeviceGetPowerUsage, h)
            enc = self._try(nv.nvmlDeviceGetEncoderUtilization, h)
            dec = self._try(nv.nvmlDeviceGetDecoderUtilization, h)
            temp = self._try(nv.nvmlDeviceGetTemperature, h, nv.NVML_TEMPERATURE_GPU)
            out.append(GpuSample(
                index=i, name=name, uuid=uuid,
                temperature_c=float(temp) if temp is not None else None,
                memory_used=int(mem.used) if mem is not None else None,
                memory_total=int(mem.total) if mem is not None else None,
                utilization=util.gpu / 100 if util is not None else None,
                power_w=power / 1000 if power is not None else None,
                encoder=enc[0] / 100 if enc is not None else None,
                decoder=dec[0] / 100 if dec is not None else None,
                xid_errors=self._xids[i], last_xid=self._last_xid[i],
            ))
        return out

    def close(self) -> None:
        if self._handles:
            try:
                if self._events is not None:
                    self._nvml.nvmlEventSetFree(self._events)
                self._nvml.nvmlShutdown()
            except Exception:
                pass
            self._handles = []

    @staticmethod
    def _try(fn: Callable[..., T], *args: Any) -> T | None:
        try:
            return fn(*args)
        except Exception:  # NVML_ERROR_NOT_SUPPORTED and friends: this GPU does not report it
            return None


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)
