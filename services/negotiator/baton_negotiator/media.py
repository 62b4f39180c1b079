"""Reading what billing needs from an uploaded file, and multipart/form-data bodies.

Forms are parsed by ``multipart``'s push parser (it looks for the boundary with
``bytes.find``: linear, whatever the body holds), off the event loop
(``parse_form_async``), keeping only the parts' payloads: text fields are capped at
MAX_FIELD_BYTES, at most MAX_PARTS parts.

Image pipelines bill by the input's height x width (spec section 6): PNG, JPEG
and WebP sizes are read by Pillow from their headers (no decode). Anything else is refused as
bad input; an image above MAX_IMAGE_PIXELS with 413.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
import warnings
from collections.abc import AsyncIterator
from io import BytesIO
from typing import NamedTuple

import multipart
from PIL import Image

from .domain import KeyedBuckets
from .errors import BadInput, BodyTooLarge, InsufficientCapacity

__all__ = ["MAX_IMAGE_PIXELS", "AudioDuration", "FormFile", "audio_duration", "image_size", "parse_form", "parse_form_async"]

IMAGE_FORMATS = ("PNG", "JPEG", "WEBP")
MAX_IMAGE_PIXELS = 8192 * 8192
MAX_FIELD_BYTES = 1024 * 1024
"""Largest text field of a form (a prompt): a bigger one is refused with 400."""
MAX_PARTS = 64
PARSE_CHUNK = 1024 * 1024
"""Largest image (width x height) an image pipeline takes: it bills, and the worker decodes, every pixel."""


class FormFile:
    def __init__(self, filename: str, content_type: str, data: bytes) -> None:
        self.filename, self.content_type, self.data = filename, content_type, data


def _boundary(content_type: str) -> str:
    kind, options = multipart.parse_options_header(content_type)
    boundary = options.get("boundary", "")
    if kind != "multipart/form-data" or not boundary:
        raise BadInput("invalid request: the body must be multipart/form-data")
    return boundary


def parse_form(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, FormFile]]:
    """The text fields and the files of a multipart/form-data body; BadInput if it is not one."""
    boundary = _boundary(content_type)
    fields: dict[str, str] = {}
    files: dict[str, FormFile] = {}
    try:
        parser = multipart.PushMultipartParser(boundary, content_length=len(body), max_segment_count=MAX_PARTS)
        segment, chunks, size = None, [], 0
        for event in _events(parser, body):
            if isinstance(event, multipart.MultipartSegment):
                segment, chunks, size = event, [], 0
            elif event is None:
                assert segment is not None
                data = b"".join(chunks)
                if segment.name and segment.filename is not None:
                    files[segment.name] = FormFile(segment.filename, segment.content_type or "", data)
                elif segment.name:
                    fields[segment.name] = data.decode(segment.charset or "utf-8", "replace")
                segment = None
            else:
                size += len(event)
                if segment is not None and segment.filename is None and size > MAX_FIELD_BYTES:
                    raise BadInput(f"invalid request: form field {segment.name!r} is over {MAX_FIELD_BYTES} bytes")
                chunks.append(bytes(event))
        parser.close()
    except multipart.MultipartError as exc:
        raise BadInput(f"invalid request: the multipart body does not parse ({exc})") from None
    except LookupError:  # an unknown charset
        raise BadInput("invalid request: the multipart body does not parse (unknown charset)") from None
    return fields, files


def _events(parser: multipart.PushMultipartParser, body: bytes):  # noqa: ANN202
    """The parser's events for ``body`` fed in PARSE_CHUNK slices (its buffer then holds one slice, not a copy of
    the body), then the end of input."""
    for start in range(0, len(body), PARSE_CHUNK):
        yield from parser.parse(body[start:start + PARSE_CHUNK])
    yield from parser.parse(b"")


async def parse_form_async(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, FormFile]]:
    """``parse_form`` in a worker thread: a big upload never holds the event loop (gRPC, NATS, other jobs)."""
    _boundary(content_type)
    return await asyncio.to_thread(parse_form, content_type, body)


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


PROBES_AT_ONCE = 4
"""ffprobe processes measuring uploads at once (each tens of ms of CPU and ~30 MB); past it an upload waits
PROBE_WAIT, then 503."""
_PROBES = asyncio.Semaphore(PROBES_AT_ONCE)
PROBES_PER_PAYER = 2
"""ffprobes one sender (offchain: one client) may run at once: a balance that pays one second cannot hold every
slot with bogus uploads (a refused probe costs nothing); more of its uploads wait their turn."""
PROBE_WAIT = 5.0
"""Seconds an upload waits for its payer's turn before 503."""
PROBE_TIMEOUT = 10.0
"""Seconds ffprobe may take to read an upload's duration."""
PROBE_FORMATS = "wav,mp3,flac,ogg,mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,aac,asf,aiff"
"""The containers ffprobe may read an upload as: audio files only, never a playlist (an HLS or concat file would
make it open other files or URLs); the only protocol allowed is the temporary file itself."""


