"""Reading what billing needs from an uploaded file, and multipart/form-data bodies.

Image pipelines bill by the input's height x width (spec section 6): PNG, JPEG
and WebP sizes are read from their headers. Anything else is refused as bad input.
"""

from __future__ import annotations

import struct
from email.parser import BytesParser
from email.policy import HTTP

from .errors import BadInput

__all__ = ["FormFile", "image_size", "parse_form"]


class FormFile:
    def __init__(self, filename: str, content_type: str, data: bytes) -> None:
        self.filename, self.content_type, self.data = filename, content_type, data


def parse_form(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, FormFile]]:
    """The text fields and the files of a multipart/form-data body; BadInput if it is not one."""
    if not content_type.lower().startswith("multipart/form-data") or "boundary=" not in content_type:
        raise BadInput("invalid request: the body must be multipart/form-data")
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    if not message.is_multipart():
        raise BadInput("invalid request: the multipart body does not parse")
    fields: dict[str, str] = {}
    files: dict[str, FormFile] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        payload = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename is not None:
            files[str(name)] = FormFile(filename, part.get_content_type(), payload)
        else:
            fields[str(name)] = payload.decode("utf-8", "replace")
    return fields, files


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) of a PNG, JPEG or WebP image; BadInput for anything else."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    if data[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                i += 1
                continue
            marker = data[i + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                i += 2
                continue
            length = int.from_bytes(data[i + 2:i + 4], "big")
            if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
                height, width = struct.unpack(">HH", data[i + 5:i + 9])
                return width, height
            i += 2 + length
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) >= 30:
        chunk = data[12:16]
        if chunk == b"VP8 ":
            width, height = struct.unpack("<HH", data[26:30])
            return width & 0x3FFF, height & 0x3FFF
        if chunk == b"VP8L":
            bits = int.from_bytes(data[21:25], "little")
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        if chunk == b"VP8X":
            return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    raise BadInput("invalid request: the image is not a PNG, JPEG or WebP file")
