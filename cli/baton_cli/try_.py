"""``baton try``: one job against a running stack, exactly as a gateway sends it.

    baton try text-to-image --param prompt="a cat" --model stabilityai/sd-turbo
    baton try llm --param prompt="Hello" --model meta-llama/Llama-3.1-8B-Instruct
    baton try transcode segment.ts
    baton try text-to-image ... --key gateway.key     # paid: signs tickets with this ETH key

GetOrchestrator over TLS (the self-signed certificate fetched and pinned, as
Livepeer's SDK does), then the job with its Livepeer-Payment and
Livepeer-Segment headers. The output is saved; the timings, or the refusal
and its reason, are printed. Exit 0 on success, 1 on a refusal.
"""

from __future__ import annotations

import argparse
import base64
import json
import socket
import ssl
import sys
import time
from pathlib import Path

import grpc
import httpx

from baton_common.capabilities import manifest_id, pipeline_by_name
from baton_common.pm import address_of, checksum_address, keccak256, sign_personal
from baton_common.pm.ticket import Ticket
from baton_common.proto import lp_rpc_pb2

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    t = sub.add_parser("try", help="run one job against a running stack as a gateway would")
    t.add_argument("pipeline", help="an AI pipeline (text-to-image, llm, text-to-speech) or transcode")
    t.add_argument("file", nargs="?", help="the segment to transcode")
    t.add_argument("--orchestrator", default="127.0.0.1:8935", help="host:port of the gRPC listener")
    t.add_argument("--model", default="", help="model id")
    t.add_argument("--param", action="append", default=[], help="request field, name=value (JSON values allowed)")
    t.add_argument("--key", type=Path, help="file with a gateway ETH private key (hex): pay with tickets")
    t.add_argument("--out", type=Path, default=Path("baton-try-out"), help="folder for the output")


def _certificate(host: str, port: int) -> bytes:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    with socket.create_connection((host, port), timeout=5) as raw, ctx.wrap_socket(raw, server_hostname=host) as tls:
        return ssl.DER_cert_to_PEM_cert(tls.getpeercert(binary_form=True) or b"").encode()


def _payment(info: lp_rpc_pb2.OrchestratorInfo, key: bytes | None) -> str:
    if key is None or not info.HasField("ticket_params"):
        return ""
    params, sender = info.ticket_params, address_of(key)
    exp = params.expiration_params
    ticket = Ticket(recipient=params.recipient, sender=sender, face_value=int.from_bytes(params.face_value, "big"),
                    win_prob=int.from_bytes(params.win_prob, "big"), sender_nonce=1,
                    recipient_rand_hash=params.recipient_rand_hash, creation_round=exp.creation_round,
                    creation_round_block_hash=exp.creation_round_block_hash or bytes(32))
    payment = lp_rpc_pb2.Payment(sender=sender, ticket_params=params, expiration_params=exp,
                                 expected_price=info.price_info)
    payment.ticket_sender_params.add(sender_nonce=1, sig=sign_personal(key, ticket.hash()))
    return base64.b64encode(payment.SerializeToString()).decode()


def _segment(info: lp_rpc_pb2.OrchestratorInfo, key: bytes | None, manifest: bytes, body_hash: bytes,
             profiles: list[lp_rpc_pb2.VideoProfile]) -> str:
    seg = lp_rpc_pb2.SegData(manifestId=manifest, hash=body_hash, profiles=b"invalid", auth_token=info.auth_token)
    seg.fullProfiles3.extend(profiles)
    if key is not None:
        hexes = "".join(keccak256(p.name.encode()).hex()[:8] for p in profiles)
        seg.sig = sign_personal(key, keccak256(manifest + bytes(32) + body_hash + hexes.encode()))
    return base64.b64encode(seg.SerializeToString()).decode()


def _params(pairs: list[str]) -> dict[str, object]:
    out: dict[str, object] = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        try:
            out[name] = json.loads(value)
        except ValueError:
            out[name] = value
    return out


