"""The table from rules and rate; floors and ceilings through a stand-in of the negotiator's quote arithmetic.

The negotiator's quote path is not merged yet: ``quote`` below is the
arithmetic spec section 4 gives it (auto-adjust with the sender's face value
over the redemption's tx cost, then the table's clamp), built only from the
PriceTable contract. The end-to-end check with the real negotiator comes at merge.
"""

from __future__ import annotations

from fractions import Fraction

import pytest

from baton_common.schemas import decode, encode
from baton_common.schemas.pricing import (
    PriceTable,
    auto_adjusted,
    capability_wire_price,
    wire_price,
)
from baton_pricing.domain import BASE, Pricer, Rate, Rule
from baton_pricing.errors import InvalidPrice, NoRate
from baton_pricing.inputs import Source

GW = "0x" + "ab" * 20
OTHER = "0x" + "22" * 20
REDEEM_GAS = 1_200_000  # go-livepeer's redeemGasL2


def quote(table: PriceTable, gateway: str, face_value: int, gas_price: int,
          capability: int | None = None, model: str = "") -> Fraction:
    """Stand-in for the negotiator: base (or capability) price, auto-adjusted for this sender, clamped."""
    if capability is None:
        price = table.base_for(gateway)
    else:
        found = table.capability_price(capability, model, gateway)
        assert found is not None
        price = found
    multiplier = Fraction(face_value, REDEEM_GAS * gas_price)
    adjusted = auto_adjusted(price, multiplier) if table.auto_adjust else price
    return table.clamp(adjusted, gateway, capability=capability, model_id=model)


def usd(amount: str, pixels: int = 1) -> Source:
    return Source(amount=Fraction(amount), currency="USD", pixels_per_unit=pixels)


def wei(amount: int, pixels: int = 1) -> Source:
    return Source(amount=Fraction(amount), pixels_per_unit=pixels)


def eth_usd(dollars: int, at: float = 1000.0) -> Rate:
    return Rate(value=Fraction(dollars), updated_at=at)


def test_auto_adjust_arithmetic_worked_example() -> None:
    # face value 1e15 wei, tx cost 1.2e6 gas * 1e8 wei = 1.2e14: multiplier 25/3, overhead 1 + 3/25 = 1.12.
    assert auto_adjusted(Fraction(1000, 3), Fraction(10**15, 12 * 10**13)) == Fraction(373333, 1000)
    # 1000/3 * 1.12 = 373.3333...: truncated to 1/1000 wei, not rounded.
    assert auto_adjusted(Fraction(0), Fraction(1, 2)) == 0  # a zero price has no overhead
    assert auto_adjusted(Fraction(5, 1), Fraction(0)) == 5  # no multiplier: overhead 1


