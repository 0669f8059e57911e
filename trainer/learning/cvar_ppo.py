"""CVaR-constrained PPO for position sizing, readable top to bottom.

Problem (G: the return of one episode = one trading session, in R):

    maximise_theta  E[G]    subject to   CVaR_alpha(G) >= beta

CVaR_alpha(G) is the mean of the worst alpha fraction of episode returns. Rockafellar-Uryasev:

    CVaR_alpha(G) = max_nu  nu - E[(nu - G)^+] / alpha            (maximiser: nu = VaR_alpha)

Lagrangian (Chow & Ghavamzadeh 2014, "Algorithms for CVaR Optimization in MDPs", eq. for the
CVaR-constrained problem; also Ying et al. 2022, CPPO), with lambda >= 0:

    L(theta, nu, lambda) = E[G] + lambda * (nu - E[(nu - G)^+] / alpha - beta)

- nu: maximised in closed form each update, nu = empirical VaR_alpha of the batch returns;
- theta: grad_theta L = E[ grad log pi(tau) * (G - (lambda / alpha) * (nu - G)^+) ], i.e. plain
  policy gradient on a shaped reward where the *terminal* reward of each episode is

      r_T' = r_T - (lambda / alpha) * (nu - G)^+                      (penalty-shifted reward)

  then GAE(gamma, lambda_gae) and the PPO clipped surrogate as usual;
- lambda: dual ascent on the constraint violation, lambda <- max(0, lambda + lr_lambda (beta - CVaR)).

Optional tightenings for a tail that must hold out of sample (``docs/evaluation.md`` for what
they did, measured walk-forward): ``beta_margin`` asks for a better tail than beta;
``tail_confidence`` makes the dual step read a lower confidence bound of the CVaR (sessions
resampled) instead of its estimate; ``size_cap`` adds a second constraint, E[m] <= cap, with its
own multiplier mu and a per-trade reward shift -mu (m - cap).

Episodes are sessions (UTC days); the environment replays the account as live keeps it, per
symbol and across sessions (``trainer.learning.environment``), in lock-step over independent lanes.

``plain_ppo(config)`` is the ablation: same trainer, no penalty, no dual, no size cap.
The pure pieces (gae and ppo_clip_loss here; cvar, value_at_risk, ru_objective, dual_update and
cvar_penalty in ``trainer.learning.risk``, re-exported here) are importable and unit-tested; ``train`` wires them like CleanRL's ppo_continuous_action.py.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from agents.sizing import PolicySlot
from schemas.events import MULTIPLIER_MAX, MULTIPLIER_MIN
from trainer.learning.environment import (
    LoggedSignals,
    SizingEnv,
    episode_layout,
    episode_returns,
    replay,
    trade_rewards,
)
from trainer.learning.policy_net import RolloutPolicy, SizingAgent, squash_np
from trainer.learning.risk import cvar, cvar_penalty, dual_update, ru_objective, value_at_risk
from trainer.learning.served import decided_by, warmup_rows


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainConfig:
    seed: int = 1
    """seed of numpy, torch init, action sampling and minibatch shuffling"""
    total_updates: int = 100
    """number of rollout + optimisation iterations (one rollout = every training episode once)"""
    lr: float = 3e-4
    """Adam learning rate, linearly annealed to 0 when anneal_lr"""
    anneal_lr: bool = True
    """anneal the learning rate over the updates"""
    clip: float = 0.2
    """PPO surrogate clipping epsilon"""
    gamma: float = 0.99
    """discount factor within a session"""
    gae_lambda: float = 0.95
    """GAE lambda"""
    epochs: int = 4
    """optimisation epochs per rollout"""
    minibatch: int = 256
    """minibatch size in trades"""
    hidden: tuple[int, ...] = (64, 64)
    """hidden widths of the actor and critic MLPs (tanh)"""
    init_log_std: float = -0.5
    """initial log std of the pre-squash Gaussian"""
    init_multiplier: float | None = 1.0
    """the untrained policy's multiplier (None: squash(0) = 1.125). 1.0: start as the bot's own sizing, so what the
    policy learns moves size away from 1x rather than from 12.5 % above it (walk-forward study: docs/evaluation.md)"""
    ent_coef: float = 0.001
    """entropy bonus coefficient"""
    vf_coef: float = 0.5
    """value loss coefficient"""
    max_grad_norm: float = 0.5
    """gradient norm clip"""
    cvar_enabled: bool = True
    """False gives the plain-PPO ablation"""
    alpha: float = 0.05
    """CVaR tail level (worst alpha fraction of episode returns)"""
    beta: float | None = None
    """constraint: CVaR_alpha of the episode return must be >= beta (in R). None: the CVaR that
    trading every signal at 1x achieves on the training data ("no worse tail than the bot's own
    sizing"), which is always reachable; a fixed beta below what the data allows only drives
    lambda to its cap and the shaped rewards out of the value function's range."""
    lr_lambda: float = 0.05
    """dual ascent step for the Lagrange multiplier"""
    lambda_init: float = 0.0
    """initial Lagrange multiplier"""
    lambda_max: float = 100.0
    """cap on the Lagrange multiplier (keeps the shaped reward bounded)"""
    beta_margin: float = 0.0
    """safety margin on beta: ask for a session tail this fraction better than beta (beta + margin * |beta|),
    for the part of the training tail that does not hold out of sample"""
    tail_confidence: float | None = 0.9
    """None: the dual step reads the batch's CVaR. Else a pessimistic one: the (1 - confidence) quantile of
    the CVaR over sessions resampled with replacement (a confidence bound of the tail inside the constraint).
    0.9 held the session tail out of sample in 10 of 12 walk-forward windows (docs/evaluation.md)"""
    size_cap: float | None = None
    """None: no size constraint. Else a second constraint, mean multiplier <= size_cap, with its own
    Lagrange multiplier: every trade's reward is shifted by -mu * (m - size_cap), so size can be moved to the
    trades that deserve it but the average cannot grow (a larger average size is how a tail gets worse)"""
    lr_size: float = 0.5
    """dual ascent step for the size constraint's multiplier"""

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {self.alpha}")
        if self.total_updates < 1 or self.epochs < 1 or self.minibatch < 1:
            raise ValueError("total_updates, epochs and minibatch must be >= 1")
        if not self.hidden or min(self.hidden) < 1:
            raise ValueError(f"hidden must be non-empty positive widths, got {self.hidden}")
        if self.lr_lambda < 0 or self.lambda_init < 0 or self.lr_size < 0:
            raise ValueError("lr_lambda, lambda_init and lr_size must be >= 0")
        if self.tail_confidence is not None and not 0.5 <= self.tail_confidence < 1.0:
            raise ValueError(f"tail_confidence must be in [0.5, 1), got {self.tail_confidence}")
        if self.size_cap is not None and not MULTIPLIER_MIN <= self.size_cap <= MULTIPLIER_MAX:
            raise ValueError(f"size_cap must be in [{MULTIPLIER_MIN}, {MULTIPLIER_MAX}], got {self.size_cap}")


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class TrainResult:
    model: SizingAgent
    history: tuple[dict[str, float], ...]
    """one dict per update: update, losses/*, charts/*"""
    run_name: str
    feature_names: tuple[str, ...]
    feature_mean: np.ndarray
    feature_std: np.ndarray
    config: TrainConfig


# ---------------------------------------------------------------- pure pieces


def gae(
    rewards: np.ndarray, values: np.ndarray, dones: np.ndarray, gamma: float, lam: float
) -> tuple[np.ndarray, np.ndarray]:
    """Generalised advantage estimation over time-major arrays [T] or [T, B].

    ``dones[t] = 1`` when step t is the last of its episode: no bootstrap from t+1. After the
    final step there is nothing to bootstrap from either (our episodes always end).
    Returns (advantages, returns = advantages + values).
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    nonterminal = 1.0 - np.asarray(dones, dtype=np.float64)
    advantages = np.zeros_like(rewards)
    last = np.zeros_like(rewards[0])
    for t in reversed(range(rewards.shape[0])):
        next_value = values[t + 1] if t + 1 < rewards.shape[0] else np.zeros_like(values[t])
        delta = rewards[t] + gamma * next_value * nonterminal[t] - values[t]
        last = delta + gamma * lam * nonterminal[t] * last
        advantages[t] = last
    return advantages, advantages + values


def ppo_clip_loss(ratio: torch.Tensor, advantages: torch.Tensor, clip: float) -> torch.Tensor:
    """PPO clipped surrogate, as a loss to minimise: mean(max(-A r, -A clip(r, 1-e, 1+e)))."""
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip, 1.0 + clip)
    return torch.max(unclipped, clipped).mean()


def run_name(config: TrainConfig, data_fingerprint: str) -> str:
    """Name from settings + seed + data hash (no clock, so a rerun has the same name)."""
    cap = ("" if config.size_cap is None else f"_cap{config.size_cap:g}") + (
        "" if config.init_multiplier is None else f"_i{config.init_multiplier:g}"
    )
    if config.cvar_enabled:
        beta = "fixed" if config.beta is None else f"{config.beta:g}"
        margin = f"m{config.beta_margin:g}" if config.beta_margin else ""
        lcb = "" if config.tail_confidence is None else f"_lcb{config.tail_confidence:g}"
        return f"cvarppo_a{config.alpha:g}_b{beta}{margin}{lcb}{cap}_s{config.seed}_{data_fingerprint}"
    return f"ppo{cap}_s{config.seed}_{data_fingerprint}"


def plain_ppo(config: TrainConfig) -> TrainConfig:
    """The ablation of ``config``: the same trainer without the CVaR constraint (nor the size cap)."""
    return replace(config, cvar_enabled=False, beta_margin=0.0, tail_confidence=None, size_cap=None)


def lower_cvar(
    episode_return: np.ndarray, alpha: float, confidence: float, rng: np.random.Generator, n_boot: int = 200
) -> float:
    """The (1 - confidence) quantile of CVaR_alpha over bootstrap resamples of the sessions."""
    idx = rng.integers(0, episode_return.size, size=(n_boot, episode_return.size))
    return float(np.quantile([cvar(episode_return[i], alpha) for i in idx], 1.0 - confidence))


def fixed_size_cvar(data: LoggedSignals, alpha: float) -> float:
    """CVaR_alpha of the episode returns when every signal is traded at multiplier 1."""
    ones = np.ones(len(data))
    return cvar(episode_returns(data, trade_rewards(ones, data.r_multiple, data.cost_r)), alpha)


def feature_stats(data: LoggedSignals) -> tuple[np.ndarray, np.ndarray]:
    """Training-set mean/std, with account columns as a fixed-1x policy would see them."""
    obs = replay(data, lambda x, _rows: np.ones(x.shape[0])).observations
    return obs.mean(axis=0), obs.std(axis=0)


# ---------------------------------------------------------------- training loop


@dataclass(frozen=True, slots=True, eq=False)
class _Rollout:
    """One pass of the sampling policy over every training signal, in the data's row order."""

    obs: np.ndarray  # [n, d] float32
    actions: np.ndarray  # [n] pre-squash
    logprobs: np.ndarray
    values: np.ndarray
    rewards: np.ndarray  # true rewards, 0 where a signal has no outcome
    multipliers: np.ndarray
    learnable: np.ndarray  # bool [n]: sized by the agent (not the worker's warm-up fallback)


def _rollout(env: SizingEnv, agent: SizingAgent, rng: np.random.Generator) -> _Rollout:
    """The environment's lanes in lock-step: one batched policy call per step (``trainer.learning.environment``),
    through a numpy copy of the agent (``RolloutPolicy``: the calls are many and small)."""
    data = env.data
    n, d = len(data), data.features.shape[1]
    obs = np.zeros((n, d), dtype=np.float32)
    actions, logprobs, values, rewards, mults = (np.zeros(n) for _ in range(5))
    learnable = np.zeros(n, dtype=bool)
    fallback = decided_by(data, PolicySlot())
    policy = RolloutPolicy(agent)
    env.reset()
    while not env.done:
        rows, x_np = env.observe()
        mean, value = policy(x_np)
        action = (mean + policy.action_std * rng.standard_normal(rows.size)).astype(np.float32)
        logprob = policy.log_prob(action, mean)
        m = squash_np(action)
        forced = warmup_rows(data, x_np)
        if forced.any():  # the worker never asks a model before WARMUP_BARS bars: its fallback sizes these
            m[forced] = fallback(x_np[forced], rows[forced])
        rewards[rows] = env.step(m)
        obs[rows] = x_np
        actions[rows], logprobs[rows], values[rows] = action, logprob, value
        mults[rows], learnable[rows] = m, ~forced
    return _Rollout(obs, actions, logprobs, values, rewards, mults, learnable)


class _Deterministic:
    """Single-threaded, deterministic torch inside ``train``; restores the caller's settings."""

    def __enter__(self) -> None:
        self._threads = torch.get_num_threads()
        self._det = torch.are_deterministic_algorithms_enabled()
        torch.set_num_threads(1)
        torch.use_deterministic_algorithms(True)

    def __exit__(self, *exc: object) -> None:
        torch.set_num_threads(self._threads)
        torch.use_deterministic_algorithms(self._det)


def train(data: LoggedSignals, config: TrainConfig, progress: bool = False) -> TrainResult:
    """Train a sizing policy on logged signals; same data + config give bit-identical weights."""
    from tqdm import tqdm  # lazy: loads tqdm only when used

    name = run_name(config, data.fingerprint())
    with _Deterministic():
        torch.manual_seed(config.seed)
        rng = np.random.default_rng(config.seed)
        action_rng = np.random.default_rng([config.seed, 2])

        mean, std = feature_stats(data)
        agent = SizingAgent(
            mean, std, hidden=config.hidden, init_log_std=config.init_log_std, init_multiplier=config.init_multiplier
        )
        optimizer = torch.optim.Adam(agent.parameters(), lr=config.lr, eps=1e-5)
        env = SizingEnv(data)
        layout = episode_layout(data)
        beta = config.beta if config.beta is not None else fixed_size_cvar(data, config.alpha)
        beta += config.beta_margin * abs(beta)
        lam = config.lambda_init
        mu = 0.0  # the size constraint's multiplier
        boot_rng = np.random.default_rng(config.seed + 1)
        history: list[dict[str, float]] = []
        started = time.perf_counter()

        bar = tqdm(range(1, config.total_updates + 1), desc=name, disable=not progress, leave=False)
        for update in bar:
            if config.anneal_lr:
                optimizer.param_groups[0]["lr"] = config.lr * (1.0 - (update - 1.0) / config.total_updates)

            # rollout: every training signal once, with the sampling policy; then sessions, time-major
            ro = _rollout(env, agent, action_rng)
            idx = layout.index.T  # [T, E] rows, -1 where a session has ended
            valid = idx >= 0
            at = np.where(valid, idx, 0)
            rewards_tm, values_tm = np.where(valid, ro.rewards[at], 0.0), np.where(valid, ro.values[at], 0.0)
            last = layout.lengths - 1
            episode_return = rewards_tm.sum(axis=0)
            cvar_est = cvar(episode_return, config.alpha)
            nu = value_at_risk(episode_return, config.alpha)  # argmax of the RU objective

            # penalty-shifted terminal reward, then GAE on the shaped rewards
            chosen = valid & ro.learnable[at]  # the agent's own actions (not the warm-up fallback's)
            shaped = rewards_tm.copy()
            if config.cvar_enabled:
                shaped[last, np.arange(last.size)] += cvar_penalty(episode_return, nu, lam, config.alpha)
            if config.size_cap is not None:
                shaped[chosen] -= mu * (ro.multipliers[idx[chosen]] - config.size_cap)
            dones = ~valid
            dones[last, np.arange(last.size)] = True
            advantages, returns = gae(shaped, values_tm, dones, config.gamma, config.gae_lambda)

            rows = idx[chosen]
            b_obs = torch.as_tensor(ro.obs[rows])
            b_actions = torch.as_tensor(ro.actions[rows], dtype=torch.float32)
            b_logprobs = torch.as_tensor(ro.logprobs[rows], dtype=torch.float32)
            b_adv = torch.as_tensor(advantages[chosen], dtype=torch.float32)
            b_returns = torch.as_tensor(returns[chosen], dtype=torch.float32)
            n = b_obs.shape[0]

            # PPO update
            clipfracs: list[float] = []
            pg_loss = v_loss = entropy = approx_kl = torch.tensor(float("nan"))
            for _epoch in range(config.epochs):
                order = rng.permutation(n)
                for start in range(0, n, config.minibatch):
                    mb = torch.as_tensor(order[start : start + config.minibatch])
                    dist = agent.distribution(b_obs[mb])
                    logratio = dist.log_prob(b_actions[mb]) - b_logprobs[mb]
                    ratio = logratio.exp()
                    with torch.no_grad():
                        approx_kl = ((ratio - 1.0) - logratio).mean()
                        clipfracs.append(float(((ratio - 1.0).abs() > config.clip).float().mean()))
                    mb_adv = b_adv[mb]
                    if mb_adv.numel() > 1:
                        mb_adv = (mb_adv - mb_adv.mean()) / (mb_adv.std() + 1e-8)
                    pg_loss = ppo_clip_loss(ratio, mb_adv, config.clip)
                    v_loss = 0.5 * ((agent.value(b_obs[mb]) - b_returns[mb]) ** 2).mean()
                    entropy = dist.entropy().mean()
                    loss = pg_loss - config.ent_coef * entropy + config.vf_coef * v_loss

                    optimizer.zero_grad()
                    loss.backward()
                    nn.utils.clip_grad_norm_(agent.parameters(), config.max_grad_norm)
                    optimizer.step()

            # dual ascent on the constraints, with the CVaR of the true (unshaped) returns
            tail = cvar_est
            if config.cvar_enabled:
                if config.tail_confidence is not None:
                    tail = lower_cvar(episode_return, config.alpha, config.tail_confidence, boot_rng)
                lam = dual_update(lam, tail, beta, config.lr_lambda, config.lambda_max)
            mean_m = float(ro.multipliers[ro.learnable].mean()) if ro.learnable.any() else 1.0
            if config.size_cap is not None:
                mu = max(0.0, mu + config.lr_size * (mean_m - config.size_cap))

            row = {
                "update": float(update),
                "losses/policy": float(pg_loss.detach()),
                "losses/value": float(v_loss.detach()),
                "losses/entropy": float(entropy.detach()),
                "losses/approx_kl": float(approx_kl),
                "losses/clipfrac": float(np.mean(clipfracs)) if clipfracs else float("nan"),
                "charts/mean_return": float(episode_return.mean()),
                "charts/cvar": cvar_est,
                "charts/var_nu": nu,
                "charts/lambda": lam,
                "charts/beta": beta,
                "charts/mean_multiplier": float(ro.multipliers.mean()),
                "charts/cvar_dual": tail,
                "charts/size_mu": mu,
                "charts/learning_rate": float(optimizer.param_groups[0]["lr"]),
                "charts/elapsed_s": time.perf_counter() - started,
            }
            history.append(row)
            bar.set_postfix(ret=f"{row['charts/mean_return']:.2f}", cvar=f"{cvar_est:.2f}", lam=f"{lam:.2f}")

    agent.eval()
    return TrainResult(
        model=agent,
        history=tuple(history),
        run_name=name,
        feature_names=data.feature_names,
        feature_mean=mean,
        feature_std=std,
        config=config,
    )


__all__ = [
    "TrainConfig",
    "TrainResult",
    "cvar",
    "cvar_penalty",
    "dual_update",
    "feature_stats",
    "gae",
    "lower_cvar",
    "plain_ppo",
    "ppo_clip_loss",
    "ru_objective",
    "run_name",
    "train",
    "value_at_risk",
]
