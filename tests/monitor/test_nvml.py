"""The NVML adapter's reading of every GPU, against a stand-in for nvidia-ml-py's module.

No machine here has an NVIDIA driver (test_domain.py runs the real library
and checks the no-GPU path); this stand-in answers with pynvml's own names,
shapes and units (milliwatts, percent, bytes, XID events), so what the
adapter turns them into is checked. A GPU that does not support a query
raises, as NVML_ERROR_NOT_SUPPORTED does.
"""

from __future__ import annotations

from types import SimpleNamespace

from baton_monitor.nvml import Nvml


class NotSupported(Exception):
    pass


class FakeNvml:
    NVML_TEMPERATURE_GPU = 0
    nvmlEventTypeXidCriticalError = 8

    def __init__(self) -> None:
        self.events = [SimpleNamespace(device="h1", eventData=79)]
        self.shut = False

    def nvmlInit(self) -> None: ...
    def nvmlShutdown(self) -> None: self.shut = True
    def nvmlDeviceGetCount(self) -> int: return 2
    def nvmlDeviceGetHandleByIndex(self, i: int) -> str: return f"h{i}"
    def nvmlDeviceGetName(self, h: str) -> str: return "NVIDIA H200" if h == "h0" else "Tesla T4"
    def nvmlDeviceGetUUID(self, h: str) -> bytes: return f"GPU-{h}".encode()
    def nvmlDeviceGetMemoryInfo(self, h: str): return SimpleNamespace(used=70 * 2**30, total=141 * 2**30, free=0)
    def nvmlDeviceGetUtilizationRates(self, h: str): return SimpleNamespace(gpu=37, memory=20)
    def nvmlDeviceGetTemperature(self, h: str, sensor: int) -> int: return 61 if h == "h0" else 45

    def nvmlDeviceGetPowerUsage(self, h: str) -> int:
        if h == "h1":
            raise NotSupported
        return 312_500

    def nvmlDeviceGetEncoderUtilization(self, h: str): return (12, 167000)
    def nvmlDeviceGetDecoderUtilization(self, h: str): return (3, 167000)
    def nvmlEventSetCreate(self) -> str: return "set"
    def nvmlDeviceRegisterEvents(self, h: str, kind: int, s: str) -> None: ...
    def nvmlEventSetFree(self, s: str) -> None: ...

    def nvmlEventSetWait_v2(self, s: str, timeout_ms: int):
        if not self.events:
            raise TimeoutError("NVML_ERROR_TIMEOUT")
        return self.events.pop(0)


def test_every_gpu_is_read_in_si_units_with_unsupported_values_left_out():
    fake = FakeNvml()
    nvml = Nvml(fake)
    assert nvml.open() and nvml.error == ""
    h200, t4 = nvml.sample()
    assert (h200.index, h200.name, h200.uuid) == (0, "NVIDIA H200", "GPU-h0")
    assert h200.temperature_c == 61 and h200.memory_used == 70 * 2**30 and h200.memory_total == 141 * 2**30
    assert h200.utilization == 0.37 and h200.power_w == 312.5 and h200.encoder == 0.12 and h200.decoder == 0.03
    assert t4.power_w is None  # not supported on this board: no value, no error
    assert (h200.xid_errors, t4.xid_errors, t4.last_xid) == (0, 1, 79)
    assert nvml.sample()[1].xid_errors == 1  # counted once
    nvml.close()
    assert fake.shut
