"""Regenerate the Python code for Baton's wire protobufs.

    .venv/bin/python scripts/gen_proto.py            # rewrite the committed files
    .venv/bin/python scripts/gen_proto.py --out DIR  # write them under DIR instead

The .proto files live in libs/common/baton_common/proto/. protoc runs with
libs/common as its include root, so the generated modules import each other as
``baton_common.proto.<name>_pb2``. Only message code is generated (``*_pb2.py``
and ``*_pb2.pyi``): Baton's services need no grpcio runtime for the messages.

The output depends on the protoc bundled in grpcio-tools, so the script refuses
to run with any version but the pinned one (constraints.txt); a test
regenerates into a temporary folder and fails when the committed files differ.
"""

from __future__ import annotations

import argparse
import sys
from importlib import metadata
from pathlib import Path

GRPCIO_TOOLS_VERSION = "1.85.1"

REPO = Path(__file__).resolve().parent.parent
INCLUDE_ROOT = REPO / "libs" / "common"
PROTO_DIR = "baton_common/proto"
PROTOS = ("lp_rpc.proto", "redeemer.proto")


def generate(out: Path) -> list[Path]:
    """Run protoc over every Baton .proto; returns the files written under ``out``."""
    installed = metadata.version("grpcio-tools")
    if installed != GRPCIO_TOOLS_VERSION:
        raise SystemExit(
            f"grpcio-tools {GRPCIO_TOOLS_VERSION} is required (pinned in constraints.txt), "
            f"found {installed}"
        )
    from grpc_tools import protoc

    out.mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"-I{INCLUDE_ROOT}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        *(f"{PROTO_DIR}/{name}" for name in PROTOS),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed: " + " ".join(args))
    stems = [name.removesuffix(".proto") for name in PROTOS]
    return [out / PROTO_DIR / f"{stem}_pb2{ext}" for stem in stems for ext in (".py", ".pyi")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=INCLUDE_ROOT, help="output root (default: libs/common)")
    args = parser.parse_args(argv)
    for path in generate(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
