"""The wire protobufs: field numbers as the Livepeer wire fixes them, and generated code kept fresh."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
from google.protobuf.descriptor import FieldDescriptor as F

from baton_common.proto import lp_rpc_pb2, redeemer_pb2

REPO = Path(__file__).resolve().parents[2]
PROTO_DIR = REPO / "libs" / "common" / "baton_common" / "proto"

BYTES, STRING, BOOL = F.TYPE_BYTES, F.TYPE_STRING, F.TYPE_BOOL
INT64, INT32, UINT32, UINT64 = F.TYPE_INT64, F.TYPE_INT32, F.TYPE_UINT32, F.TYPE_UINT64
MSG, ENUM = F.TYPE_MESSAGE, F.TYPE_ENUM

# message -> {field: (number, type, repeated)}; transcribed from the wire tables (spec section 1).
WIRE = {
    "PingPong": {"value": (1, BYTES, False)},
    "EndTranscodingSessionRequest": {"auth_token": (1, MSG, False)},
    "EndTranscodingSessionResponse": {},
    "OrchestratorRequest": {
        "address": (1, BYTES, False),
        "sig": (2, BYTES, False),
        "capabilities": (3, MSG, False),
        "ignoreCapacityCheck": (4, BOOL, False),
    },
    "OSInfo": {"storageType": (1, ENUM, False), "s3info": (16, MSG, False)},
    "S3OSInfo": {
        name: (n, STRING, False)
        for n, name in enumerate(["host", "key", "policy", "signature", "credential", "xAmzDate"], 1)
    },
    "PriceInfo": {
        "pricePerUnit": (1, INT64, False),
        "pixelsPerUnit": (2, INT64, False),
        "capability": (3, UINT32, False),
        "constraint": (4, STRING, False),
    },
    "Capabilities": {
        "bitstring": (1, UINT64, True),
        "mandatories": (2, UINT64, True),
        "capacities": (3, MSG, True),
        "version": (4, STRING, False),
        "constraints": (5, MSG, False),
    },
    "Capabilities.Constraints": {"minVersion": (1, STRING, False), "PerCapability": (2, MSG, True)},
    "Capabilities.CapabilityConstraints": {"models": (1, MSG, True)},
    "Capabilities.CapabilityConstraints.ModelConstraint": {
        "warm": (1, BOOL, False),
        "capacity": (2, UINT32, False),
        "runnerVersion": (3, STRING, False),
        "capacityInUse": (4, UINT32, False),
    },
    "OrchestratorInfo": {
        "transcoder": (1, STRING, False),
        "ticket_params": (2, MSG, False),
        "price_info": (3, MSG, False),
        "address": (4, BYTES, False),
        "capabilities": (5, MSG, False),
        "auth_token": (6, MSG, False),
        "hardware": (7, MSG, True),
        "storage": (32, MSG, True),
        "capabilities_prices": (33, MSG, True),
        "nodes": (34, STRING, True),
    },
    "AuthToken": {"token": (1, BYTES, False), "session_id": (2, STRING, False), "expiration": (3, INT64, False)},
    "SegData": {
        "manifestId": (1, BYTES, False),
        "seq": (2, INT64, False),
        "hash": (3, BYTES, False),
        "profiles": (4, BYTES, False),
        "sig": (5, BYTES, False),
        "duration": (6, INT32, False),
        "capabilities": (7, MSG, False),
        "auth_token": (8, MSG, False),
        "calc_perceptual_hash": (10, BOOL, False),
        "storage": (32, MSG, True),
        "fullProfiles": (33, MSG, True),
        "fullProfiles2": (34, MSG, True),
        "fullProfiles3": (35, MSG, True),
        "segment_parameters": (37, MSG, False),
        "ForceSessionReinit": (38, BOOL, False),
    },
    "SegParameters": {"from": (1, UINT64, False), "to": (2, UINT64, False)},
    "VideoProfile": {
        "name": (16, STRING, False),
        "width": (17, INT32, False),
        "height": (18, INT32, False),
        "bitrate": (19, INT32, False),
        "fps": (20, UINT32, False),
        "format": (21, ENUM, False),
        "fpsDen": (22, UINT32, False),
        "profile": (23, ENUM, False),
        "gop": (24, INT32, False),
        "encoder": (25, ENUM, False),
        "colorDepth": (26, INT32, False),
        "chromaFormat": (27, ENUM, False),
        "quality": (28, UINT32, False),
    },
    "TranscodedSegmentData": {
        "url": (1, STRING, False),
        "pixels": (2, INT64, False),
        "perceptual_hash_url": (3, STRING, False),
    },
    "TranscodeData": {"segments": (1, MSG, True), "sig": (2, BYTES, False)},
    "TranscodeResult": {
        "seq": (1, INT64, False),
        "error": (2, STRING, False),
        "data": (3, MSG, False),
        "info": (16, MSG, False),
    },
    "PaymentResult": {"info": (16, MSG, False)},
    "RegisterRequest": {"secret": (1, STRING, False), "capacity": (2, INT64, False), "capabilities": (3, MSG, False)},
    "NotifySegment": {
        "url": (1, STRING, False),
        "segData": (3, MSG, False),
        "taskId": (16, INT64, False),
        "profiles": (17, BYTES, False),
        "orchId": (18, STRING, False),
    },
    "RegisterAIWorkerRequest": {
        "secret": (1, STRING, False),
        "capabilities": (2, MSG, False),
        "hardware": (3, MSG, True),
    },
    "AIJobData": {"pipeline": (1, STRING, False), "requestData": (2, BYTES, False)},
    "NotifyAIJob": {"AIJobData": (1, MSG, False), "taskId": (2, INT64, False)},
    "TicketParams": {
        "recipient": (1, BYTES, False),
        "face_value": (2, BYTES, False),
        "win_prob": (3, BYTES, False),
        "recipient_rand_hash": (4, BYTES, False),
        "seed": (5, BYTES, False),
        "expiration_block": (6, BYTES, False),
        "expiration_params": (7, MSG, False),
    },
    "TicketSenderParams": {"sender_nonce": (1, UINT32, False), "sig": (2, BYTES, False)},
    "TicketExpirationParams": {"creation_round": (1, INT64, False), "creation_round_block_hash": (2, BYTES, False)},
    "Payment": {
        "ticket_params": (1, MSG, False),
        "sender": (2, BYTES, False),
        "expiration_params": (3, MSG, False),
        "ticket_sender_params": (4, MSG, True),
        "expected_price": (5, MSG, False),
    },
    "GPUComputeInfo": {
        "id": (1, STRING, False),
        "name": (2, STRING, False),
        "major": (4, UINT32, False),
        "minor": (5, UINT32, False),
        "memory_free": (6, INT64, False),
        "memory_total": (7, INT64, False),
    },
    "HardwareInformation": {"pipeline": (1, STRING, False), "model_id": (2, STRING, False), "gpu_info": (3, MSG, True)},
    "Ticket": {
        "ticket_params": (1, MSG, False),
        "sender": (2, BYTES, False),
        "expiration_params": (3, MSG, False),
        "sender_params": (4, MSG, False),
        "recipient_rand": (5, BYTES, False),
    },
    "QueueTicketRes": {},
    "MaxFloatReq": {"sender": (1, BYTES, False)},
    "MaxFloatUpdate": {"max_float": (1, BYTES, False)},
}

ENUMS = {
    "OSInfo.StorageType": {"DIRECT": 0, "S3": 1, "GOOGLE": 2},
    "VideoProfile.Format": {"MPEGTS": 0, "MP4": 1},
    "VideoProfile.Profile": {
        "ENCODER_DEFAULT": 0,
        "H264_BASELINE": 1,
        "H264_MAIN": 2,
        "H264_HIGH": 3,
        "H264_CONSTRAINED_HIGH": 4,
    },
    "VideoProfile.VideoCodec": {"H264": 0, "H265": 1, "VP8": 2, "VP9": 3},
    "VideoProfile.ChromaSubsampling": {"CHROMA_420": 0, "CHROMA_422": 1, "CHROMA_444": 2},
}

# Service.Rpc -> (request, response, server streaming)
SERVICES = {
    "Orchestrator.GetOrchestrator": ("OrchestratorRequest", "OrchestratorInfo", False),
    "Orchestrator.EndTranscodingSession": ("EndTranscodingSessionRequest", "EndTranscodingSessionResponse", False),
    "Orchestrator.Ping": ("PingPong", "PingPong", False),
    "Transcoder.RegisterTranscoder": ("RegisterRequest", "NotifySegment", True),
    "AIWorker.RegisterAIWorker": ("RegisterAIWorkerRequest", "NotifyAIJob", True),
    "TicketRedeemer.QueueTicket": ("Ticket", "QueueTicketRes", False),
    "TicketRedeemer.MaxFloat": ("MaxFloatReq", "MaxFloatUpdate", False),
    "TicketRedeemer.MonitorMaxFloat": ("MaxFloatReq", "MaxFloatUpdate", True),
}


def message(name: str):
    for module in (lp_rpc_pb2, redeemer_pb2):
        try:
            return module.DESCRIPTOR.pool.FindMessageTypeByName(f"net.{name}")
        except KeyError:
            continue
    raise KeyError(name)


@pytest.mark.parametrize("name", sorted(WIRE))
def test_field_numbers_and_types_match_the_wire(name: str) -> None:
    descriptor = message(name)
    actual = {f.name: (f.number, f.type, f.is_repeated) for f in descriptor.fields}
    assert actual == WIRE[name]


def test_enum_values_match_the_wire() -> None:
    for name, values in ENUMS.items():
        enum = lp_rpc_pb2.DESCRIPTOR.pool.FindEnumTypeByName(f"net.{name}")
        assert {v.name: v.number for v in enum.values} == values


def test_notify_segment_reserves_retired_numbers() -> None:
    text = (PROTO_DIR / "lp_rpc.proto").read_text()
    assert re.search(r"message NotifySegment \{[^}]*reserved 2, 33;", text)


def test_services_and_method_paths() -> None:
    for path, (request, response, streaming) in SERVICES.items():
        service_name, method_name = path.split(".")
        module = redeemer_pb2 if service_name == "TicketRedeemer" else lp_rpc_pb2
        method = module.DESCRIPTOR.services_by_name[service_name].methods_by_name[method_name]
        assert f"/{method.containing_service.full_name}/{method.name}" == f"/net.{service_name}/{method_name}"
        assert method.input_type.full_name == f"net.{request}"
        assert method.output_type.full_name == f"net.{response}"
        assert method.server_streaming is streaming and method.client_streaming is False


def test_redeemer_reuses_the_lp_rpc_messages() -> None:
    assert redeemer_pb2.DESCRIPTOR.package == lp_rpc_pb2.DESCRIPTOR.package == "net"
    fields = redeemer_pb2.Ticket.DESCRIPTOR.fields_by_name
    assert fields["ticket_params"].message_type is lp_rpc_pb2.TicketParams.DESCRIPTOR
    assert fields["sender_params"].message_type is lp_rpc_pb2.TicketSenderParams.DESCRIPTOR


def test_bytes_on_the_wire() -> None:
    # TicketSenderParams{sender_nonce=1, sig=65 bytes}: tag 0x08 varint, tag 0x12 length 65.
    msg = lp_rpc_pb2.TicketSenderParams(sender_nonce=1, sig=b"\xaa" * 65)
    assert msg.SerializeToString() == b"\x08\x01\x12\x41" + b"\xaa" * 65
    # SegData.ForceSessionReinit=38 (bool): tag (38 << 3 | 0) = 304 = varint b0 02.
    assert lp_rpc_pb2.SegData(ForceSessionReinit=True).SerializeToString() == b"\xb0\x02\x01"


def load_gen_proto():
    spec = importlib.util.spec_from_file_location("gen_proto", REPO / "scripts" / "gen_proto.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generator_pin_matches_constraints() -> None:
    pins = dict(
        line.split("==") for line in (REPO / "constraints.txt").read_text().splitlines() if "==" in line
    )
    assert load_gen_proto().GRPCIO_TOOLS_VERSION == pins["grpcio-tools"]


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    written = load_gen_proto().generate(tmp_path)
    assert len(written) == 4
    for path in written:
        committed = PROTO_DIR / path.name
        assert committed.read_bytes() == path.read_bytes(), (
            f"{committed.name} is stale: run `.venv/bin/python scripts/gen_proto.py` and commit the result"
        )
