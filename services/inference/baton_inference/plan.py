"""From settings to the models this worker serves: -aiModels and -aiModelsDir, or the demo set."""

from __future__ import annotations

from pathlib import Path

from baton_common.aimodels import SETTING, AIModel, parse_ai_models
from baton_common.errors import ConfigError

from .config import InferenceSettings
from .demo import DEMO_MODELS, is_demo
from .domain import PIPELINES_SERVED, ModelSpec, resolve_weights

__all__ = ["demo_specs", "one", "plan", "state_dir"]


def state_dir(settings: InferenceSettings) -> Path:
    return Path(settings.state_dir).expanduser() if settings.state_dir else Path.home() / ".baton" / "inference"


def plan(settings: InferenceSettings) -> tuple[list[ModelSpec], bool]:
    """(the models to serve, whether they are the demo set); ConfigError naming the setting."""
    entries = [m for m in parse_ai_models(settings.ai_models) if not m.url]
    if not entries:
        offchain = settings.network == "offchain"
        return (demo_specs(state_dir(settings) / "demo"), True) if offchain else ([], False)
    specs = []
    seen = set()
    for model in entries:
        if (model.pipeline, model.model_id) in seen:
            continue  # the same model priced for several gateways
        seen.add((model.pipeline, model.model_id))
        specs.append(_spec(settings, model))
    return specs, False


def _spec(settings: InferenceSettings, model: AIModel) -> ModelSpec:
    if is_demo(model.model_id):
        if settings.network != "offchain":
            raise ConfigError(f"{SETTING}: {model.model_id} is a demo model (random weights); "
                              f"refused on {settings.network}")
        return ModelSpec(pipeline=model.pipeline, model_id=model.model_id, warm=model.warm,
                         capacity=model.capacity, weights=state_dir(settings) / "demo" / model.pipeline, demo=True)
    if model.pipeline not in PIPELINES_SERVED:
        raise ConfigError(f"{SETTING}: {model.pipeline} {model.model_id}: Baton's Triton models do not serve "
                          f"{model.pipeline} yet (served: {', '.join(PIPELINES_SERVED)})")
    if not settings.ai_models_dir:
        raise ConfigError(f"{SETTING}: {model.model_id} needs its weights in -aiModelsDir (BATON_AI_MODELS_DIR)")
    models_dir = Path(settings.ai_models_dir).expanduser()
    weights = resolve_weights(models_dir, model.model_id)
    if weights is None:
        raise ConfigError(
            f"-aiModelsDir (BATON_AI_MODELS_DIR): no weights for {model.model_id} in {models_dir} "
            f"(expected models--{model.model_id.replace('/', '--')}/snapshots/... or {model.model_id}/)"
        )
    return ModelSpec(pipeline=model.pipeline, model_id=model.model_id, warm=model.warm,
                     capacity=model.capacity, weights=weights)


def one(settings: InferenceSettings, pipeline: str, model_id: str, capacity: int) -> ModelSpec:
    """The spec of one model asked for live (``baton models load``); ConfigError saying what is wrong."""
    return _spec(settings, AIModel(pipeline=pipeline, model_id=model_id, warm=True, capacity=capacity))


def demo_specs(root: Path) -> list[ModelSpec]:
    return [ModelSpec(pipeline=p, model_id=m, warm=True, capacity=1, weights=root / p, demo=True)
            for p, m in DEMO_MODELS.items()]
