"""go-livepeer's price inputs, each rule against a worked example (spec/livepeer-wire.md section 4)."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest

from baton_common.aimodels import parse_ai_models
from baton_common.config import ConfigError, load_settings
from baton_pricing.config import PricingSettings, fixed_rate, load_rules
from baton_pricing.domain import BASE, Pricer, Rate, wei_per_unit
from baton_pricing.errors import InvalidPrice
from baton_pricing.inputs import (
    Source,
    go_rat,
    parse_gateway_prices,
    parse_pixels_per_unit,
    parse_price_per_unit,
)

GW = "0x" + "Ab" * 20


@pytest.mark.parametrize(
    ("text", "amount", "currency"),
    [
        ("1000", Fraction(1000), "wei"),
        ("1000wei", Fraction(1000), "wei"),
        ("1000WEI", Fraction(1000), "wei"),  # currencies are case-insensitive
        ("0.0001eth", Fraction(1, 10000), "eth"),
        ("5ETH", Fraction(5), "eth"),
        ("0.5USD", Fraction(1, 2), "USD"),
        ("0.5usd", Fraction(1, 2), "USD"),
        ("0.000000000001USD", Fraction(1, 10**12), "USD"),
        ("0", Fraction(0), "wei"),
    ],
)
def test_price_per_unit_formats(text: str, amount: Fraction, currency: str) -> None:
    assert parse_price_per_unit(text) == (amount, currency)


@pytest.mark.parametrize(
    "text",
    [
        ".5",  # a digit before the point
        "1.",  # and after it
        "-5",  # no sign
        "1.5.3",
        "1000\n",  # Go's $ is the end of the text; Python's would allow a trailing newline
        "\uff11\uff10",  # fullwidth digits: Go's \d is ASCII
        "1000 wei",
        "",
    ],
)
def test_price_per_unit_the_regex_refuses(text: str) -> None:
    with pytest.raises(InvalidPrice, match="<price><currency>"):
        parse_price_per_unit(text)


def test_a_currency_the_feed_does_not_quote_is_refused_by_name() -> None:
    # [A-z] is Go's ASCII range, so "_usd" passes the regex, then names a currency the ETH/USD feed lacks.
    with pytest.raises(InvalidPrice, match="does not have _USD"):
        parse_price_per_unit("10_usd")
    with pytest.raises(InvalidPrice, match="does not have EUR"):
        parse_price_per_unit("10EUR")
    with pytest.raises(InvalidPrice, match="does not have E3"):  # no exponent: "1e3" is 1 of currency "e3"
        parse_price_per_unit("1e3")


def test_pixels_per_unit_is_a_whole_number_above_zero() -> None:
    assert parse_pixels_per_unit("1") == 1
    assert parse_pixels_per_unit("1e6") == 1_000_000  # big.Rat takes an exponent, and it is an integer
    assert parse_pixels_per_unit("6/2") == 3
    for bad, why in (("0", "> 0"), ("-5", "> 0"), ("1.5", "valid integer"), ("x", "valid integer"),
                     (str(2**63), "64 bits")):
        with pytest.raises(InvalidPrice, match=why):
            parse_pixels_per_unit(bad)


def test_go_rat_reads_what_big_rat_reads() -> None:
    assert go_rat("1/3") == Fraction(1, 3)
    assert go_rat("0.25") == Fraction(1, 4)
    assert go_rat("2.5e-3") == Fraction(1, 400)
    assert go_rat("1/0") is None
    assert go_rat("abc") is None
    assert go_rat("1" * 500) is None  # bounded work


def test_base_price_is_the_reduced_fraction_price_over_pixels() -> None:
    # -pricePerUnit=1200 -pixelsPerUnit=1000: 6/5 wei per pixel.
    assert wei_per_unit(Source(amount=Fraction(1200), pixels_per_unit=1000), None) == Fraction(6, 5)
    # -pricePerUnit=1000 -pixelsPerUnit=3: stays 1000/3, exactly.
    assert wei_per_unit(Source(amount=Fraction(1000), pixels_per_unit=3), None) == Fraction(1000, 3)
    # 0.0001eth per 1e6 pixels = 1e14 / 1e6 = 1e8 wei per pixel.
    assert wei_per_unit(Source(amount=Fraction(1, 10000), currency="eth", pixels_per_unit=10**6), None) == 10**8


def test_usd_converts_with_the_feed_answer_exactly() -> None:
    # ETH/USD feed answers 300012345678 with 8 decimals: 1 ETH = 3000.12345678 USD.
    rate = Rate(value=Fraction(300012345678, 10**8))
    wei = wei_per_unit(Source(amount=Fraction(1, 2), currency="USD"), rate)
    # wei = 0.5 * 1e18 / 3000.12345678 = 5e25 / 300012345678
    assert wei == Fraction(5 * 10**25, 300012345678)
    # A USD/ETH feed (ETH the quote): wei = price * feed * 1e18.
    inverse = Rate(value=Fraction(1, 3000), eth_is_base=False)
    assert wei_per_unit(Source(amount=Fraction(3), currency="USD"), inverse) == Fraction(10**18, 1000)


def test_price_per_gateway_json_as_go_livepeer_reads_it(tmp_path: Path) -> None:
    value = json.dumps({"Gateways": [
        {"EthAddress": GW, "PricePerUnit": 0.3, "Currency": "USD", "PixelsPerUnit": 3},
        {"ethaddress": "0x" + "11" * 20, "priceperunit": 1000, "pixelsperunit": 1},
    ]})
    prices = parse_gateway_prices(value)
    assert prices[GW.lower()] == Source(amount=Fraction(3, 10), currency="USD", pixels_per_unit=3)  # 0.3 read exactly
    assert prices["0x" + "11" * 20] == Source(amount=Fraction(1000))
    path = tmp_path / "gateways.json"
    path.write_text(json.dumps({"broadcasters": [{"ethaddress": GW, "priceperunit": 7, "pixelsperunit": 1}],
                                "gateways": [{"ethaddress": GW, "priceperunit": 9, "pixelsperunit": 1}]}))
    assert parse_gateway_prices(str(path)) == {GW.lower(): Source(amount=Fraction(9))}  # gateways after broadcasters


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ('{"gateways":[{"ethaddress":"0xab","priceperunit":1,"pixelsperunit":1}]}', "not an ETH address"),
        ('{"gateways":[{"ethaddress":"' + GW + '","priceperunit":"1","pixelsperunit":1}]}', "unquoted"),
        ('{"gateways":[{"ethaddress":"' + GW + '","priceperunit":-1,"pixelsperunit":1}]}', ">= 0"),
        ('{"gateways":[{"ethaddress":"' + GW + '","priceperunit":1}]}', "pixelsperunit is required"),
        ('{"gateways":[{"ethaddress":"' + GW + '","priceperunit":1,"pixelsperunit":0}]}', "> 0"),
        ('{"gateways":[{"ethaddress":"' + GW + '","priceperunit":1,"pixelsperunit":1,"currency":"EUR"}]}', "EUR"),
        ('{"gateways": 3}', "JSON array"),
        ("not json", "not JSON"),
    ],
)
def test_price_per_gateway_bad_values_name_the_problem(value: str, why: str) -> None:
    with pytest.raises(InvalidPrice, match=why):
        parse_gateway_prices(value)


def settings(clean_env: pytest.MonkeyPatch, *argv: str) -> PricingSettings:
    return load_settings(PricingSettings, "pricing", env={}, argv=list(argv))


def test_flags_build_the_configured_table(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    models = tmp_path / "models.json"
    models.write_text(json.dumps([
        {"pipeline": "text-to-image", "model_id": "sd", "price_per_unit": 4768371, "pixels_per_unit": 1000000},
        {"pipeline": "llm", "model_id": "m", "price_per_unit": 0.5, "currency": "USD", "gateway": GW},
        {"pipeline": "upscale", "model_id": "u"},  # falls back to -pricePerUnit and its currency
    ]))
    gateways = json.dumps({"gateways": [{"ethaddress": GW, "priceperunit": 800, "pixelsperunit": 1}]})
    s = settings(clean_env, "-pricePerUnit=1200", "-pixelsPerUnit=1000", f"-pricePerGateway={gateways}",
                 f"-aiModels={models}", "--eth-usd-rate", "2500")
    pricer = Pricer(load_rules(s))
    pricer.update_rate(fixed_rate(s), now=0.0)  # type: ignore[arg-type]
    table, _ = pricer.table(now=1.0)
    assert table.base.value == Fraction(6, 5)
    assert table.base_for(GW) == 800
    assert table.base_for("0x" + "22" * 20) == Fraction(6, 5)
    assert table.capability_price(27, "sd", "0x" + "22" * 20) == Fraction(4768371, 10**6)
    # 0.5 USD at 2500 USD/ETH, per -pixelsPerUnit (1000): a model without pixels_per_unit takes the flag's.
    assert table.capability_price(33, "m", GW) == Fraction(10**18, 2 * 2500 * 1000)
    assert table.capability_price(33, "m", "0x" + "22" * 20) is None  # only that gateway has it
    assert table.capability_price(30, "u", GW) == Fraction(6, 5)  # 1200 wei per -pixelsPerUnit 1000
    assert table.eth_usd == 2500.0


def test_a_model_without_a_price_needs_price_per_unit(clean_env: pytest.MonkeyPatch) -> None:
    s = settings(clean_env, "-aiModels=llm:m:true", "-pricePerUnit=0", "-network=arbitrum-one-mainnet")
    with pytest.raises(ConfigError, match="'price_per_unit' must be set for model 'm'"):
        load_rules(s)


def test_on_chain_the_base_price_must_be_set(clean_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="-pricePerUnit .* must be set"):
        load_rules(settings(clean_env, "-network=arbitrum-one-mainnet"))
    assert load_rules(settings(clean_env))[BASE].price == Source(amount=Fraction(0))  # offchain: 0


def test_ai_models_pixels_per_unit_must_be_whole(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    models = tmp_path / "m.json"
    models.write_text('[{"pipeline":"llm","model_id":"m","price_per_unit":1,"pixels_per_unit":1.5}]')
    assert parse_ai_models(str(models))[0].pixels_per_unit == Fraction(3, 2)
    with pytest.raises(ConfigError, match="valid positive integer"):
        load_rules(settings(clean_env, f"-aiModels={models}"))


def test_bounds_setting(clean_env: pytest.MonkeyPatch) -> None:
    bounds = json.dumps({"bounds": [
        {"gateway": GW, "floor": "700", "ceiling": "0.000001eth"},
        {"pipeline": "llm", "model_id": "m", "ceiling": "1USD", "pixels_per_unit": 1000},
    ]})
    rules = load_rules(settings(clean_env, "-pricePerUnit=1000", "--price-bounds", bounds,
                                "-aiModels=llm:m"))
    assert rules[(GW.lower(), None, "")].ceiling == Source(amount=Fraction(1, 10**6), currency="eth")
    assert rules[("default", 33, "m")].ceiling == Source(amount=Fraction(1), currency="USD", pixels_per_unit=1000)
    for bad, why in (('{"bounds":[{"gateway":"x","floor":"1"}]}', "not an ETH address"),
                     ('{"bounds":[{"pipeline":"nope","model_id":"m","floor":"1"}]}', "unknown pipeline"),
                     ('{"bounds":[{"floor":1}]}', "must be a string"),
                     ('{"bounds":[{"gateway":"default"}]}', "a floor, a ceiling or both")):
        with pytest.raises(ConfigError, match=why):
            load_rules(settings(clean_env, "--price-bounds", bad))


def test_a_bad_fixed_rate_names_the_setting(clean_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="BATON_PRICING_ETH_USD_RATE"):
        fixed_rate(settings(clean_env, "--eth-usd-rate", "-3"))
