"""Live model changes (``baton models load|unload``) on ``baton.models.<worker_id>``, each audited."""

from __future__ import annotations

import time
import uuid
from typing import Any

from baton_common.bus import Bus
from baton_common.errors import ConfigError
from baton_common.schemas.audit import AuditEvent, audit_subject
from baton_common.schemas.models import ModelControl, ModelControlReply, ModelLoad, ModelUnload

from .config import InferenceSettings
from .domain import human
from .manager import WarmModels
from .plan import one

__all__ = ["Control"]


class Control:
    def __init__(self, bus: Bus, models: WarmModels, settings: InferenceSettings, worker_id: str, budget: int) -> None:
        self.bus = bus
        self.models = models
        self.settings = settings
        self.worker_id = worker_id
        self.budget = budget

    async def handle(self, req: ModelControl) -> ModelControlReply:
        match req:
            case ModelLoad():
                reply, old, new = await self._load(req)
            case ModelUnload():
                reply, old, new = await self._unload(req)
        await self._audit(req, reply, old, new)
        return reply

    async def _load(self, req: ModelLoad) -> tuple[ModelControlReply, Any, Any]:
        try:
            spec = one(self.settings, req.pipeline, req.model_id, req.capacity)
        except ConfigError as exc:
            return ModelControlReply(ok=False, state="refused", message=exc.message), None, None
        old = self.models.find(req.pipeline, req.model_id)
        used = sum(e.memory_bytes or e.spec.estimate() for e in self.models.entries.values()
                   if e.state in ("ready", "loading") and e is not old)
        usable = int(self.budget * (1 - self.settings.memory_headroom))
        if used + spec.estimate() > usable:
            message = (f"{req.pipeline} {req.model_id} needs {human(spec.estimate())}; {human(used)} of "
                       f"{human(usable)} is in use")
            return ModelControlReply(ok=False, state="refused", message=message), None, None
        before = {"state": old.state, "capacity": old.spec.capacity} if old else None
        entry = await self.models.add(spec)
        reply = ModelControlReply(ok=entry.state == "ready", state=entry.state, message=entry.error,
                                  load_seconds=round(entry.load_seconds, 3), memory_bytes=entry.memory_bytes)
        return reply, before, {"state": entry.state, "capacity": spec.capacity}

    async def _unload(self, req: ModelUnload) -> tuple[ModelControlReply, Any, Any]:
        entry = await self.models.remove(req.pipeline, req.model_id)
        if entry is None:
            return ModelControlReply(ok=False, state="unknown",
                                     message=f"this worker does not serve {req.pipeline} {req.model_id}"), None, None
        return ModelControlReply(ok=True, state="cold"), {"state": "ready", "capacity": entry.spec.capacity}, None

    async def _audit(self, req: ModelControl, reply: ModelControlReply, old: Any, new: Any) -> None:
        event_id = str(uuid.uuid4())
        action = "models.load" if isinstance(req, ModelLoad) else "models.unload"
        event = AuditEvent(
            event_id=event_id, at=time.time(), actor=req.actor or "unknown", service="inference", area="models",
            action=action, target=f"{self.worker_id}/{req.pipeline}/{req.model_id}", old=old, new=new,
            reason=req.reason, ok=reply.ok, error="" if reply.ok else reply.message,
        )
        await self.bus.publish_durable(audit_subject("models"), event, msg_id=event_id)
