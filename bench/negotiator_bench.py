"""GetOrchestrator latency and throughput next to a bare grpcio server; a paid AI job's overhead.

    .venv/bin/python bench/negotiator_bench.py [--requests 2000] [--clients 1,50,500] [--jobs 50]

In one run, on this machine: a real nats-server, the negotiator as its own
process (offchain, then on-chain with a fake chain publisher), and a bare
grpcio server answering a fixed OrchestratorInfo over the same TLS certificate.
Clients are grpcio asyncio channels in a client process of their own (one
channel per 10 clients, as gateways each hold one connection), pinning the
self-signed certificate. The paid AI job runs text-to-image through the
negotiator with an echo worker, next to a JobRequest sent to that worker
directly: the difference is the negotiator's overhead per job.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import grpc  # noqa: E402
import nats  # noqa: E402
from eth_account import Account  # noqa: E402

from baton_common.proto import lp_rpc_pb2  # noqa: E402
from baton_common.schemas import decode, encode  # noqa: E402
from baton_common.schemas.jobs import JobRequest, JobResult  # noqa: E402
from baton_common.schemas.workers import WORKERS  # noqa: E402
from baton_common.streams import ensure_kv  # noqa: E402
from tests.helpers import free_port, nats_server_binary, service_env, wait_for_port, wait_ready  # noqa: E402
from tests.negotiator.fake_chain import FakeChain  # noqa: E402
from tests.negotiator.gateway import TestGateway, ai_caps  # noqa: E402
from tests.negotiator.workers import TestWorker  # noqa: E402

FIXED = lp_rpc_pb2.OrchestratorInfo(transcoder="https://127.0.0.1:8936", address=b"\x01" * 20,
                                    price_info=lp_rpc_pb2.PriceInfo(pricePerUnit=1000, pixelsPerUnit=1))


# --- the bare grpcio server -------------------------------------------------------------

def bare_server(port: int, cert: str, key: str) -> None:
    async def main() -> None:
        server = grpc.aio.server()

        async def get(request: lp_rpc_pb2.OrchestratorRequest, context: object) -> lp_rpc_pb2.OrchestratorInfo:
            return FIXED

        handler = grpc.method_handlers_generic_handler("net.Orchestrator", {
            "GetOrchestrator": grpc.unary_unary_rpc_method_handler(
                get, request_deserializer=lp_rpc_pb2.OrchestratorRequest.FromString,
                response_serializer=lp_rpc_pb2.OrchestratorInfo.SerializeToString)})
        server.add_generic_rpc_handlers((handler,))
        server.add_secure_port(f"127.0.0.1:{port}", grpc.ssl_server_credentials(
            [(Path(key).read_bytes(), Path(cert).read_bytes())]))
        await server.start()
        await server.wait_for_termination()

    asyncio.run(main())


# --- the load client (its own process) ------------------------------------------------------

def load(port: int, cert: bytes, clients: int, total: int, requests: list[bytes], out: multiprocessing.Queue) -> None:
    async def main() -> dict[str, float]:
        creds = grpc.ssl_channel_credentials(cert)
        channels = [grpc.aio.secure_channel(f"127.0.0.1:{port}", creds, options=[
            ("grpc.ssl_target_name_override", "localhost"), ("grpc.use_local_subchannel_pool", 1)])
            for _ in range(max(1, clients // 10))]
        calls = [ch.unary_unary("/net.Orchestrator/GetOrchestrator") for ch in channels]
        for call in calls:
            await call(requests[0], timeout=30)
        latencies: list[float] = []
        left = [total]

        async def client(n: int) -> None:
            call, req = calls[n % len(calls)], requests[n % len(requests)]
            while left[0] > 0:
                left[0] -= 1
                started = time.perf_counter()
                await call(req, timeout=60)
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(client(n) for n in range(clients)))
        elapsed = time.perf_counter() - started
        for ch in channels:
            await ch.close()
        latencies.sort()
        return {"p50": latencies[len(latencies) // 2] * 1e3, "p99": latencies[int(len(latencies) * 0.99)] * 1e3,
                "rps": len(latencies) / elapsed}

    out.put(asyncio.run(main()))


def measure(port: int, cert: bytes, clients: int, total: int, requests: list[bytes]) -> dict[str, float]:
    queue: multiprocessing.Queue = multiprocessing.Queue()
    proc = multiprocessing.Process(target=load, args=(port, cert, clients, total, requests, queue))
    proc.start()
    result = queue.get(timeout=600)
    proc.join()
    return result


# --- helpers ------------------------------------------------------------------------------

def start_negotiator(nats_url: str, state: Path, grpc_port: int, **env: str) -> subprocess.Popen[bytes]:
    health = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "baton_negotiator"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=service_env(
                                nats_url, BATON_NEGOTIATOR_SERVICE_ADDR=f"127.0.0.1:{grpc_port}",
                                BATON_NEGOTIATOR_JOB_PORT="0", BATON_HTTP_PORT=str(health),
                                BATON_NEGOTIATOR_STATE_DIR=str(state), BATON_LOG_LEVEL="error", **env))
    wait_ready(health, proc, timeout=30)
    return proc


def signed_requests(count: int) -> list[bytes]:
    from eth_account.messages import encode_defunct
    from eth_utils import keccak

    out = []
    for _ in range(count):
        acct = Account.create()
        sig = Account.sign_message(encode_defunct(primitive=keccak(acct.address.encode())), acct.key).signature
        out.append(lp_rpc_pb2.OrchestratorRequest(address=bytes.fromhex(acct.address[2:]),
                                                  sig=bytes(sig)).SerializeToString())
    return out


def row(name: str, r: dict[str, float]) -> str:
    return f"  {name:<28} p50 {r['p50']:8.2f} ms   p99 {r['p99']:8.2f} ms   {r['rps']:8.0f} req/s"


async def paid_jobs(nats_url: str, state: Path, jobs: int) -> None:
    nc = await nats.connect(nats_url)
    orch = Account.create()
    chain = await FakeChain(nc, orch.address).start()
    worker = await TestWorker(nc, await ensure_kv(nc.jetstream(), WORKERS), "bench-echo", capacity=4).start()
    (state / "secret").write_text("33" * 32)
    (state / "keystore.json").write_text(json.dumps(Account.encrypt(orch.key, "pw", kdf="scrypt", iterations=2**10)))
    port = free_port()
    proc = start_negotiator(nats_url, state / "onchain", port, BATON_NETWORK="arbitrum-one-mainnet",
                            BATON_NEGOTIATOR_TICKET_SECRET_FILE=str(state / "secret"),
                            BATON_NEGOTIATOR_ETH_KEYSTORE_PATH=str(state / "keystore.json"),
                            BATON_NEGOTIATOR_ETH_PASSWORD="pw", BATON_NEGOTIATOR_PRICE_PER_UNIT="1000",
                            # the 20 senders below are new from one client: their first lookups are not what
                            # this measures (the cold-lookup limits would refuse 15 of them at once)
                            BATON_NEGOTIATOR_SENDER_LOOKUPS_PER_SECOND="1000",
                            BATON_NEGOTIATOR_SENDER_LOOKUPS_PER_CLIENT_PER_SECOND="500")
    try:
        gw = TestGateway("127.0.0.1", port)
        await asyncio.sleep(0.5)
        signed = signed_requests(20)
        onchain = await asyncio.to_thread(measure, port, gw.cert, 50, 1000, signed)
        print("GetOrchestrator on-chain (signature + ticket params), 50 clients:")
        print(row("negotiator", onchain))

        info = await asyncio.to_thread(gw.get_orchestrator, caps=ai_caps(27, "echo-model"))
        seg = gw.segment_header(info, manifest=b"27_echo-model")
        payments = [gw.payment_header(info) for _ in range(jobs)]
        body = {"prompt": "a cat", "model_id": "echo-model"}
        through: list[float] = []
        with gw.http() as client:
            await asyncio.to_thread(client.post, f"{info.transcoder}/text-to-image", json=body,
                                    headers={"Livepeer-Payment": gw.payment_header(info), "Livepeer-Segment": seg})
            for payment in payments:
                started = time.perf_counter()
                r = await asyncio.to_thread(client.post, f"{info.transcoder}/text-to-image", json=body,
                                            headers={"Livepeer-Payment": payment, "Livepeer-Segment": seg})
                through.append(time.perf_counter() - started)
                assert r.status_code == 200, r.text
        direct: list[float] = []
        request = JobRequest(job_id="bench", kind="inference", pipeline="text-to-image", model_id="echo-model",
                             deadline=time.time() + 600, params={"prompt": "a cat", "height": 576, "width": 1024})
        nc2 = await nats.connect(nats_url)
        for n in range(jobs):
            started = time.perf_counter()
            reply = await nc2.request("baton.jobs.inference.bench-echo", encode(request), timeout=10)
            direct.append(time.perf_counter() - started)
            decode(reply.data, JobResult)
            del n
        await nc2.close()
        a, b = statistics.median(through) * 1e3, statistics.median(direct) * 1e3
        print(f"Paid text-to-image, {jobs} sequential jobs (one ticket each, HTTPS/1.1):")
        print(f"  through the negotiator       median {a:8.2f} ms")
        print(f"  echo worker directly (NATS)  median {b:8.2f} ms")
        print(f"  negotiator overhead per job         {a - b:8.2f} ms")
        gw.close()
    finally:
        proc.terminate()
        proc.wait()
        await worker.stop()
        await chain.stop()
        await nc.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="GetOrchestrator calls per concurrency level")
    parser.add_argument("--clients", default="1,50,500", help="concurrency levels, comma-separated")
    parser.add_argument("--jobs", type=int, default=50, help="paid AI jobs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp)
        nats_port = free_port()
        server = subprocess.Popen([nats_server_binary(), "-js", "-a", "127.0.0.1", "-p", str(nats_port),
                                   "-sd", str(state / "js")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(nats_port)
        nats_url = f"nats://127.0.0.1:{nats_port}"
        port, bare_port = free_port(), free_port()
        negotiator = start_negotiator(nats_url, state / "offchain", port)
        cert, key = state / "offchain" / "cert.pem", state / "offchain" / "key.pem"
        bare = multiprocessing.Process(target=bare_server, args=(bare_port, str(cert), str(key)), daemon=True)
        bare.start()
        wait_for_port(bare_port)
        try:
            print(f"GetOrchestrator over TLS, offchain, {args.requests} calls per level, {os.cpu_count()} CPUs:")
            request = [lp_rpc_pb2.OrchestratorRequest(address=b"\x02" * 20).SerializeToString()]
            for clients in (int(c) for c in args.clients.split(",")):
                ours = measure(port, cert.read_bytes(), clients, args.requests, request)
                theirs = measure(bare_port, cert.read_bytes(), clients, args.requests, request)
                print(f" {clients} clients:")
                print(row("negotiator", ours))
                print(row("bare grpcio, fixed answer", theirs))
                print(f"  p99 ratio {ours['p99'] / theirs['p99']:.2f} (goal <= 1.5 at 500 clients), "
                      f"throughput ratio {ours['rps'] / theirs['rps']:.2f}")
            asyncio.run(paid_jobs(nats_url, state, args.jobs))
        finally:
            negotiator.terminate()
            negotiator.wait()
            bare.terminate()
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
