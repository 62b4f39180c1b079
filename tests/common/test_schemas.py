"""The bus messages: pinned schemas, tags and compatibility rules."""

from __future__ import annotations

import json
import os
from pathlib import Path

import msgspec
import pytest

from baton_common.pm.nonces import NonceRecord
from baton_common.pm.ports import BalanceEntry
from baton_common.pm.ticket import SignedTicket
from baton_common.schemas import Heartbeat, Message, all_messages, decode, encode
from baton_common.schemas.transcode import TranscodeParams

SNAPSHOT = Path(__file__).parent / "snapshots" / "bus_schemas.json"


# Values that other processes read from NATS KV buckets, beside the tagged bus messages.
KV_VALUES = [BalanceEntry, NonceRecord, SignedTicket]
# Job params that travel inside JobRequest.params (a dict), pinned like the messages.
JOB_PARAMS = [TranscodeParams]


def current_schemas() -> dict:
    _, components = msgspec.json.schema_components([*all_messages(), *KV_VALUES, *JOB_PARAMS], ref_template="#/$defs/{name}")
    return json.loads(json.dumps(components))  # as pinned: tuple defaults become lists


def test_every_bus_message_schema_is_pinned() -> None:
    """A change to any message shows up here: update the snapshot on purpose, in review.

    BATON_UPDATE_SNAPSHOTS=1 rewrites tests/common/snapshots/bus_schemas.json.
    """
    schemas = current_schemas()
    if os.environ.get("BATON_UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.write_text(json.dumps(schemas, indent=2, sort_keys=True) + "\n")
    pinned = json.loads(SNAPSHOT.read_text())
    assert schemas == pinned, "bus message schemas changed; if on purpose, rerun with BATON_UPDATE_SNAPSHOTS=1"


def test_tags_are_versioned_and_unique() -> None:
    tags = [msgspec.inspect.type_info(m).tag for m in all_messages()]
    assert len(tags) == len(set(tags))
    for tag in tags:
        name, _, version = str(tag).rpartition(".v")
        assert name and version.isdigit(), f"tag {tag!r} must look like 'name.v1'"


def test_consumers_ignore_unknown_fields() -> None:
    hb = Heartbeat(service="pricing", instance="a", version="1", state="ready", started_at=1.0, at=2.0)
    raw = json.loads(encode(hb))
    raw["added_in_v2"] = {"anything": 1}
    assert decode(json.dumps(raw).encode(), Heartbeat) == hb


def test_messages_are_frozen_and_carry_their_tag() -> None:
    hb = Heartbeat(service="pricing", instance="a", version="1", state="ready", started_at=1.0, at=2.0)
    assert json.loads(encode(hb))["type"] == "heartbeat.v1"
    with pytest.raises(AttributeError):
        hb.state = "stopping"  # type: ignore[misc]
    assert issubclass(Heartbeat, Message)


def test_big_wei_amounts_survive_json() -> None:
    class Amount(Message, frozen=True, kw_only=True, tag="test-amount.v1"):
        wei: int

    big = 2**200 + 7
    assert decode(encode(Amount(wei=big)), Amount).wei == big
