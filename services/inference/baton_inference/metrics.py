"""Every metric of the inference service.

go-livepeer's AI worker series where the meaning matches (its label names),
and Baton's own per model: load time, warm state, memory. Triton's own
``nv_inference_*`` series are scraped from its :8002.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from baton_common.metrics import LivepeerCounter

__all__ = ["ERRORS", "IDLE", "IN_USE", "JOB_SECONDS", "LOAD_SECONDS", "MEMORY", "REQUESTED", "WARM"]

IN_USE = Gauge("livepeer_ai_container_in_use", "Jobs running now, per model", ["pipeline", "model_id"])
IDLE = Gauge("livepeer_ai_container_idle", "Free job slots, per model", ["pipeline", "model_id"])
REQUESTED = LivepeerCounter("livepeer_ai_models_requested", "Jobs asked of each model", ["pipeline", "model_id"])
ERRORS = Counter("baton_inference_job_errors", "Jobs that failed on this worker, by error code "
                 "(the negotiator counts gateway-facing failures as livepeer_ai_request_errors)",
                 ["error_code", "pipeline", "model_id"])
JOB_SECONDS = Histogram("baton_inference_job_seconds", "Time a job spent on the worker", ["pipeline", "model_id"],
                        buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300))
LOAD_SECONDS = Gauge("baton_inference_model_load_seconds", "How long the model took to load and warm up",
                     ["pipeline", "model_id"])
WARM = Gauge("baton_inference_model_warm", "1 while the model is loaded, warm and advertised", ["pipeline", "model_id"])
MEMORY = Gauge("baton_inference_model_memory_bytes", "Memory the loaded model holds (GPU by NVML, else stub RSS)",
               ["pipeline", "model_id"])
