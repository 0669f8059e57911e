"""The sizing agent: Gaussian policy over a pre-squash action, critic, and built-in normalisation.

The multiplier is a fixed squashing of the pre-squash action ``a``:

    multiplier = 0.25 + 1.75 * sigmoid(a)        in (0.25, 2.0); a = 0 gives 1.125

``init_multiplier`` sets the actor's output bias so that the untrained policy's mean action is
that multiplier (e.g. 1.0: start as the bot's own sizing rather than 12.5 % above it).

PPO works on ``a`` (an unbounded Gaussian, so log-probabilities need no Jacobian term: the
environment applies the squashing). Serving uses the policy mean ``mu(x)``, not a sample.
Feature normalisation (training-set mean/std, stored as buffers) and clipping of normalised
inputs to +-10 live inside the module, so the exported graph carries them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from schemas.events import MULTIPLIER_MAX, MULTIPLIER_MIN

NORMALISED_CLIP = 10.0
MIN_STD = 1e-6

Floats = npt.NDArray[np.floating[Any]]
Layers = list[tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]]  # (weight [in, out], bias [out]) per layer


def squash(action: torch.Tensor) -> torch.Tensor:
    """Pre-squash action -> multiplier in [0.25, 2.0]."""
    return MULTIPLIER_MIN + (MULTIPLIER_MAX - MULTIPLIER_MIN) * torch.sigmoid(action)


def unsquash(multiplier: float) -> float:
    """The pre-squash action whose multiplier is ``multiplier`` (inside (0.25, 2.0))."""
    p = (multiplier - MULTIPLIER_MIN) / (MULTIPLIER_MAX - MULTIPLIER_MIN)
    if not 0.0 < p < 1.0:
        raise ValueError(f"multiplier must be inside ({MULTIPLIER_MIN}, {MULTIPLIER_MAX}), got {multiplier}")
    return float(np.log(p / (1.0 - p)))


def _layer(n_in: int, n_out: int, std: float) -> nn.Linear:
    layer = nn.Linear(n_in, n_out)
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, 0.0)
    return layer


def _mlp(n_in: int, hidden: tuple[int, ...], out_std: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = n_in
    for h in hidden:
        layers += [_layer(width, h, float(np.sqrt(2))), nn.Tanh()]
        width = h
    layers.append(_layer(width, 1, out_std))
    return nn.Sequential(*layers)


class SizingAgent(nn.Module):
    """Actor-critic over raw feature vectors [batch, d] (normalisation included)."""

    feature_mean: torch.Tensor  # buffers (register_buffer): float32 [d]
    feature_std: torch.Tensor

    def __init__(
        self,
        feature_mean: np.ndarray,
        feature_std: np.ndarray,
        hidden: tuple[int, ...] = (64, 64),
        init_log_std: float = -0.5,
        init_multiplier: float | None = None,
    ) -> None:
        super().__init__()
        d = int(feature_mean.shape[0])
        if feature_std.shape != (d,):
            raise ValueError(f"feature_std must have shape ({d},), got {feature_std.shape}")
        self.register_buffer("feature_mean", torch.as_tensor(feature_mean, dtype=torch.float32).clone())
        safe_std = np.where(feature_std > MIN_STD, feature_std, 1.0)
        self.register_buffer("feature_std", torch.as_tensor(safe_std, dtype=torch.float32).clone())
        self.actor_mean = _mlp(d, hidden, out_std=0.01)
        if init_multiplier is not None:  # start as a fixed-size policy instead of squash(0) = 1.125
            out = self.actor_mean[-1]
            assert isinstance(out, nn.Linear)  # _mlp ends with its output layer
            nn.init.constant_(out.bias, unsquash(init_multiplier))
        self.actor_log_std = nn.Parameter(torch.full((1,), float(init_log_std)))
        self.critic = _mlp(d, hidden, out_std=1.0)

    @property
    def n_features(self) -> int:
        return int(self.feature_mean.shape[0])

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        z = (x - self.feature_mean) / self.feature_std
        return torch.clamp(z, -NORMALISED_CLIP, NORMALISED_CLIP)

    def value(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.critic(self.normalise(x))
        return out.squeeze(-1)

    def action_mean(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.actor_mean(self.normalise(x))
        return out.squeeze(-1)

    def mean_multiplier(self, x: torch.Tensor) -> torch.Tensor:
        """The deterministic serving output: squash(mu(x)), shape [batch]."""
        return squash(self.action_mean(x))

    def distribution(self, x: torch.Tensor) -> torch.distributions.Normal:
        mean = self.action_mean(x)
        return torch.distributions.Normal(mean, self.actor_log_std.exp().expand_as(mean))

    def multipliers(self, features: np.ndarray) -> np.ndarray:
        """Numpy convenience for evaluation/baselines: mean multipliers, float64 [batch]."""
        with torch.no_grad():
            out = self.mean_multiplier(torch.as_tensor(features, dtype=torch.float32))
        return out.numpy().astype(np.float64)


class RolloutPolicy:
    """A frozen numpy copy of an agent's actor mean, critic and action std, for the rollout's many small calls.

    The rollout asks the policy once per lockstep step for a handful of rows; through torch each
    call costs ~0.2 ms of dispatch, in numpy ~0.03 ms. Same arithmetic as ``SizingAgent`` in
    float32 (normalise, clip to +-10, tanh layers); results agree with torch to float32 rounding
    (``tests/unit/trainer/test_policy_net.py``), and the PPO update recomputes log-probabilities
    in torch anyway.
    """

    def __init__(self, agent: SizingAgent) -> None:
        def layers(seq: nn.Sequential) -> Layers:
            return [
                (m.weight.detach().numpy().T.copy(), m.bias.detach().numpy().copy())
                for m in seq
                if isinstance(m, nn.Linear)
            ]

        self.mean = agent.feature_mean.numpy().copy()
        self.std = agent.feature_std.numpy().copy()
        self.actor = layers(agent.actor_mean)
        self.critic = layers(agent.critic)
        self.log_std = float(agent.actor_log_std.detach().numpy()[0])

    @staticmethod
    def _mlp(z: Floats, layers: Layers) -> Floats:
        for w, b in layers[:-1]:
            z = np.tanh(z @ w + b)
        w, b = layers[-1]
        return (z @ w + b)[:, 0]

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(action mean, value) for raw feature rows [batch, d]."""
        z = np.clip((np.asarray(x, dtype=np.float32) - self.mean) / self.std, -NORMALISED_CLIP, NORMALISED_CLIP)
        return self._mlp(z, self.actor), self._mlp(z, self.critic)

    def log_prob(self, action: Floats, mean: Floats) -> Floats:
        sigma = float(np.exp(self.log_std))
        out: Floats = -np.square(action - mean) / (2.0 * sigma**2) - self.log_std - 0.5 * float(np.log(2.0 * np.pi))
        return out

    @property
    def action_std(self) -> float:
        return float(np.exp(self.log_std))


def squash_np(action: np.ndarray) -> np.ndarray:
    """``squash`` in numpy (float64)."""
    return MULTIPLIER_MIN + (MULTIPLIER_MAX - MULTIPLIER_MIN) / (1.0 + np.exp(-np.asarray(action, dtype=np.float64)))
