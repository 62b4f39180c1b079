"""Every metric of the transcode service; go-livepeer's names where the meaning is the same.

go-livepeer's transcoder exports ``segment_transcoded_total``,
``segment_transcode_failed_total{error_code}``, ``transcode_time_seconds``,
``transcode_score`` (transcode time over source duration) and
``mil_pixels_processed``; Baton adds the real-time factor per rendition and
its own slot gauges.
"""

from __future__ import annotations

from prometheus_client import Gauge, Histogram

from baton_common.metrics import LivepeerCounter

__all__ = [
    "CAPACITY",
    "FAILED",
    "IN_USE",
    "PIXELS",
    "REALTIME_FACTOR",
    "SEGMENTS",
    "TRANSCODE_SCORE",
    "TRANSCODE_TIME",
]

SEGMENTS = LivepeerCounter("livepeer_segment_transcoded_total", "Segments transcoded (go-livepeer's SegmentTranscoded)")
FAILED = LivepeerCounter(
    "livepeer_segment_transcode_failed_total", "Segments that failed, by error code", ["error_code"]
)
PIXELS = LivepeerCounter("livepeer_mil_pixels_processed", "Millions of output pixels transcoded (what is billed)")
TRANSCODE_TIME = Histogram(
    "livepeer_transcode_time_seconds", "Wall time of one segment's ffmpeg run",
    buckets=(0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 4, 6, 8, 12, 20, 30, 60),
)
TRANSCODE_SCORE = Histogram(
    "livepeer_transcode_score", "Transcode time divided by the segment's duration (below 1 keeps up with live)",
    buckets=(0.1, 0.25, 0.5, 0.75, 0.9, 1, 1.1, 1.25, 1.5, 2, 3, 5, 10),
)
REALTIME_FACTOR = Histogram(
    "baton_transcode_realtime_factor", "Seconds of rendition encoded per second of wall time, per rendition",
    ["rendition"], buckets=(0.25, 0.5, 1, 1.5, 2, 3, 5, 10, 20, 50, 100),
)
IN_USE = Gauge("baton_transcode_slots_in_use", "Segments this worker is transcoding now")
CAPACITY = Gauge("baton_transcode_slots", "Segments this worker transcodes at once (its advertised capacity)")
