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

import numpy as np
import torch
from torch import nn

from schemas.events import MULTIPLIER_MAX, MULTIPLIER_MIN

NORMALISED_CLIP = 10.0
MIN_STD = 1e-6


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
            nn.init.constant_(self.actor_mean[-1].bias, unsquash(init_multiplier))
        self.actor_log_std = nn.Parameter(torch.full((1,), float(init_log_std)))
        self.critic = _mlp(d, hidden, out_std=1.0)

    @property
    def n_features(self) -> int:
        return int(self.feature_mean.shape[0])

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        z = (x - self.feature_mean) / self.feature_std
        return torch.clamp(z, -NORMALISED_CLIP, NORMALISED_CLIP)

    def value(self, x: torch.Tensor) -> torch.Tensor:
        return self.critic(self.normalise(x)).squeeze(-1)

    def action_mean(self, x: torch.Tensor) -> torch.Tensor:
        return self.actor_mean(self.normalise(x)).squeeze(-1)

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
