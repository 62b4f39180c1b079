"""schemathesis against the admin API's own OpenAPI: no 5xx, and a refused request changes nothing.

Generated requests carry an admin token, so the handlers behind auth are
exercised (a few more run without one). Each response below 500 passes; a
4xx must leave the published table's version and the audit log as they were.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import nats
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings

from baton_common.schemas import decode
from baton_common.schemas.audit import AUDIT_STREAM
from baton_common.schemas.pricing import PRICING_BUCKET, TABLE_KEY, PriceTable
from tests.pricing.conftest import ADMIN_TOKEN, PricingProc


@pytest.fixture(scope="module")
def state(pricing: PricingProc) -> Iterator[Callable[[], tuple[int, int]]]:
    """(table version in KV, messages in BATON_AUDIT), over one connection kept for the module."""
    loop = asyncio.new_event_loop()
    nc = loop.run_until_complete(nats.connect(pricing.nats.url))
    js = nc.jetstream()
    kv = loop.run_until_complete(js.key_value(PRICING_BUCKET))

    async def read() -> tuple[int, int]:
        table = decode((await kv.get(TABLE_KEY)).value, PriceTable)
        return table.version, (await js.stream_info(AUDIT_STREAM)).state.messages

    yield lambda: loop.run_until_complete(read())
    loop.run_until_complete(nc.close())
    loop.close()


@pytest.fixture(scope="module")
def admin_schema(pricing: PricingProc) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{pricing.admin}/schema/openapi.json")


schema = schemathesis.pytest.from_fixture("admin_schema")


@schema.parametrize()
@settings(max_examples=15, deadline=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=list(HealthCheck))
def test_no_5xx_and_a_refusal_changes_nothing(case: schemathesis.Case, state: Callable[[], tuple[int, int]]) -> None:
    before = state()
    response = case.call(headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10)
    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.status_code} {response.text}"
    if response.status_code >= 400:
        assert state() == before, f"{case.as_curl_command()} changed something"
        if case.operation.path.startswith("/set"):
            assert response.headers["content-type"][0].startswith("text/plain")  # go-livepeer's plain errors
        else:
            assert set(response.json()) >= {"message"}


@schema.parametrize()
@settings(max_examples=5, deadline=None, phases=[Phase.generate], suppress_health_check=list(HealthCheck))
def test_without_a_token_everything_is_401(case: schemathesis.Case, state: Callable[[], tuple[int, int]]) -> None:
    before = state()
    response = case.call(headers={"Authorization": ""}, timeout=10)
    assert response.status_code == 401
    assert state() == before
