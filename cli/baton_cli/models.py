"""`baton models load|unload|check`: change an inference worker's models live, or check a config first.

`load` and `unload` ask one worker over NATS (``baton.models.<worker_id>``);
it applies the change through Triton, audits it to BATON_AUDIT, and its
advert follows. With one inference worker up, ``--worker`` may be left out.
`check` runs ``baton-inference check``: the models, their weights and sizes,
warm or cold, against the memory budget, before anything starts.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import shutil
import socket
import subprocess
import sys

import nats
import nats.errors

from baton_common.bus import read_bucket_as
from baton_common.schemas import decode, encode
from baton_common.schemas.models import ModelControlReply, ModelLoad, ModelUnload, models_subject
from baton_common.schemas.workers import WORKERS_BUCKET, WorkerAdvert

__all__ = ["add_parser", "models"]


def add_parser(sub: argparse._SubParsersAction, default_nats: str) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("models", help="load or unload an inference worker's models live; check a model config")
    verbs = p.add_subparsers(dest="verb", required=True)
    for verb in ("load", "unload"):
        v = verbs.add_parser(verb, help=f"{verb} a model on an inference worker now (audited)")
        v.add_argument("pipeline")
        v.add_argument("model_id")
        v.add_argument("--worker", default="", help="worker id (its advert's worker_id); optional with one worker")
        v.add_argument("--reason", default="", help="why, for the audit log")
        v.add_argument("--nats-url", default=os.environ.get("BATON_NATS_URL", default_nats))
        v.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for the load and warm-up")
        if verb == "load":
            v.add_argument("--capacity", type=int, default=1, help="concurrent jobs (Triton instances or batch)")
    verbs.add_parser("check", help="validate -aiModels against -aiModelsDir and the memory budget "
                     "(flags as the inference service's, e.g. -aiModels=models.json)")


def check(rest: list[str]) -> int:
    """Run ``baton-inference check`` with the inference service's flags (the CLI imports no service)."""
    exe = shutil.which("baton-inference")
    argv = [exe, "check", *rest] if exe else [sys.executable, "-m", "baton_inference", "check", *rest]
    return subprocess.run(argv).returncode


def models(args: argparse.Namespace) -> int:
    if args.verb == "check":
        return check([])
    try:
        return asyncio.run(_control(args))
    except (TimeoutError, nats.errors.NoServersError, OSError) as exc:
        print(f"baton models: cannot reach NATS at {args.nats_url} ({exc or 'no answer'})", file=sys.stderr)
        return 2


async def _control(args: argparse.Namespace) -> int:
    nc = await nats.connect(args.nats_url, connect_timeout=3, max_reconnect_attempts=0)
    try:
        worker = args.worker or await _only_worker(nc)
        if not worker:
            return 2
        actor = f"{getpass.getuser()}@{socket.gethostname()}"
        msg = (ModelLoad(pipeline=args.pipeline, model_id=args.model_id, capacity=args.capacity, actor=actor,
                         reason=args.reason) if args.verb == "load"
               else ModelUnload(pipeline=args.pipeline, model_id=args.model_id, actor=actor, reason=args.reason))
        try:
            resp = await nc.request(models_subject(worker), encode(msg), timeout=args.timeout)
        except nats.errors.NoRespondersError:
            print(f"baton models: no inference worker {worker!r} answers", file=sys.stderr)
            return 2
        reply = decode(resp.data, ModelControlReply)
        detail = f" in {reply.load_seconds:.1f} s, {reply.memory_bytes / 2**20:.0f} MiB" if reply.load_seconds else ""
        print(f"{args.pipeline} {args.model_id} on {worker}: {reply.state}{detail}"
              + (f" ({reply.message})" if reply.message else ""))
        return 0 if reply.ok else 1
    finally:
        await nc.close()


async def _only_worker(nc: nats.NATS) -> str:
    kv = await nc.jetstream().key_value(WORKERS_BUCKET)
    workers = sorted(a.worker_id for a in await read_bucket_as(kv, WorkerAdvert) if a.kind == "inference")
    if len(workers) != 1:
        found = ", ".join(workers) or "none"
        print(f"baton models: name the worker with --worker (inference workers: {found})", file=sys.stderr)
        return ""
    return workers[0]
