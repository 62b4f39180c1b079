"""Every metric the negotiator exports.

``baton_negotiator_refusals_total{reason, sender}``: why no work. ``sender`` is
the gateway's address only once its signature verified (a hostile client
cannot grow the label set), else ``unknown``. ``baton_requests_total{endpoint,
outcome}``: the SLO counter. go-livepeer's series keep their names and labels.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from baton_common.metrics import REQUEST_LABELS, REQUESTS_METRIC, LivepeerCounter

__all__ = [
    "CURRENT_SESSIONS",
    "MAX_SESSIONS",
    "MIL_PIXELS",
    "REFUSALS",
    "REQUESTS",
    "REQUEST_SECONDS",
    "TICKETS_RECV",
    "TICKET_VALUE_RECV",
    "TRANSCODING_PRICE",
    "UNKNOWN_SENDER",
    "WINNING_TICKETS_RECV",
    "PAYMENT_RECV_ERRORS",
    "AI_REQUEST_ERRORS",
]

UNKNOWN_SENDER = "unknown"

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
