"""From settings to the models this worker serves: -aiModels and -aiModelsDir, or the demo set."""

from __future__ import annotations

from pathlib import Path

from baton_common.aimodels import SETTING, parse_ai_models
from baton_common.errors import ConfigError

from .config import InferenceSettings
from .demo import DEMO_MODELS, is_demo
from .domain import PIPELINES_SERVED, ModelSpec, resolve_weights

__all__ = ["demo_specs", "plan", "state_dir"]


def state_dir(settings: InferenceSettings) -> Path:
    return Path(settings.state_dir).expanduser() if settings.state_dir else Path.home() / ".baton" / "inference"


def plan(settings: InferenceSettings) -> tuple[list[ModelSpec], bool]:
    """(the models to serve, whether they are the demo set); ConfigError naming the setting."""
    entries = [m for m in parse_ai_models(settings.ai_models) if not m.url]
    offchain = settings.network == "offchain"
    if not entries:
        return (demo_specs(state_dir(settings) / "demo"), True) if offchain else ([], False)
    models_dir = Path(settings.ai_models_dir).expanduser() if settings.ai_models_dir else None
    specs = []
    seen = set()
    for model in entries:
        if (model.pipeline, model.model_id) in seen:
            continue  # the same model priced for several gateways
        seen.add((model.pipeline, model.model_id))
        if is_demo(model.model_id):
            if not offchain:
                raise ConfigError(f"{SETTING}: {model.model_id} is a demo model (random weights); "
                                  f"refused on {settings.network}")
            specs.append(ModelSpec(pipeline=model.pipeline, model_id=model.model_id, warm=model.warm,
                                   capacity=model.capacity, weights=state_dir(settings) / "demo" / model.pipeline,
                                   demo=True))
            continue
        if model.pipeline not in PIPELINES_SERVED:
            raise ConfigError(f"{SETTING}: {model.pipeline} {model.model_id}: Baton's Triton models do not serve "
                              f"{model.pipeline} yet (served: {', '.join(PIPELINES_SERVED)})")
        if models_dir is None:
            raise ConfigError(f"{SETTING}: {model.model_id} needs its weights in -aiModelsDir (BATON_AI_MODELS_DIR)")
        weights = resolve_weights(models_dir, model.model_id)
        if weights is None:
            raise ConfigError(
                f"-aiModelsDir (BATON_AI_MODELS_DIR): no weights for {model.model_id} in {models_dir} "
                f"(expected models--{model.model_id.replace('/', '--')}/snapshots/... or {model.model_id}/)"
            )
        specs.append(ModelSpec(pipeline=model.pipeline, model_id=model.model_id, warm=model.warm,
                               capacity=model.capacity, weights=weights))
    return specs, False


def demo_specs(root: Path) -> list[ModelSpec]:
    return [ModelSpec(pipeline=p, model_id=m, warm=True, capacity=1, weights=root / p, demo=True)
            for p, m in DEMO_MODELS.items()]
