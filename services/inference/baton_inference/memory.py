"""What a loaded model holds: NVML's used GPU memory around the load, or its stub processes' RSS on the CPU."""

from __future__ import annotations

from typing import Any

import psutil

__all__ = ["Gpu", "host_memory", "stub_rss"]


def stub_rss(model_name: str) -> int:
    """RSS of the Triton Python stub processes of ``model_name`` (visible when Triton runs on this host)."""
    total = 0
    marker = f"{model_name}_"
    for proc in psutil.process_iter(["cmdline", "memory_info"]):
        cmdline = proc.info.get("cmdline") or []
        if cmdline and cmdline[0].endswith("triton_python_backend_stub") and any(a.startswith(marker) for a in cmdline):
            info = proc.info.get("memory_info")
            total += info.rss if info else 0
    return total


def host_memory() -> int:
    return int(psutil.virtual_memory().total)


class Gpu:
    """One GPU through NVML (nvidia-ml-py); ``available`` is False without a driver."""

    def __init__(self, index: str) -> None:
        self.handle: Any = None
        self.name = ""
        if not index:
            return
        try:
            import pynvml  # noqa: PLC0415 - only present where a driver is

            pynvml.nvmlInit()
            self.handle = pynvml.nvmlDeviceGetHandleByIndex(int(index))
            self.name = pynvml.nvmlDeviceGetName(self.handle)
            self._nvml = pynvml
        except Exception:  # noqa: BLE001 - no driver, no library, bad index: no GPU figures
            self.handle = None

    @property
    def available(self) -> bool:
        return self.handle is not None

    def memory(self) -> tuple[int, int]:
        """(total, used) bytes."""
        info = self._nvml.nvmlDeviceGetMemoryInfo(self.handle)
        return int(info.total), int(info.used)
