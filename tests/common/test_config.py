"""Settings loading: env, file, go-livepeer flags, and errors that name the culprit."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pytest

from baton_common.config import CommonSettings, ConfigError, go_duration, load_settings, redacted, setting


class PricingLike(CommonSettings, frozen=True, kw_only=True):
    http_port: Annotated[int, setting("port", ge=0, le=65535)] = 7936
    price_per_unit: Annotated[str, setting("price", flag="pricePerUnit")] = "0"
    pixels_per_unit: Annotated[int, setting("pixels", flag="pixelsPerUnit", gt=0)] = 1
    auto_adjust_price: Annotated[bool, setting("auto", flag="autoAdjustPrice")] = True
    gateways: Annotated[tuple[str, ...], setting("list")] = ()
    api_token: Annotated[str, setting("token", secret=True)] = ""


def load(env: dict[str, str] | None = None, argv: list[str] | None = None) -> PricingLike:
    return load_settings(PricingLike, "pricing", env=env or {}, argv=argv or [])


def test_defaults() -> None:
    s = load()
    assert s.http_port == 7936 and s.nats_url == "nats://127.0.0.1:4222" and s.network == "offchain"


def test_shared_and_own_env_names() -> None:
    s = load({"BATON_NATS_URL": "nats://a:1,nats://b:2", "BATON_PRICING_PIXELS_PER_UNIT": "12",
              "BATON_PRICING_AUTO_ADJUST_PRICE": "false", "BATON_PRICING_GATEWAYS": "0xa, 0xb"})
    assert s.nats_servers == ["nats://a:1", "nats://b:2"]
    assert s.pixels_per_unit == 12 and s.auto_adjust_price is False and s.gateways == ("0xa", "0xb")


def test_service_prefix_overrides_a_shared_setting_for_that_service_only() -> None:
    env = {"BATON_HTTP_PORT": "9000", "BATON_PRICING_HTTP_PORT": "9001"}
    assert load(env).http_port == 9001
    assert load({"BATON_HTTP_PORT": "9000"}).http_port == 9000


def test_other_services_variables_are_not_ours_to_judge() -> None:
    env = {"BATON_CHAIN_ETH_URL": "http://x", "BATON_CHAIN_TYPO": "1", "BATON_CONFIG": "", "BATON_IMAGE": "baton:1"}
    assert load(env).http_port == 7936


def test_a_mistyped_shared_name_stops_the_service() -> None:
    with pytest.raises(ConfigError, match="unknown setting BATON_NATS_ULR"):
        load({"BATON_NATS_ULR": "nats://elsewhere:4222"})


@pytest.mark.parametrize("url", ["", " , ", "nats://h:abc", "http://h:4222", "nats://:4222"])
def test_a_bad_nats_url_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError, match="BATON_NATS_URL"):
        load({"BATON_NATS_URL": url})


def test_nats_urls_that_work() -> None:
    s = load({"BATON_NATS_URL": "nats://a:4222, tls://b:4443,c:4222"})
    assert s.nats_servers == ["nats://a:4222", "tls://b:4443", "c:4222"]


def test_unknown_name_under_own_prefix_stops_the_service() -> None:
    with pytest.raises(ConfigError, match="unknown setting BATON_PRICING_PRICE_PER_UNT"):
        load({"BATON_PRICING_PRICE_PER_UNT": "5"})


@pytest.mark.parametrize(
    "env, named",
    [
        ({"BATON_HTTP_PORT": "eighty"}, "BATON_HTTP_PORT"),
        ({"BATON_PRICING_HTTP_PORT": "70000"}, "BATON_PRICING_HTTP_PORT"),
        ({"BATON_PRICING_PIXELS_PER_UNIT": "0"}, "BATON_PRICING_PIXELS_PER_UNIT"),
        ({"BATON_PRICING_AUTO_ADJUST_PRICE": "maybe"}, "BATON_PRICING_AUTO_ADJUST_PRICE"),
        ({"BATON_LOG_LEVEL": "loud"}, "BATON_LOG_LEVEL"),
    ],
)
def test_bad_value_names_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(env)
    assert named in str(err.value) and "bad value" in str(err.value)


def test_secret_values_never_appear_in_errors_or_logs() -> None:
    class WithSecretInt(CommonSettings, frozen=True, kw_only=True):
        key_id: Annotated[int, setting("k", secret=True)] = 0

    with pytest.raises(ConfigError) as err:
        load_settings(WithSecretInt, "pricing", env={"BATON_PRICING_KEY_ID": "s3cr3t"}, argv=[])
    assert "s3cr3t" not in str(err.value)
    assert redacted(load({"BATON_PRICING_API_TOKEN": "tok"}))["api_token"] == "***"


def test_go_livepeer_flags_with_go_value_format() -> None:
    s = load(argv=["-pricePerUnit", "1000wei", "-pixelsPerUnit=3", "-autoAdjustPrice=false", "--http-port", "1"])
    assert (s.price_per_unit, s.pixels_per_unit, s.auto_adjust_price, s.http_port) == ("1000wei", 3, False, 1)
    assert load(argv=["-autoAdjustPrice"]).auto_adjust_price is True


def test_flags_beat_env_which_beats_the_file(tmp_path: Path) -> None:
    cfg = tmp_path / "baton.toml"
    cfg.write_text('pixelsPerUnit = 2\n[pricing]\nhttp_port = 5\n')
    env = {"BATON_CONFIG": str(cfg), "BATON_PRICING_PIXELS_PER_UNIT": "4"}
    s = load(env)
    assert (s.pixels_per_unit, s.http_port) == (4, 5)
    assert load(env, ["-pixelsPerUnit=9"]).pixels_per_unit == 9


def test_unknown_flag() -> None:
    with pytest.raises(ConfigError, match="unknown flag -pricePerUnitt"):
        load(argv=["-pricePerUnitt=1"])


def test_toml_file_with_go_livepeer_keys_and_service_tables(tmp_path: Path) -> None:
    cfg = tmp_path / "baton.toml"
    cfg.write_text(
        'nats_url = "nats://n:4222"\npricePerUnit = "0.5eth"\nethUrl = "http://rpc"\n'
        '[pricing]\npixels_per_unit = 7\n[chain]\nanything = "is chain\'s to check"\n'
    )
    s = load(argv=["-config", str(cfg)])
    assert (s.nats_url, s.price_per_unit, s.pixels_per_unit) == ("nats://n:4222", "0.5eth", 7)


def test_toml_unknown_key_names_file_and_key(tmp_path: Path) -> None:
    cfg = tmp_path / "baton.toml"
    cfg.write_text("[pricing]\npixels_per_unitt = 7\n")
    with pytest.raises(ConfigError, match=r"baton\.toml: \[pricing\] pixels_per_unitt"):
        load({"BATON_CONFIG": str(cfg)})
    cfg.write_text("natsurl = 'x'\n")
    with pytest.raises(ConfigError, match="natsurl"):
        load({"BATON_CONFIG": str(cfg)})


def test_go_livepeer_plain_config_file_carries_over(tmp_path: Path) -> None:
    cfg = tmp_path / "livepeer.conf"
    cfg.write_text("# an operator's go-livepeer -config file\norchestrator\npricePerUnit 1200\n"
                   "pixelsPerUnit 1\nautoAdjustPrice false\nserviceAddr 1.2.3.4:8935\ndataDir /var/lib/livepeer\n"
                   "transactionTimeout 5m\nmaxTransactionReplacements 2\nverifierUrl http://v\nv 6\n")
    s = load({"BATON_CONFIG": str(cfg)})
    assert (s.price_per_unit, s.pixels_per_unit, s.auto_adjust_price) == ("1200", 1, False)


def test_bad_value_in_file_names_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "livepeer.conf"
    cfg.write_text("pixelsPerUnit many\n")
    with pytest.raises(ConfigError, match=r"livepeer\.conf: pixelsPerUnit"):
        load({"BATON_CONFIG": str(cfg)})


def test_missing_or_broken_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load({"BATON_CONFIG": str(tmp_path / "nope.toml")})
    broken = tmp_path / "b.toml"
    broken.write_text("[pricing\n")
    with pytest.raises(ConfigError, match="b.toml"):
        load({"BATON_CONFIG": str(broken)})


def test_cross_field_check_in_post_init() -> None:
    class Strict(CommonSettings, frozen=True, kw_only=True):
        eth_url: str = ""

        def __post_init__(self) -> None:
            if self.network != "offchain" and not self.eth_url:
                raise ValueError("network needs an eth_url")

    with pytest.raises(ConfigError, match="network needs an eth_url"):
        load_settings(Strict, "chain", env={"BATON_NETWORK": "arbitrum-one-mainnet"}, argv=[])


@pytest.mark.parametrize(("text", "seconds"), [
    ("5m", 300.0), ("300s", 300.0), ("1m30s", 90.0), ("1h2m3.5s", 3723.5), ("250ms", 0.25), (".5s", 0.5),
    ("20", 20.0), ("0", 0.0), ("5x", None), ("m", None), ("5m3", None), ("", None), ("inf", None), ("5 m", None),
])
def test_go_durations(text: str, seconds: float | None) -> None:
    assert go_duration(text) == seconds
