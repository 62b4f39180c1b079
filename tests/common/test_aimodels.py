"""go-livepeer's -aiModels: an operator's existing file or inline list reads the same in Baton."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest

from baton_common.aimodels import AIModel, parse_ai_models
from baton_common.config import CommonSettings, ConfigError, load_settings


def write(tmp_path: Path, entries) -> str:
    path = tmp_path / "aiModels.json"
    path.write_text(entries if isinstance(entries, str) else json.dumps(entries))
    return str(path)


def test_a_go_livepeer_file_reads_with_exact_prices(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """[
          {"pipeline": "text-to-image", "model_id": "stabilityai/sd-turbo", "warm": true,
           "price_per_unit": 4768371, "pixels_per_unit": 1},
          {"pipeline": "llm", "model_id": "meta-llama/Llama-3.1-8B-Instruct", "capacity": 2,
           "price_per_unit": 0.18, "pixels_per_unit": 1000000, "currency": "USD",
           "gateway": "0xABCDEF0123456789abcdef0123456789ABCDEF01"},
          {"pipeline": "upscale", "model_id": "x/up", "url": "http://runner:8000", "token": "s3cret",
           "optimization_flags": {"SFAST": true, "DEEPCACHE": "false"}}
        ]""",
    )
    t2i, llm, up = parse_ai_models(path)
    assert t2i == AIModel("text-to-image", "stabilityai/sd-turbo", warm=True, price_per_unit=Fraction(4768371),
                          pixels_per_unit=Fraction(1))
    assert t2i.capability == 27 and llm.capability == 33
    assert llm.price_per_unit == Fraction(18, 100) and llm.capacity == 2 and llm.currency == "USD"
    assert llm.gateway == "0xabcdef0123456789abcdef0123456789abcdef01"
    assert up.optimization_flags == {"SFAST": True, "DEEPCACHE": "false"} and up.url == "http://runner:8000"
    assert "s3cret" not in repr(up)


def test_the_inline_list() -> None:
    assert parse_ai_models("text-to-image:stabilityai/sd-turbo:true, llm:m:false,upscale:u") == [
        AIModel("text-to-image", "stabilityai/sd-turbo", warm=True),
        AIModel("llm", "m"),
        AIModel("upscale", "u"),
    ]
    assert parse_ai_models("") == []


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("text2img:m:true", "unknown pipeline 'text2img'"),
        ("text-to-image:m:yes", "warm must be true or false"),
        ("text-to-image", "is not pipeline:model_id"),
        ('[{"pipeline": "llm", "model_id": "m"}]', "inline JSON is not accepted"),
        ("models.json", "does not exist"),
        ("llm:m:true,llm:m:false", "both warm and cold"),
    ],
)
def test_bad_inline_values_are_refused_by_name(value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as refused:
        parse_ai_models(value)
    assert "-aiModels" in str(refused.value)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"pipeline": "llm"}, "model_id must be a non-empty string"),
        ({"pipeline": "llm", "model_id": "m", "capacity": 0}, "capacity must be a whole number"),
        ({"pipeline": "llm", "model_id": "m", "price_per_unit": "10"}, "must be a JSON number"),
        ({"pipeline": "llm", "model_id": "m", "pixels_per_unit": 0}, "pixels_per_unit must be above 0"),
        ({"pipeline": "llm", "model_id": "m", "price_per_unit": -1}, "price_per_unit must be at least 0"),
        ({"pipeline": "llm", "model_id": "m", "gateway": "0x12"}, "gateway must be an ETH address"),
        ({"pipeline": "llm", "model_id": "m", "wram": True}, "unknown key 'wram'"),
        ({"pipeline": "llm", "model_id": "m", "warm": "true"}, "warm must be true or false"),
    ],
)
def test_bad_file_entries_are_refused_naming_the_entry(tmp_path: Path, entry: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as refused:
        parse_ai_models(write(tmp_path, [entry]))
    assert "entry 1" in str(refused.value)


def test_one_model_priced_per_gateway_but_not_twice_for_one(tmp_path: Path) -> None:
    base = {"pipeline": "llm", "model_id": "m", "price_per_unit": 1}
    gw = {**base, "gateway": "0x" + "ab" * 20, "price_per_unit": 2}
    assert len(parse_ai_models(write(tmp_path, [base, gw]))) == 2
    with pytest.raises(ConfigError, match="listed twice for gateway default"):
        parse_ai_models(write(tmp_path, [base, base]))
    with pytest.raises(ConfigError, match="not JSON"):
        parse_ai_models(write(tmp_path, "[{"))


def test_it_is_a_shared_setting_under_go_livepeers_flag_names(clean_env) -> None:
    settings = load_settings(CommonSettings, "pricing", env={}, argv=["-aiModels=llm:m:true", "-aiModelsDir", "/m"])
    assert settings.ai_models == "llm:m:true" and settings.ai_models_dir == "/m"
    env = {"BATON_AI_MODELS": "upscale:u"}
    assert load_settings(CommonSettings, "inference", env=env).ai_models == "upscale:u"
