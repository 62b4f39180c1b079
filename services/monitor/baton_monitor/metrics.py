"""Every metric of the monitor service."""

from prometheus_client import Gauge

__all__ = ["SERVICE_INSTANCES", "SERVICE_UP"]

SERVICE_UP = Gauge(
    "baton_monitor_service_up", "1 if some instance of the service heartbeated within the last 6 s.", ["service"]
)
SERVICE_INSTANCES = Gauge(
    "baton_monitor_service_instances", "Instances of the service with a fresh heartbeat, by state.",
    ["service", "state"],
)
