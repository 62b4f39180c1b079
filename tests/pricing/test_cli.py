"""`baton price show|set|reset|history` against a real pricing process."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import nats

from baton_common.schemas import decode
from baton_common.schemas.pricing import PRICING_BUCKET, TABLE_KEY, PriceTable
from tests.pricing.conftest import ADMIN_TOKEN, GATEWAY, READER_TOKEN, PricingProc


def baton(pricing: PricingProc, token_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "baton_cli", "price", "--url", pricing.admin,
                           "--token-file", str(token_file), *args], capture_output=True, text=True, timeout=30)


def token(tmp_path: Path, value: str) -> Path:
    path = tmp_path / f"token-{value[:3]}"
    path.write_text(value + "\n")
    return path


def test_price_set_is_in_the_published_table_within_a_second(pricing: PricingProc, tmp_path: Path) -> None:
    alice = token(tmp_path, ADMIN_TOKEN)

    async def run() -> tuple[subprocess.CompletedProcess[str], PriceTable, float]:
        nc = await nats.connect(pricing.nats.url)
        kv = await nc.jetstream().key_value(PRICING_BUCKET)
        watcher = await kv.watch(TABLE_KEY)
        before = decode((await watcher.updates(timeout=5)).value, PriceTable)
        done = await asyncio.to_thread(baton, pricing, alice, "set", "--gateway", GATEWAY, "--price", "850",
                                       "--floor", "800", "--ceiling", "0.000000000000001eth",
                                       "--reason", "renewed contract")
        returned = time.monotonic()
        while True:
            entry = await watcher.updates(timeout=1.0)
            if entry is not None and entry.value and decode(entry.value, PriceTable).version > before.version:
                break
        seen = time.monotonic() - returned
        await watcher.stop()
        await nc.close()
        return done, decode(entry.value, PriceTable), seen

    done, table, seen = asyncio.run(run())
    assert done.returncode == 0, done.stderr
    assert seen < 1.0  # already put when the command returned: the watcher has it at once
    assert table.base_for(GATEWAY) == 850
    assert (table.gateway(GATEWAY).floor.value, table.gateway(GATEWAY).ceiling.value) == (800, 1000)  # type: ignore[union-attr]

    shown = baton(pricing, token(tmp_path, READER_TOKEN), "show", "--json")
    assert shown.returncode == 0
    rule = next(r for r in json.loads(shown.stdout)["rules"] if r["gateway"] == GATEWAY and not r["pipeline"])
    assert (rule["source"], rule["price"]["price"], rule["ceiling"]["price"]) == ("api", "850wei", "0.000000000000001eth")
    text = baton(pricing, alice, "show").stdout
    assert GATEWAY in text and "850wei" in text
    history = baton(pricing, alice, "history", "--json", "--limit", "1")
    event = json.loads(history.stdout)[0]
    assert (event["actor"], event["reason"], event["target"]) == ("alice", "renewed contract", GATEWAY)
    assert "renewed contract" in baton(pricing, alice, "history").stdout


def test_refusals_and_an_unreachable_api(pricing: PricingProc, tmp_path: Path) -> None:
    bob = token(tmp_path, READER_TOKEN)
    refused = baton(pricing, bob, "set", "--price", "1", "--reason", "try")
    assert refused.returncode == 1 and "read-only" in refused.stderr
    bad = baton(pricing, token(tmp_path, ADMIN_TOKEN), "set", "--price", "1EUR", "--reason", "try")
    assert bad.returncode == 1 and "EUR" in bad.stderr
    malformed = baton(pricing, bob, "set", "--price", "1,5", "--reason", "try")
    assert malformed.returncode == 1 and "<price><currency>" in malformed.stderr
    missing = baton(pricing, tmp_path / "nope", "show")
    assert missing.returncode == 2 and "token file" in missing.stderr
    away = subprocess.run([sys.executable, "-m", "baton_cli", "price", "--url", "http://127.0.0.1:9", "--token-file",
                           str(bob), "show"], capture_output=True, text=True, timeout=30)
    assert away.returncode == 2 and "cannot reach" in away.stderr
