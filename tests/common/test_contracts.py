"""The service contracts: the map in docs/architecture.md matches the declarations, and the messages behave."""

from __future__ import annotations

from fractions import Fraction

import msgspec
import pytest

from baton_common.schemas import decode, encode
from baton_common.schemas.chain import ChainValue, L1Head, SenderInfo, sender_key
from baton_common.schemas.jobs import INLINE_BODY_MAX, JobChunk, JobError, JobReply, JobResult, job_subject
from baton_common.schemas.pricing import CapabilityPrice, GatewayPrice, PriceTable, WeiPrice
from baton_common.schemas.registry import ALL, STORES
from baton_common.schemas.storage import KvSpec, ObjectStoreSpec, StreamSpec, SubjectSpec
from baton_common.schemas.workers import ModelState, WorkerAdvert, advert_key
from tests.conftest import REPO


def architecture_rows() -> dict[str, str]:
    rows = {}
    for line in (REPO / "docs" / "architecture.md").read_text().splitlines():
        if line.startswith("| `"):
            name = line.split("|")[1].strip().strip("`")
            rows[name] = line
    return rows


def test_every_declared_store_and_subject_has_its_row() -> None:
    rows = architecture_rows()
    names = [s.subject if isinstance(s, SubjectSpec) else s.name for s in ALL]
    missing = [n for n in names if n not in rows]
    assert missing == [], "add these to the table in docs/architecture.md"


@pytest.mark.parametrize("spec", STORES, ids=lambda s: s.name)
def test_each_row_says_what_the_declaration_says(spec: KvSpec | StreamSpec | ObjectStoreSpec) -> None:
    row = architecture_rows()[spec.name]
    retention = row.split("|")[6]
    assert spec.storage in retention
    if isinstance(spec, KvSpec):
        assert f"history {spec.history}" in retention
        assert ("no TTL" in retention) == (spec.ttl is None)


def test_the_payment_buckets_use_the_pm_cores_own_lifetimes() -> None:
    from baton_common.pm import BALANCE_IDLE_TTL
    from baton_common.pm_nats import NONCE_BUCKET_TTL
    from baton_common.schemas.payments import BALANCES, NONCES, WINNERS

    assert (NONCES.ttl, BALANCES.ttl, WINNERS.ttl) == (NONCE_BUCKET_TTL, BALANCE_IDLE_TTL, None)
    assert {b.storage for b in (NONCES, BALANCES, WINNERS)} == {"file"}


def test_bucket_names_are_unique_and_valid_for_nats() -> None:
    names = [s.name for s in STORES]
    assert len(names) == len(set(names))
    for spec in STORES:
        allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")
        assert set(spec.name) <= allowed, spec.name


def test_any_chain_key_decodes_with_one_union() -> None:
    values = [
        L1Head(l1_block=123, read_at=1.0, block=123),
        SenderInfo(sender="0xab", deposit=2**70, reserve=5, read_at=2.0),
    ]
    assert [decode(encode(v), ChainValue) for v in values] == values  # type: ignore[arg-type]
    assert decode(encode(values[1]), ChainValue).deposit == 2**70  # wei above 2**64 survives
    assert sender_key("0xABcd") == "sender.0xabcd"


def test_a_job_reply_is_one_tagged_union() -> None:
    for reply in (
        JobResult(job_id="j", data=b'{"images":[]}'),
        JobError(job_id="j", code="busy", retryable=True),
        JobChunk(job_id="j", seq=0, data='{"choices":[]}'),
    ):
        assert decode(encode(reply), JobReply) == reply  # type: ignore[arg-type]
    with pytest.raises(msgspec.ValidationError):
        decode(b'{"type":"job-error.v1","job_id":"j","code":"made_up"}', JobError)


def test_an_inline_body_stays_under_the_max_payload() -> None:
    from baton_common.schemas.jobs import JobRequest

    job = JobRequest(job_id="j" * 36, kind="transcode", pipeline="transcode", deadline=1.0, body=bytes(INLINE_BODY_MAX))
    assert len(encode(job)) < 1024 * 1024


def test_adverts_name_a_subject_a_worker_id_cannot_break() -> None:
    assert job_subject("inference", "gpu.0 host*") == "baton.jobs.inference.gpu_0_host_"
    assert advert_key("inference", "gpu.0") == "inference.gpu_0"
    advert = WorkerAdvert(
        worker_id="w", kind="inference", job_subject=job_subject("inference", "w"), at=1.0,
        models=(ModelState(pipeline="text-to-image", model_id="stabilityai/sd-turbo", warm=True, capacity=1),),
    )
    assert decode(encode(advert), WorkerAdvert) == advert


def test_the_negotiator_looks_up_and_clamps_from_the_published_table() -> None:
    gw = "0xAbC"
    table = PriceTable(
        base=WeiPrice(num=1000),
        gateways={
            gw.lower(): GatewayPrice(price=WeiPrice(num=800), floor=WeiPrice(num=700), ceiling=WeiPrice(num=900)),
            "default": GatewayPrice(ceiling=WeiPrice(num=5000)),
        },
        capabilities=(
            CapabilityPrice(capability=27, model_id="m", price=WeiPrice(num=3, den=2)),
            CapabilityPrice(capability=27, model_id="m", gateway=gw.lower(), price=WeiPrice(num=1)),
        ),
        at=1.0,
    )
    assert table.base_for(gw) == 800 and table.base_for("0xother") == 1000
    assert table.capability_price(27, "m", gw) == 1 and table.capability_price(27, "m", "0xo") == Fraction(3, 2)
    assert table.capability_price(27, "other", gw) is None
    assert table.clamp(Fraction(950), gw) == 900 and table.clamp(Fraction(10), gw) == 700
    assert table.clamp(Fraction(6000), "0xother") == 5000
