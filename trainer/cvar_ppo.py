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

``TrainConfig(cvar_enabled=False)`` is the plain-PPO ablation: same trainer, no penalty, no dual.
The pure pieces (gae and ppo_clip_loss here; cvar, value_at_risk, ru_objective, dual_update and
cvar_penalty in ``trainer.risk``, re-exported here) are importable and unit-tested; ``train`` wires them like CleanRL's ppo_continuous_action.py.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from trainer.environment import LoggedSignals, SizingEnv, episode_returns, replay, trade_rewards
from trainer.policy_net import SizingAgent, squash
from trainer.risk import cvar, cvar_penalty, dual_update, ru_objective, value_at_risk


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

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {self.alpha}")
        if self.total_updates < 1 or self.epochs < 1 or self.minibatch < 1:
            raise ValueError("total_updates, epochs and minibatch must be >= 1")
        if not self.hidden or min(self.hidden) < 1:
            raise ValueError(f"hidden must be non-empty positive widths, got {self.hidden}")
        if self.lr_lambda < 0 or self.lambda_init < 0:
            raise ValueError("lr_lambda and lambda_init must be >= 0")


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
    if config.cvar_enabled:
        beta = "fixed" if config.beta is None else f"{config.beta:g}"
        return f"cvarppo_a{config.alpha:g}_b{beta}_s{config.seed}_{data_fingerprint}"
    return f"ppo_s{config.seed}_{data_fingerprint}"


def fixed_size_cvar(data: LoggedSignals, alpha: float) -> float:
    """CVaR_alpha of the episode returns when every signal is traded at multiplier 1."""
    ones = np.ones(len(data))
    return cvar(episode_returns(data, trade_rewards(ones, data.r_multiple, data.cost_r)), alpha)


def feature_stats(data: LoggedSignals) -> tuple[np.ndarray, np.ndarray]:
    """Training-set mean/std, with account columns as a fixed-1x policy would see them."""
    obs = replay(data, lambda x: np.ones(x.shape[0])).observations.astype(np.float64)
    return obs.mean(axis=0), obs.std(axis=0)


# ---------------------------------------------------------------- training loop


@dataclass(frozen=True, slots=True, eq=False)
class _Rollout:
    """One pass of the sampling policy over every episode, time-major [T, E] (padded)."""

    obs: np.ndarray  # [T, E, d]
    actions: np.ndarray  # [T, E] pre-squash
    logprobs: np.ndarray
    values: np.ndarray
    rewards: np.ndarray  # true rewards, 0 where padded
    multipliers: np.ndarray
    valid: np.ndarray  # bool [T, E]
    lengths: np.ndarray  # [E]


def _rollout(env: SizingEnv, agent: SizingAgent, gen: torch.Generator) -> _Rollout:
    layout, d = env.layout, env.data.features.shape[1]
    shape = (layout.max_len, layout.n_episodes)
    obs = np.zeros((*shape, d), dtype=np.float32)
    actions, logprobs, values, rewards, mults = (np.zeros(shape) for _ in range(5))
    valid = np.zeros(shape, dtype=bool)
    env.reset()
    for k in range(layout.max_len):
        n_k = int(layout.active_at[k])
        x_np = env.observe(k)
        with torch.no_grad():
            x = torch.as_tensor(x_np)
            dist = agent.distribution(x)
            action = dist.mean + dist.stddev * torch.randn(n_k, generator=gen)
            logprob = dist.log_prob(action)
            value = agent.value(x)
        m = squash(action).numpy().astype(np.float64)
        rewards[k, :n_k] = env.step(k, m)
        obs[k, :n_k] = x_np
        actions[k, :n_k], logprobs[k, :n_k], values[k, :n_k] = action.numpy(), logprob.numpy(), value.numpy()
        mults[k, :n_k] = m
        valid[k, :n_k] = True
    return _Rollout(obs, actions, logprobs, values, rewards, mults, valid, layout.lengths)


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
    from tqdm import tqdm

    name = run_name(config, data.fingerprint())
    with _Deterministic():
        torch.manual_seed(config.seed)
        rng = np.random.default_rng(config.seed)
        gen = torch.Generator().manual_seed(config.seed)

        mean, std = feature_stats(data)
        agent = SizingAgent(mean, std, hidden=config.hidden, init_log_std=config.init_log_std)
        optimizer = torch.optim.Adam(agent.parameters(), lr=config.lr, eps=1e-5)
        env = SizingEnv(data)
        beta = config.beta if config.beta is not None else fixed_size_cvar(data, config.alpha)
        lam = config.lambda_init
        history: list[dict[str, float]] = []
        started = time.perf_counter()

        bar = tqdm(range(1, config.total_updates + 1), desc=name, disable=not progress, leave=False)
        for update in bar:
            if config.anneal_lr:
                optimizer.param_groups[0]["lr"] = config.lr * (1.0 - (update - 1.0) / config.total_updates)

            # rollout: every training session once, with the sampling policy
            ro = _rollout(env, agent, gen)
            last = ro.lengths - 1
            episode_return = ro.rewards.sum(axis=0)
            cvar_est = cvar(episode_return, config.alpha)
            nu = value_at_risk(episode_return, config.alpha)  # argmax of the RU objective

            # penalty-shifted terminal reward, then GAE on the shaped rewards
            shaped = ro.rewards.copy()
            if config.cvar_enabled:
                shaped[last, np.arange(last.size)] += cvar_penalty(episode_return, nu, lam, config.alpha)
            dones = ~ro.valid
            dones[last, np.arange(last.size)] = True
            advantages, returns = gae(shaped, ro.values, dones, config.gamma, config.gae_lambda)

            b_obs = torch.as_tensor(ro.obs[ro.valid])
            b_actions = torch.as_tensor(ro.actions[ro.valid], dtype=torch.float32)
            b_logprobs = torch.as_tensor(ro.logprobs[ro.valid], dtype=torch.float32)
            b_adv = torch.as_tensor(advantages[ro.valid], dtype=torch.float32)
            b_returns = torch.as_tensor(returns[ro.valid], dtype=torch.float32)
            n = b_obs.shape[0]

            # PPO update
            clipfracs: list[float] = []
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

            # dual ascent on the constraint, with the CVaR of the true (unshaped) returns
            if config.cvar_enabled:
                lam = dual_update(lam, cvar_est, beta, config.lr_lambda, config.lambda_max)

            row = {
                "update": float(update),
                "losses/policy": float(pg_loss.detach()),
                "losses/value": float(v_loss.detach()),
                "losses/entropy": float(entropy.detach()),
                "losses/approx_kl": float(approx_kl),
                "losses/clipfrac": float(np.mean(clipfracs)),
                "charts/mean_return": float(episode_return.mean()),
                "charts/cvar": cvar_est,
                "charts/var_nu": nu,
                "charts/lambda": lam,
                "charts/beta": beta,
                "charts/mean_multiplier": float(ro.multipliers[ro.valid].mean()),
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
    "ppo_clip_loss",
    "ru_objective",
    "run_name",
    "train",
    "value_at_risk",
]