class _Turns:
    """At most ``n`` holders at once per key; the others wait (``wait`` seconds at most, then 503)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self._keys: dict[str, tuple[asyncio.Semaphore, list[int]]] = {}

    @contextlib.asynccontextmanager
    async def turn(self, key: str, wait: float) -> AsyncIterator[None]:
        semaphore, users = self._keys.setdefault(key, (asyncio.Semaphore(self.n), [0]))
        users[0] += 1
        try:
            try:
                async with asyncio.timeout(wait):
                    await semaphore.acquire()
            except TimeoutError:
                raise InsufficientCapacity("insufficient capacity: too many audio files being measured, "
                                           "retry later") from None
            try:
                yield
            finally:
                semaphore.release()
        finally:
            users[0] -= 1
            if not users[0]:  # nobody of this key's holds or waits: forgotten
                del self._keys[key]


_PAYERS = _Turns(PROBES_PER_PAYER)


class AudioDuration(NamedTuple):
    ms: int
    estimated: bool
    """ffprobe estimated it from the bitrate (MP3, ADTS AAC carry no duration): the file may decode longer."""


ESTIMATED_FORMATS = frozenset({"mp3", "aac"})
FAILED_PROBES = 5
"""Unreadable uploads one payer may send in a burst (then one per FAILED_PROBE_SECONDS): a refused probe costs
the payer nothing and us ~100 ms of CPU, so a payer that keeps sending them is refused before the probe."""
FAILED_PROBE_SECONDS = 12.0
_FAILED = KeyedBuckets(1 / FAILED_PROBE_SECONDS, FAILED_PROBES)
"""Per payer: the unreadable uploads it may still send."""


async def audio_duration(data: bytes, payer: str = "") -> AudioDuration:
    """The duration of an uploaded audio (or video) file, as ffprobe reads its container; BadInput
    (go-livepeer's ``Unable to calculate duration``) when it cannot tell.

    audio-to-text bills the audio's seconds: the job's cost is reserved from this before it runs, so a long
    file is refused with ``Insufficient balance`` up front rather than billed past the balance afterwards
    (ffprobe reads only the headers it needs; the file goes through a temporary file, as a pipe cannot seek).
    One ``payer``'s uploads take turns (two at once) and it may send only a few unreadable ones (503 past it).
    """
    if _FAILED.left(payer, time.monotonic()) < 1:
        raise InsufficientCapacity("insufficient capacity: too many unreadable audio files from this sender, "
                                   "retry later")
    async with _PAYERS.turn(payer, PROBE_WAIT):  # one payer's uploads take turns: it cannot hold every slot
        try:
            return await _probe(data)
        except BadInput:
            _FAILED.get(payer, time.monotonic()).spend(time.monotonic())
            raise


async def _probe(data: bytes) -> AudioDuration:
    try:  # PROBES_AT_ONCE running: an upload waits a little, then 503, never a host full of ffprobes
        async with asyncio.timeout(PROBE_WAIT):
            await _PROBES.acquire()
    except TimeoutError:
        raise InsufficientCapacity("insufficient capacity: too many audio files being measured, retry later") from None
    try:
        with tempfile.NamedTemporaryFile(prefix="baton-audio-", delete=False) as f:
            path = f.name
        proc = None
        try:
            await asyncio.to_thread(_write, path, data)
            proc = await asyncio.create_subprocess_exec(
                "ffprobe", "-v", "error", "-protocol_whitelist", "file", "-format_whitelist", PROBE_FORMATS,
                "-show_entries", "format=format_name,duration", "-of", "default=nw=1", path,
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
            try:
                async with asyncio.timeout(PROBE_TIMEOUT):
                    out, _ = await proc.communicate()
            except TimeoutError:
                raise BadInput("Unable to calculate duration") from None
        finally:
            if proc is not None and proc.returncode is None:  # timed out or cancelled: never left running
                proc.kill()
                await proc.wait()
            os.unlink(path)
    finally:
        _PROBES.release()
    fields = dict(line.partition("=")[::2] for line in out.decode(errors="replace").splitlines())
    try:
        seconds = float(fields.get("duration", ""))
    except ValueError:
        raise BadInput("Unable to calculate duration") from None
    if not 0 <= seconds < 10**7:  # nan, inf, negative
        raise BadInput("Unable to calculate duration")
    return AudioDuration(round(seconds * 1000), fields.get("format_name", "") in ESTIMATED_FORMATS)


def _write(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
