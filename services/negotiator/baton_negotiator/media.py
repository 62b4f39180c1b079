"""Reading what billing needs from an uploaded file, and multipart/form-data bodies.

Image pipelines bill by the input's height x width (spec section 6): PNG, JPEG
and WebP sizes are read by Pillow from their headers (no decode). Anything else is refused as
bad input; an image above MAX_IMAGE_PIXELS with 413.
"""

from __future__ import annotations

import warnings
from email.parser import BytesParser
from email.policy import HTTP
from io import BytesIO

from PIL import Image

from .errors import BadInput, BodyTooLarge

__all__ = ["MAX_IMAGE_PIXELS", "FormFile", "image_size", "parse_form"]

IMAGE_FORMATS = ("PNG", "JPEG", "WEBP")
MAX_IMAGE_PIXELS = 8192 * 8192
"""Largest image (width x height) an image pipeline takes: it bills, and the worker decodes, every pixel."""


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
    """(width, height) of a PNG, JPEG or WebP image as Pillow reads it (header only, no decode).

    BadInput for anything Pillow cannot open as one of those; BodyTooLarge above MAX_IMAGE_PIXELS.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(BytesIO(data), formats=IMAGE_FORMATS) as image:
                width, height = image.size
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise BodyTooLarge(f"invalid request: the image is larger than {MAX_IMAGE_PIXELS} pixels") from None
    except Exception:  # noqa: BLE001 - whatever Pillow raises for a file it cannot read
        raise BadInput("invalid request: the image is not a PNG, JPEG or WebP file") from None
    if width <= 0 or height <= 0:
        raise BadInput("invalid request: the image is not a PNG, JPEG or WebP file")
    if width * height > MAX_IMAGE_PIXELS:
        raise BodyTooLarge(f"invalid request: the image is larger than {MAX_IMAGE_PIXELS} pixels")
    return width, height
