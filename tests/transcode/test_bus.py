"""What a transcode worker advertises in ``baton-workers`` for each kind of hardware."""

from __future__ import annotations

import shutil

from baton_common.schemas.workers import Gpu
from baton_transcode.bus import Advertiser
from baton_transcode.domain import Capabilities
from baton_transcode.ffmpeg import nvml_gpu


def advertiser(caps: Capabilities, gpu: Gpu | None = None) -> Advertiser:
    return Advertiser(None, worker_id="host-a.gpu0", capacity=3, in_use=lambda: 1, caps=caps, gpu=gpu,  # type: ignore[arg-type]
                      version="0.1.0", clock=lambda: 1000.0)


def test_an_h200_worker_advertises_nvdec_and_no_nvenc() -> None:
    ad = advertiser(Capabilities(gpu="0", nvdec=frozenset({"h264", "h265"}), gpu_name="NVIDIA H200"),
                    Gpu(id="0", name="NVIDIA H200", major=9, minor=0, memory_total=141 * 2**30)).advert()
    assert (ad.kind, ad.worker_id, ad.at) == ("transcode", "host-a.gpu0", 1000.0)
    assert ad.job_subject == "baton.jobs.transcode.host-a_gpu0"
    assert ad.hardware.encoders == () and ad.hardware.decoders == ("h264_cuvid", "hevc_cuvid")
    assert ad.hardware.gpus[0].name == "NVIDIA H200" and ad.hardware.gpus[0].major == 9
    (model,) = ad.models
    assert (model.pipeline, model.capacity, model.in_use, model.warm) == ("transcode", 3, 1, True)


def test_a_consumer_gpu_advertises_both_and_a_cpu_worker_neither() -> None:
    full = advertiser(Capabilities(gpu="1", nvenc=frozenset({"h264", "h265"}), nvdec=frozenset({"h264"}))).advert()
    assert full.hardware.encoders == ("h264_nvenc", "hevc_nvenc") and full.hardware.decoders == ("h264_cuvid",)
    assert full.hardware.gpus[0].id == "1"  # without NVML, the index the operator configured
    cpu = advertiser(Capabilities()).advert()
    assert cpu.hardware.gpus == () and cpu.hardware.encoders == () and cpu.hardware.decoders == ()


def test_nvml_names_the_gpu_only_where_a_driver_is() -> None:
    if shutil.which("nvidia-smi") is None:
        assert nvml_gpu("0") is None
    else:
        gpu = nvml_gpu("0")
        assert gpu is not None and gpu.name and gpu.memory_total > 0
