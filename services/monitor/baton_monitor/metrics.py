"""Every metric of the monitor service (docs/monitoring.md lists which alert reads which)."""

from prometheus_client import Counter, Gauge

__all__ = [
    "GPUS", "GPU_DECODER", "GPU_ENCODER", "GPU_LAST_XID", "GPU_MEMORY_TOTAL", "GPU_MEMORY_USED", "GPU_POWER",
    "GPU_TEMPERATURE", "GPU_UTILIZATION", "GPU_XID_ERRORS", "MODEL_WARM", "NVML_AVAILABLE", "PROBE_DURATION",
    "PROBE_MODEL_WARM", "PROBE_PRICE_MISMATCH", "PROBE_RUNS", "PROBE_STATE", "PROBE_SUCCESS", "REDEMPTIONS_OLDEST",
    "REDEMPTIONS_PENDING", "SENDER_DEPOSIT", "SENDER_RESERVE", "SENDER_RESERVE_CLAIMED", "SERVICE_INSTANCES",
    "SERVICE_UP", "WINNERS", "WINNERS_VALUE",
]

SERVICE_UP = Gauge(
    "baton_monitor_service_up", "1 if some instance of the service heartbeated within the last 6 s.", ["service"]
)
SERVICE_INSTANCES = Gauge(
    "baton_monitor_service_instances", "Instances of the service with a fresh heartbeat, by state.",
    ["service", "state"],
)

# ---- GPUs, through NVML ----
_GPU = ["gpu", "name", "uuid"]
NVML_AVAILABLE = Gauge("baton_monitor_nvml_available", "1 when NVML (the NVIDIA driver) answered; 0 on a host without.")
GPUS = Gauge("baton_monitor_gpus", "GPUs NVML sees (0 on a host without GPUs).")
GPU_TEMPERATURE = Gauge("baton_monitor_gpu_temperature_celsius", "GPU core temperature.", _GPU)
GPU_MEMORY_USED = Gauge("baton_monitor_gpu_memory_used_bytes", "GPU memory in use.", _GPU)
GPU_MEMORY_TOTAL = Gauge("baton_monitor_gpu_memory_total_bytes", "GPU memory in all.", _GPU)
GPU_UTILIZATION = Gauge("baton_monitor_gpu_utilization_ratio", "Share of time a kernel ran (0-1).", _GPU)
GPU_POWER = Gauge("baton_monitor_gpu_power_watts", "Power draw.", _GPU)
GPU_ENCODER = Gauge("baton_monitor_gpu_encoder_utilization_ratio", "NVENC utilisation (0-1).", _GPU)
GPU_DECODER = Gauge("baton_monitor_gpu_decoder_utilization_ratio", "NVDEC utilisation (0-1).", _GPU)
GPU_XID_ERRORS = Counter("baton_monitor_gpu_xid_errors", "XID errors the driver reported since the monitor started.", _GPU)
GPU_LAST_XID = Gauge("baton_monitor_gpu_last_xid", "The code of the last XID error (0: none seen).", _GPU)

# ---- the outside-in probe ----
PROBE_SUCCESS = Gauge(
    "baton_monitor_probe_success", "1 when the last GetOrchestrator answered (a reserve refusal included).", ["target"]
)
PROBE_DURATION = Gauge("baton_monitor_probe_duration_seconds", "Round trip of the last GetOrchestrator.", ["target"])
PROBE_STATE = Gauge(
    "baton_monitor_probe_state", "1 for the probe's current state: ok, reserve_refused or failed.", ["target", "state"]
)
PROBE_RUNS = Counter("baton_monitor_probe_runs", "Probes made, by resulting state.", ["target", "state"])
PROBE_MODEL_WARM = Gauge(
    "baton_monitor_probe_model_warm", "Per model the config marks warm: 1 if GetOrchestrator advertises it warm.",
    ["pipeline", "model_id"],
)
PROBE_PRICE_MISMATCH = Gauge(
    "baton_monitor_probe_price_mismatch", "1 if the advertised price differs from the price table's.",
    ["pipeline", "model_id"],
)

# ---- what the bus says ----
MODEL_WARM = Gauge(
    "baton_monitor_model_warm", "Per model the config marks warm: 1 if a fresh worker advert holds it warm.",
    ["pipeline", "model_id"],
)
WINNERS = Gauge("baton_monitor_winners", "Winning tickets in baton-pm-winners, by state.", ["state"])
WINNERS_VALUE = Gauge(
    "baton_monitor_winners_value_wei", "Face value of the winning tickets in baton-pm-winners, by state.", ["state"]
)
REDEMPTIONS_PENDING = Gauge("baton_monitor_redemptions_pending", "Winning tickets waiting to be redeemed.")
REDEMPTIONS_OLDEST = Gauge(
    "baton_monitor_redemptions_oldest_pending_seconds",
    "Age of the oldest pending winner, since the monitor first saw it (0: none).",
)
SENDER_DEPOSIT = Gauge("baton_monitor_sender_deposit_wei", "A gateway's deposit (baton-chain sender.<address>).", ["sender"])
SENDER_RESERVE = Gauge("baton_monitor_sender_reserve_wei", "A gateway's reserve.", ["sender"])
SENDER_RESERVE_CLAIMED = Gauge(
    "baton_monitor_sender_reserve_claimed_wei", "What orchestrators claimed from a gateway's reserve this round.",
    ["sender"],
)
