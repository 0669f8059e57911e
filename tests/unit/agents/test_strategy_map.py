from __future__ import annotations

import pytest

from agents.strategy_map import FAMILIES, StrategyMap, StrategyMapError, UnknownStrategy


def test_defaults_cover_s1_to_s14_by_family() -> None:
    m = StrategyMap.from_spec("")
    got = {sid: m.family(f"S{sid}") for sid in range(1, 15)}
    assert [got[i] for i in (1, 2, 3)] == ["EmaCross"] * 3
    assert [got[i] for i in (4, 5, 6, 7)] == ["MeanReversion"] * 4
    assert [got[i] for i in (8, 9, 10, 11)] == ["Breakout"] * 4
    assert [got[i] for i in (12, 13, 14)] == ["Momentum"] * 3
    assert "S15" not in m


def test_spec_merges_over_defaults() -> None:
    m = StrategyMap.from_spec(" S1=Momentum , X7=breakout,")
    assert m.family("S1") == "Momentum"
    assert m.family("X7") == "Breakout"  # canonical spelling from a lower-case spec
    assert m.family("S2") == "EmaCross"


def test_unknown_strategy_names_the_known_ids_in_natural_order() -> None:
    with pytest.raises(UnknownStrategy) as info:
        StrategyMap.from_spec("").family("ZZ9")
    message = str(info.value)
    assert "'ZZ9'" in message and "RLSIZER_STRATEGY_MAP" in message
    assert message.index("S2,") < message.index("S10,")
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("spec", ["S1", "S1=", "=Breakout", "S1=Scalping"])
def test_bad_spec_is_rejected_with_the_entry(spec: str) -> None:
    with pytest.raises(StrategyMapError, match="strategy map entry"):
        StrategyMap.from_spec(spec)


def test_families_order_is_the_one_hot_order() -> None:
    assert FAMILIES == ("EmaCross", "MeanReversion", "Breakout", "Momentum")