def run(args: argparse.Namespace) -> int:
    host, _, port = args.orchestrator.rpartition(":")
    key = bytes.fromhex(args.key.read_text().strip().removeprefix("0x")) if args.key else None
    started = time.perf_counter()
    try:
        cert = _certificate(host, int(port))
    except OSError as exc:
        print(f"cannot reach {args.orchestrator}: {exc}", file=sys.stderr)
        return 1
    channel = grpc.secure_channel(args.orchestrator, grpc.ssl_channel_credentials(cert),
                                  options=[("grpc.ssl_target_name_override", "localhost")])
    req = lp_rpc_pb2.OrchestratorRequest()
    if key is not None:
        req.address = address_of(key)
        req.sig = sign_personal(key, keccak256(checksum_address(req.address).encode()))
    transcode = args.pipeline == "transcode"
    if not transcode:
        capability = pipeline_by_name(args.pipeline).capability
        req.capabilities.constraints.PerCapability[capability].models[args.model].warm = True
    try:
        info = channel.unary_unary("/net.Orchestrator/GetOrchestrator",
                                   request_serializer=lp_rpc_pb2.OrchestratorRequest.SerializeToString,
                                   response_deserializer=lp_rpc_pb2.OrchestratorInfo.FromString)(req, timeout=10)
    except grpc.RpcError as exc:
        print(f"GetOrchestrator refused: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    quoted = time.perf_counter()
    print(f"GetOrchestrator {1000 * (quoted - started):.1f} ms: {info.transcoder}, price "
          f"{info.price_info.pricePerUnit}/{info.price_info.pixelsPerUnit} wei per unit, "
          f"{'paid' if info.HasField('ticket_params') else 'offchain'}")
    ctx = ssl.create_default_context(cadata=cert.decode())
    ctx.check_hostname = False
    args.out.mkdir(parents=True, exist_ok=True)
    with httpx.Client(verify=ctx, timeout=600) as client:
        if transcode:
            if not args.file:
                print("baton try transcode needs a segment file", file=sys.stderr)
                return 1
            body = Path(args.file).read_bytes()
            profile = lp_rpc_pb2.VideoProfile(name="P240p30fps16x9", width=426, height=240, bitrate=600_000, fps=30)
            headers = {"Livepeer-Payment": _payment(info, key), "Content-Type": "video/MP2T",
                       "Livepeer-Segment": _segment(info, key, b"baton-try", keccak256(body), [profile])}
            r = client.post(f"{info.transcoder}/segment", content=body, headers=headers)
        else:
            body = {"model_id": args.model, **_params(args.param)}
            if args.pipeline == "llm":
                body = {"model": args.model, "messages": [{"role": "user", "content": body.pop("prompt", "Hello")}],
                        **{k: v for k, v in body.items() if k != "model_id"}}
            manifest = manifest_id(capability, args.model).encode()
            headers = {"Livepeer-Payment": _payment(info, key),
                       "Livepeer-Segment": _segment(info, key, manifest, keccak256(b""), [])}
            r = client.post(f"{info.transcoder}/{args.pipeline}", json=body, headers=headers)
        done = time.perf_counter()
        if r.status_code != 200:
            print(f"refused: {r.status_code} {r.text.strip()}", file=sys.stderr)
            return 1
        if transcode:
            result = lp_rpc_pb2.TranscodeResult.FromString(r.content)
            if result.WhichOneof("result") != "data":
                print(f"refused: {result.error}", file=sys.stderr)
                return 1
            for n, seg in enumerate(result.data.segments):
                (args.out / f"rendition{n}.ts").write_bytes(client.get(seg.url).content)
                print(f"  {seg.url} ({seg.pixels} pixels)")
        else:
            name = "output.txt" if r.headers.get("content-type", "").startswith("text/event-stream") else "output.json"
            (args.out / name).write_bytes(r.content)
    print(f"job {1000 * (done - quoted):.1f} ms; output in {args.out}/")
    return 0
