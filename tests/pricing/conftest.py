"""A real pricing process on a nats-server of its own, with its admin API and a tokens file."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.helpers import PrivateNats, free_port, service_env, wait_for_port, wait_ready

ADMIN_TOKEN = "alice-token-0123456789abcdef"
READER_TOKEN = "bob-token-0123456789abcdef"
GATEWAY = "0x" + "ab" * 20


@dataclass
class PricingProc:
    nats: PrivateNats
    http_port: int
    admin_port: int
    tokens_file: Path
    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.tokens_file.parent / "pricing.log"

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def start(self) -> None:
        env = service_env(self.nats.url, BATON_PRICING_HTTP_PORT=str(self.http_port),
                          BATON_PRICING_ADMIN_ADDR=f"127.0.0.1:{self.admin_port}",
                          BATON_PRICING_ADMIN_TOKENS_FILE=str(self.tokens_file), BATON_LOG_FORMAT="text", **self.env)
        # Logs to a file: a pipe nobody reads fills up and blocks the service mid-request.
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "baton_pricing", *self.args], env=env, stderr=log)
        try:
            wait_ready(self.http_port, self.proc)
        except AssertionError:
            raise AssertionError(self.log.read_text()[-3000:]) from None
        wait_for_port(self.admin_port)

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.terminate()
        code = self.proc.wait(timeout=25)
        self.proc = None
        return code

    def client(self, token: str | None = ADMIN_TOKEN) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.admin, headers=headers, timeout=10)

    def metrics(self) -> str:
        return httpx.get(f"http://127.0.0.1:{self.http_port}/metrics").text


def tokens_file(tmp: Path) -> Path:
    path = tmp / "tokens"
    path.write_text(f"# holder role token\nalice admin {ADMIN_TOKEN}\nbob read-only {READER_TOKEN}\n")
    return path


def make(tmp: Path, *args: str, **env: str) -> PricingProc:
    server = PrivateNats(free_port(), store=tmp / "js")
    server.start()
    return PricingProc(nats=server, http_port=free_port(), admin_port=free_port(), tokens_file=tokens_file(tmp),
                       args=list(args), env=env)


@pytest.fixture(scope="module")
def pricing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PricingProc]:
    """One offchain pricing for a module: 1200 wei per 1000 pixels, one gateway with a deal, an LLM priced in USD."""
    tmp = tmp_path_factory.mktemp("pricing")
    models = tmp / "models.json"
    models.write_text('[{"pipeline":"llm","model_id":"m","price_per_unit":0.000002,"currency":"USD","pixels_per_unit":1},'
                      '{"pipeline":"text-to-image","model_id":"sd","price_per_unit":4768371,"pixels_per_unit":1000000}]')
    gateways = json.dumps({"gateways": [{"ethaddress": GATEWAY, "priceperunit": 800, "pixelsperunit": 1}]})
    bounds = json.dumps({"bounds": [{"gateway": GATEWAY, "floor": "700", "ceiling": "900"}]})
    proc = make(tmp, "-pricePerUnit=1200", "-pixelsPerUnit=1000", f"-pricePerGateway={gateways}",
                f"-aiModels={models}", BATON_PRICING_ETH_USD_RATE="2000", BATON_PRICING_PRICE_BOUNDS=bounds)
    proc.start()
    yield proc
    try:
        if proc.proc is not None:
            proc.stop()
    finally:
        proc.nats.stop()
