"""Every metric the negotiator exports.

``baton_negotiator_refusals_total{reason, sender}``: why no work. ``sender`` is
the gateway's address only once a ticket signature of it verified, else
``unknown``; and only for the first ``MAX_SENDER_LABELS`` such senders of the
process, ``other`` after them (``SenderLabels``): throwaway keys that sign
tickets cannot grow the label set without bound. The go-livepeer series
labelled by sender go through the same ``SenderLabels``. ``baton_requests_total{endpoint,
outcome}``: the SLO counter. go-livepeer's series keep their names and labels.
"""

from __future__ import annotations

import threading

from prometheus_client import Counter, Gauge, Histogram

from baton_common.metrics import REQUEST_LABELS, REQUESTS_METRIC, LivepeerCounter

__all__ = [
    "CURRENT_SESSIONS",
    "MAX_SESSIONS",
    "MAX_SENDER_LABELS",
    "MIL_PIXELS",
    "OTHER_SENDER",
    "REFUSALS",
    "REQUESTS",
    "REQUEST_SECONDS",
    "SENDER_LABELS",
    "SenderLabels",
    "TICKETS_RECV",
    "TICKET_VALUE_RECV",
    "TRANSCODING_PRICE",
    "UNKNOWN_SENDER",
    "WINNING_TICKETS_RECV",
    "PAYMENT_RECV_ERRORS",
    "AI_REQUEST_ERRORS",
]

UNKNOWN_SENDER = "unknown"
OTHER_SENDER = "other"
MAX_SENDER_LABELS = 1000
"""Distinct verified senders that get a label value of their own; later ones count as ``other``."""


class SenderLabels:
    """The label value for a verified sender's address: itself for the first ``limit`` distinct ones."""

    def __init__(self, limit: int = MAX_SENDER_LABELS) -> None:
        self._limit = limit
        self._known: set[str] = set()
        self._lock = threading.Lock()

    def label(self, address: str) -> str:
        if address in (UNKNOWN_SENDER, OTHER_SENDER) or address in self._known:
            return address
        with self._lock:
            if len(self._known) >= self._limit:
                return OTHER_SENDER
            self._known.add(address)
        return address


SENDER_LABELS = SenderLabels()

REFUSALS = Counter("baton_negotiator_refusals", "Requests refused or failed, by reason and verified sender.",
                   ("reason", "sender"))
REQUESTS = Counter(REQUESTS_METRIC, "Gateway requests by endpoint and outcome (the SLO counter).", REQUEST_LABELS)
REQUEST_SECONDS = Histogram("baton_negotiator_request_seconds", "Time to answer a gateway request.", ("endpoint",),
                            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))

TICKETS_RECV = LivepeerCounter("livepeer_tickets_recv", "Tickets received", ("sender",))
TICKET_VALUE_RECV = LivepeerCounter("livepeer_ticket_value_recv", "Ticket value received (wei)", ("sender",))
WINNING_TICKETS_RECV = LivepeerCounter("livepeer_winning_tickets_recv", "Winning tickets received", ("sender",))
PAYMENT_RECV_ERRORS = LivepeerCounter("livepeer_payment_recv_errors", "Payment receive errors",
                                      ("sender", "error_code"))
AI_REQUEST_ERRORS = LivepeerCounter("livepeer_ai_request_errors", "AI request errors",
                                    ("error_code", "pipeline", "model_name"))
MIL_PIXELS = Counter(
    "baton_negotiator_mil_pixels_billed",
    "Million output pixels billed for transcoding (the transcode workers export livepeer_mil_pixels_processed)",
)
MAX_SESSIONS = Gauge("livepeer_max_sessions_total", "Max transcode sessions")
CURRENT_SESSIONS = Gauge("livepeer_current_sessions_total", "Current transcode sessions")
TRANSCODING_PRICE = Gauge("livepeer_transcoding_price", "Transcoding price per pixel in wei last quoted (PriceInfo) to the "
                          "sender: a gateway the price table names, else default", ("sender",))
