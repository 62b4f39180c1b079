"""The monitor's pure logic: worker adverts against the config, winners, GPUs without a driver."""

from __future__ import annotations

from baton_common.aimodels import parse_ai_models
from baton_common.pm.ticket import SignedTicket, Ticket
from baton_common.pm.winners import WinnerPending, WinnerRedeemed, WinnerRefused
from baton_common.schemas.workers import ModelState, WorkerAdvert
from baton_monitor.domain import models_warm, winners_view
from baton_monitor.nvml import Nvml

SD = "stabilityai/sd-turbo"


def advert(at: float, *models: ModelState) -> WorkerAdvert:
    return WorkerAdvert(worker_id="w1", kind="inference", job_subject="baton.jobs.inference.w1", at=at, models=models)


def test_a_model_is_warm_only_in_a_fresh_advert_that_holds_it_warm():
    models = parse_ai_models(f"text-to-image:{SD}:true,llm:meta-llama/Llama-3.1-8B-Instruct:true,image-to-video:x:false")
    warm = [m for m in models if m.warm]
    now = 1000.0
    views = models_warm([advert(now - 1, ModelState(pipeline="text-to-image", model_id=SD, warm=True, capacity=1)),
                         advert(now - 60, ModelState(pipeline="llm", model_id="meta-llama/Llama-3.1-8B-Instruct",
                                                     warm=True, capacity=1))], warm, now)
    assert [(v.pipeline, v.warm) for v in views] == [("text-to-image", True), ("llm", False)]  # the llm advert is stale
    cold = models_warm([advert(now, ModelState(pipeline="text-to-image", model_id=SD, warm=False, capacity=1))],
                       warm, now)
    assert not cold[0].warm


def ticket(face_value: int, nonce: int) -> SignedTicket:
    t = Ticket(recipient=b"\x01" * 20, sender=b"\x02" * 20, face_value=face_value, win_prob=1, sender_nonce=nonce,
               recipient_rand_hash=b"\x03" * 32)
    return SignedTicket(ticket=t, sig=b"\x04" * 65, recipient_rand=nonce, expiration_block=10)


def test_winners_are_counted_valued_and_aged_from_first_sight():
    records = {"a": WinnerPending(ticket(10**15, 1)), "b": WinnerRedeemed(ticket(2 * 10**15, 2), tx_hash=b"\x05" * 32),
               "c": WinnerRefused(ticket(10**15, 3), code="expired", reason="expired")}
    first = winners_view(records, {}, now=100.0)
    assert first.count == {"pending": 1, "redeemed": 1, "refused": 1}
    assert first.earned_wei == 2 * 10**15 and first.value["pending"] == 10**15
    assert first.oldest_pending == 0.0
    later = winners_view(records, first.first_seen, now=400.0)
    assert later.oldest_pending == 300.0
    records["a"] = WinnerRedeemed(ticket(10**15, 1), tx_hash=b"\x06" * 32)
    done = winners_view(records, later.first_seen, now=500.0)
    assert done.count["pending"] == 0 and done.oldest_pending == 0.0 and done.first_seen == {}


def test_a_host_without_an_nvidia_driver_has_no_gpus_and_says_why():
    # The real nvidia-ml-py on this machine: no libnvidia-ml, so NVML cannot initialise.
    nvml = Nvml()
    assert nvml.open() is False
    assert "NVML" in nvml.error or "nvml" in nvml.error.lower()
    assert nvml.sample() == []
    nvml.close()
