from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trainer.baselines import FixedPolicy, VolTargetPolicy
from trainer.environment import LoggedSignals, episode_returns, trade_rewards
from trainer.gate import GateConfig, promotion_decision, walk_forward_split
from trainer.synthetic import synthetic_signals

FAST = GateConfig(n_boot=300)


@dataclass(frozen=True)
class ByRule:
    """Hand-written challengers on the synthetic structure (expected R rises with q)."""

    kind: str
    name: str = "challenger"

    def multipliers(self, data: LoggedSignals) -> np.ndarray:
        q, risky = data.column("sig_q_score"), data.family == "Breakout"
        good = ~risky & (q > 0.5)
        return {
            "better": np.where(good, 2.0, 0.25),  # sizes up what pays, down the gap risk
            "worse": np.where(good, 0.25, 2.0),
            "double": np.full(len(data), 2.0),  # more return, worse tail
        }[self.kind]


@pytest.fixture(scope="module")
def windows() -> tuple[LoggedSignals, LoggedSignals]:
    return walk_forward_split(synthetic_signals(n_episodes=300, trades_per_episode=4, seed=11, q_slope=3.0))


def test_split_is_by_time_without_overlap() -> None:
    data = synthetic_signals(n_episodes=20, trades_per_episode=3, seed=0)
    train, hold = walk_forward_split(data, holdout_fraction=0.25)
    assert train.ts.max() < hold.ts.min()
    assert len(np.unique(hold.episode_id)) == 5 and len(np.unique(train.episode_id)) == 15
    assert set(train.episode_id).isdisjoint(hold.episode_id)


def test_split_drops_a_session_straddling_the_cutoff() -> None:
    data = synthetic_signals(n_episodes=8, trades_per_episode=2, seed=0)
    ts = data.ts.copy()
    ts[(data.episode_id == 5)] = ts[data.episode_id == 6][0] + np.array([-1, 1]).astype("timedelta64[us]")
    order = np.lexsort((ts, data.episode_id))
    shifted = LoggedSignals(
        features=data.features[order],
        feature_names=data.feature_names,
        r_multiple=data.r_multiple[order],
        cost_r=data.cost_r[order],
        episode_id=data.episode_id[order],
        family=data.family[order],
        ts=ts[order],
    )
    train, hold = walk_forward_split(shifted, holdout_fraction=0.25)  # holds out sessions 6, 7
    assert set(hold.episode_id) == {6, 7}
    assert 5 not in set(train.episode_id)  # ends after the cutoff: in neither window
    assert train.ts.max() < hold.ts.min()


def test_clearly_better_challenger_is_promoted(windows) -> None:
    train, hold = windows
    decision = promotion_decision(
        hold, ByRule("better"), [FixedPolicy(), VolTargetPolicy.fit(train)], champion=FixedPolicy(name="champion"), config=FAST
    )
    assert decision.promote, decision.reason
    assert set(decision.table) == {"challenger", "champion", "fixed_1x", "vol_target"}
    assert decision.table["challenger"].total_return > decision.table["champion"].total_return


def test_worse_challenger_is_not_promoted(windows) -> None:
    _, hold = windows
    decision = promotion_decision(hold, ByRule("worse"), [FixedPolicy()], champion=FixedPolicy(name="champion"), config=FAST)
    assert not decision.promote
    assert "vs champion" in decision.reason and "vs fixed_1x" in decision.reason


def test_more_return_with_a_worse_tail_is_not_promoted() -> None:
    _, hold = walk_forward_split(synthetic_signals(n_episodes=1200, trades_per_episode=4, seed=2))
    decision = promotion_decision(hold, ByRule("double"), [FixedPolicy()], config=FAST)
    (cmp,) = decision.comparisons
    assert cmp.return_diff_lower > 0  # it does earn more...
    assert not decision.promote and "CVaR5" in decision.reason  # ...but the tail rule blocks it


def test_a_copy_of_the_champion_is_not_promoted(windows) -> None:
    _, hold = windows
    decision = promotion_decision(hold, FixedPolicy(name="copy"), [], champion=FixedPolicy(name="champion"), config=FAST)
    assert not decision.promote


@dataclass(frozen=True)
class Dominated:
    """Champion sizes plus extra size on exactly the trades that lose: worse trade by trade."""

    extra: np.ndarray
    name: str = "challenger"

    def multipliers(self, data: LoggedSignals) -> np.ndarray:
        losing = trade_rewards(np.ones(len(data)), data.r_multiple, data.cost_r) < 0
        return np.clip(1.0 + np.where(losing, self.extra[: len(data)], 0.0), 0.25, 2.0)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 1000), boost=st.floats(0.0, 1.0))
def test_never_promotes_a_model_that_is_worse_on_every_trade(seed: int, boost: float) -> None:
    data = synthetic_signals(n_episodes=40, trades_per_episode=4, seed=seed)
    _, hold = walk_forward_split(data)
    extra = np.random.default_rng(seed).uniform(0.0, boost, size=len(hold))
    decision = promotion_decision(hold, Dominated(extra), [], champion=FixedPolicy(name="champion"), config=GateConfig(n_boot=100))
    assert not decision.promote


def test_gate_rejects_ambiguous_inputs(windows) -> None:
    _, hold = windows
    with pytest.raises(ValueError, match="unique"):
        promotion_decision(hold, FixedPolicy(), [FixedPolicy()])
    with pytest.raises(ValueError, match="reference"):
        promotion_decision(hold, FixedPolicy(), [])


@pytest.mark.parametrize("unit", ["session", "trade"])
def test_uniform_upsizing_is_refused_in_both_tail_units(unit: str) -> None:
    _, hold = walk_forward_split(synthetic_signals(n_episodes=1200, trades_per_episode=4, seed=2))
    decision = promotion_decision(hold, ByRule("double"), [FixedPolicy()], config=GateConfig(n_boot=300, tail_unit=unit))
    assert not decision.promote and f"{unit} CVaR5" in decision.reason


def test_session_tail_is_the_default_and_units_are_checked() -> None:
    assert GateConfig().tail_unit == "session"
    with pytest.raises(ValueError, match="tail_unit"):
        GateConfig(tail_unit="day")


def test_tail_margin_is_relative_to_the_reference_tail(windows) -> None:
    from trainer.metrics import cvar_5

    _, hold = windows
    decision = promotion_decision(hold, ByRule("better"), [FixedPolicy()], config=GateConfig(n_boot=200))
    (cmp,) = decision.comparisons
    fixed_sessions = episode_returns(hold, trade_rewards(np.ones(len(hold)), hold.r_multiple, hold.cost_r))
    assert cmp.cvar_margin == pytest.approx(max(0.05, 0.10 * abs(cvar_5(fixed_sessions))))