def test_wire_arithmetic_reduced_fractions_and_sub_wei() -> None:
    assert wire_price(Fraction(1200, 1000)) == (6, 5)  # reduced
    assert wire_price(Fraction(2**70 + 1, 3)) == ((2**70 + 1) // 3 if (2**70 + 1) // 3 < 2**63 else 2**63 - 1, 1)
    assert wire_price(Fraction(1, 2**64)) == (0, 1)  # den does not fit: floor(price)/1
    assert capability_wire_price(Fraction(4768371, 10**6)) == 4  # floor
    assert capability_wire_price(Fraction(999, 1000)) == 0  # sub-wei becomes 0


def test_ceiling_holds_under_a_gas_spike_and_the_floor_under_cheap_gas() -> None:
    pricer = Pricer({
        BASE: Rule(price=wei(1000)),
        (GW, None, ""): Rule(price=wei(1000), floor=wei(1000), ceiling=wei(1100)),
    })
    table, _ = pricer.table(now=0)
    face_value = 10**15
    calm = quote(table, GW, face_value, gas_price=10**7)  # tx cost 1.2e13: overhead 1.012
    assert calm == Fraction(1012)
    spike = quote(table, GW, face_value, gas_price=10**9)  # tx cost 1.2e15: overhead 2.2 -> 2200 wei
    assert spike == Fraction(1100)  # held at the gateway's ceiling
    assert quote(table, OTHER, face_value, gas_price=10**9) == 2200  # no bounds for anyone else
    pricer.configured[(GW, None, "")] = Rule(price=wei(900), floor=wei(1000), ceiling=wei(1100))
    table, changed = pricer.table(now=1)
    assert changed and table.version == 2
    assert quote(table, GW, face_value, gas_price=1) == 1000  # an operator's 900 is raised to the floor


def test_a_usd_price_moves_with_the_rate_and_stays_within_bounds() -> None:
    model = (GW, 33, "m")
    pricer = Pricer({
        BASE: Rule(price=wei(0)),
        ("default", 33, "m"): Rule(price=usd("0.000002")),  # per token
        model: Rule(floor=wei(5 * 10**8), ceiling=wei(2 * 10**9)),  # this gateway's deal in wei, default's price
    })
    pricer.update_rate(eth_usd(2000), now=1000)
    table, _ = pricer.table(now=1000)
    assert table.capability_price(33, "m", GW) == Fraction(2 * 10**12, 2000)  # 1e9 wei per token
    assert quote(table, GW, 10**15, 10**7, 33, "m") == Fraction(10**9) * Fraction(1012, 1000)
    pricer.update_rate(eth_usd(500), now=1001)  # ETH falls 4x: the same USD is 4x the wei
    table, _ = pricer.table(now=1001)
    assert table.capability_price(33, "m", GW) == 4 * 10**9
    assert quote(table, GW, 10**15, 10**7, 33, "m") == 2 * 10**9  # held at the gateway's ceiling
    assert quote(table, OTHER, 10**15, 10**7, 33, "m") == Fraction(4 * 10**9) * Fraction(1012, 1000)
    pricer.update_rate(eth_usd(8000), now=1002)  # ETH rises 4x
    table, _ = pricer.table(now=1002)
    assert table.capability_price(33, "m", GW) == Fraction(2.5 * 10**8)
    assert quote(table, GW, 10**15, 10**7, 33, "m") == 5 * 10**8  # held at the gateway's floor


def test_a_stale_rate_keeps_the_last_good_price_and_says_so() -> None:
    pricer = Pricer({BASE: Rule(price=usd("0.000000000001"))}, max_rate_age=7200)
    with pytest.raises(NoRate):
        pricer.table(now=0)
    assert pricer.update_rate(eth_usd(2000, at=0), now=10)
    good, _ = pricer.table(now=10)
    assert (good.eth_usd, good.eth_usd_stale) == (2000.0, False)
    assert pricer.update_rate(eth_usd(2100, at=20), now=30)
    assert pricer.check_staleness(now=20 + 7201)
    table, changed = pricer.table(now=20 + 7201)
    assert changed and table.eth_usd_stale and table.eth_usd == 2100.0  # the last good rate, flagged
    assert not pricer.update_rate(eth_usd(9999, at=5), now=7300)  # an older reading never replaces it
    assert pricer.update_rate(eth_usd(2200, at=7300), now=7301)
    table, _ = pricer.table(now=7301)
    assert (table.eth_usd, table.eth_usd_stale) == (2200.0, False)


def test_versions_go_up_only_with_a_change() -> None:
    pricer = Pricer({BASE: Rule(price=wei(1))})
    first, changed = pricer.table(now=1)
    again, changed_again = pricer.table(now=61)
    assert (first.version, changed, again.version, changed_again) == (1, True, 1, False)
    pricer.set_rule(BASE, Rule(price=wei(2)), now=62)
    third, changed = pricer.table(now=62)
    assert (third.version, changed, third.base.value) == (2, True, 2)
    assert decode(encode(third), PriceTable) == third


def test_a_rule_that_cannot_price_changes_nothing() -> None:
    pricer = Pricer({BASE: Rule(price=wei(1000))})
    before, _ = pricer.table(now=0)
    for key, rule, why in (
        ((GW, None, ""), Rule(floor=wei(10), ceiling=wei(5)), "floor 10wei is above ceiling 5wei"),
        ((GW, 33, "m"), Rule(ceiling=wei(5)), "need a price"),
        (BASE, Rule(), "cannot be removed"),
        ((GW, None, ""), Rule(price=wei(2**63)), "2\\^63-1"),
    ):
        with pytest.raises(InvalidPrice, match=why):
            pricer.set_rule(key, rule, now=1)
    with pytest.raises(NoRate):
        pricer.set_rule((GW, None, ""), Rule(price=usd("1")), now=1)
    after, changed = pricer.table(now=2)
    assert not changed and after.base == before.base and after.gateways == {}


def test_overrides_replace_the_configured_rule_and_reset_brings_it_back() -> None:
    pricer = Pricer({BASE: Rule(price=wei(1000)), (GW, None, ""): Rule(price=wei(800), ceiling=wei(900))})
    old, new = pricer.set_rule((GW, None, ""), Rule(price=wei(850)), now=1)
    assert old == Rule(price=wei(800), ceiling=wei(900)) and new == Rule(price=wei(850))
    table, _ = pricer.table(now=1)
    assert table.gateway(GW).ceiling is None and table.base_for(GW) == 850
    restored = Pricer(pricer.configured)
    assert restored.restore(pricer.overrides_as_rules(), now=2) == []
    assert restored.rule((GW, None, "")) == Rule(price=wei(850))
    pricer.reset_rule((GW, None, ""), now=3)
    table, _ = pricer.table(now=3)
    assert table.base_for(GW) == 800 and table.gateway(GW).ceiling is not None
