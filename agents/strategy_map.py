"""Which family of strategy a bot's ``strategy_id`` belongs to.

Every bot names its strategies differently, so the default mapping (S1-S3
EmaCross, S4-S7 MeanReversion, S8-S11 Breakout, S12-S14 Momentum) can be
extended or overridden by a spec string such as ``"S1=EmaCross,X7=Breakout"``
(``Settings.strategy_map``), merged over the defaults.

``FAMILIES`` is fixed: its order is the order of the family one-hot features,
so changing it changes the feature set.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

FAMILIES: Final[tuple[str, ...]] = ("EmaCross", "MeanReversion", "Breakout", "Momentum")

DEFAULT_STRATEGY_MAP: Final[Mapping[str, str]] = MappingProxyType(
    {
        **{f"S{i}": "EmaCross" for i in range(1, 4)},
        **{f"S{i}": "MeanReversion" for i in range(4, 8)},
        **{f"S{i}": "Breakout" for i in range(8, 12)},
        **{f"S{i}": "Momentum" for i in range(12, 15)},
    }
)


class UnknownStrategy(ValueError):
    """A signal names a strategy id that the strategy map does not know."""


class StrategyMapError(ValueError):
    """A strategy map spec string cannot be parsed."""


def parse_spec(spec: str) -> dict[str, str]:
    """Parse ``"S1=EmaCross, X7=Breakout"`` into ``{"S1": "EmaCross", "X7": "Breakout"}``.

    Family names are matched case-insensitively and returned in their canonical
    spelling; an empty spec gives an empty mapping.
    """
    canonical = {f.lower(): f for f in FAMILIES}
    parsed: dict[str, str] = {}
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise StrategyMapError(
                f"strategy map entry {item!r} is not of the form STRATEGY_ID=FAMILY (e.g. 'S1=EmaCross,X7=Breakout')"
            )
        family = canonical.get(value.lower())
        if family is None:
            raise StrategyMapError(
                f"strategy map entry {item!r}: unknown family {value!r}; families are {', '.join(FAMILIES)}"
            )
        parsed[key] = family
    return parsed


@dataclass(frozen=True, slots=True)
class StrategyMap:
    """An immutable strategy id -> family mapping."""

    mapping: Mapping[str, str] = field(default_factory=lambda: DEFAULT_STRATEGY_MAP)

    def __post_init__(self) -> None:
        bad = {k: v for k, v in self.mapping.items() if v not in FAMILIES}
        if bad:
            raise StrategyMapError(f"unknown families {bad}; families are {', '.join(FAMILIES)}")
        object.__setattr__(self, "mapping", MappingProxyType(dict(self.mapping)))

    @classmethod
    def from_spec(cls, spec: str = "") -> StrategyMap:
        """The defaults with the entries of ``spec`` merged over them."""
        return cls({**DEFAULT_STRATEGY_MAP, **parse_spec(spec)})

    def family(self, strategy_id: str) -> str:
        try:
            return self.mapping[strategy_id]
        except KeyError:
            known = ", ".join(sorted(self.mapping, key=_natural_key))
            raise UnknownStrategy(
                f"unknown strategy id {strategy_id!r}; known ids: {known}. "
                f"Map it with RLSIZER_STRATEGY_MAP, e.g. '{strategy_id}=Breakout' "
                f"(families: {', '.join(FAMILIES)})"
            ) from None

    def __contains__(self, strategy_id: object) -> bool:
        return strategy_id in self.mapping


def _natural_key(strategy_id: str) -> tuple[str, int, str]:
    """Sort S2 before S10."""
    head = strategy_id.rstrip("0123456789")
    tail = strategy_id[len(head) :]
    return (head, int(tail) if tail else -1, strategy_id)
