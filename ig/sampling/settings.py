"""Sampling settings, defined once: the campaign config, ``ig sample``'s flags and the samplers all
read them from here. No torch, so that a workflow config is checked on a login node.

- :class:`SamplerSettings`: how one sample is integrated (method, steps, …, precision); together
  with the checkpoint, the guidance, the seed and the label mode it decides what sample *i* is.
- :class:`SamplingSettings`: a campaign's ``sampling:`` section: the sampler, plus how many samples,
  in shards of what size, in batches of what size, from which seed.

Defaults are the SiT release's: SDE Euler–Maruyama, 250 steps, last step from t = 0.04, 50K
samples.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ig.errors import IGError

METHODS = ("sde", "euler", "heun")
PRECISIONS = ("fp32", "bf16")
LABEL_MODES = ("random", "balanced")


def _choice(key: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise IGError(f"sampling {key} must be one of {list(choices)}, got {value!r}")


def linspace(start: float, stop: float, count: int) -> list[float]:
    """``torch.linspace(start, stop, count, dtype=float64)`` in plain Python, value for value
    (each half is stepped from its own end, as torch does)."""
    if count == 1:
        return [start]
    step = (stop - start) / (count - 1)
    half = count // 2
    return [start + i * step if i < half else stop - (count - 1 - i) * step for i in range(count)]


@dataclass(frozen=True)
class SamplerSettings:
    """How each sample is integrated from noise (t = 1) to data (t = 0).

    - ``sde``: Euler–Maruyama as the official IG SiT code: ``steps - 1`` stochastic steps on
      ``linspace(1, t_last, steps)``, then one deterministic step from ``t_last`` to 0.
    - ``euler`` / ``heun``: the probability-flow ODE on ``steps`` intervals of LightningDiT's
      shifted grid (``shift`` 1 = uniform; Heun: 2 evaluations per step, torchdiffeq's ``heun2``).
    - ``precision``: the network's arithmetic (``bf16``: autocast); the state stays float64.
    """

    method: str = "sde"
    steps: int = 250
    t_last: float = 0.04
    shift: float = 1.0
    precision: str = "fp32"

    def __post_init__(self) -> None:
        _choice("method", self.method, METHODS)
        _choice("precision", self.precision, PRECISIONS)
        minimum = 2 if self.method == "sde" else 1
        if not isinstance(self.steps, int) or self.steps < minimum:
            raise IGError(f"sampling steps must be an integer >= {minimum} for {self.method}, got {self.steps!r}")
        if not 0.0 < self.t_last < 1.0:
            raise IGError(
                f"sampling t_last (SDE: time of the final deterministic step) must lie in (0, 1), got {self.t_last}"
            )
        if self.shift <= 0:
            raise IGError(f"sampling shift (ODE time shift) must be > 0, got {self.shift}")

    def grid(self) -> list[float]:
        """The integration grid, from 1 down to exactly 0."""
        if self.method == "sde":
            return linspace(1.0, self.t_last, self.steps) + [0.0]
        s = linspace(0.0, 1.0, self.steps + 1)
        # LightningDiT counts s from 0 (noise) and warps it to shift·s / (1 + (shift − 1)·s)
        return [1.0 - self.shift * v / (1.0 + (self.shift - 1.0) * v) for v in s[:-1]] + [0.0]

    def evaluation_times(self) -> list[float]:
        """The times at which the network is evaluated, in order (one per network call)."""
        grid = self.grid()
        if self.method == "heun":
            return [t for a, b in zip(grid[:-1], grid[1:], strict=True) for t in (a, b)]
        return grid[:-1]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class SamplingSettings:
    """A campaign's ``sampling:`` section (flat in the config): the sampler and the sample set's size."""

    sampler: SamplerSettings = field(default_factory=SamplerSettings)
    num_samples: int = 50_000
    shard_size: int = 1000
    batch_size: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        for key in ("num_samples", "shard_size", "batch_size"):
            value = getattr(self, key)
            if not isinstance(value, int) or value < 1:
                raise IGError(f"sampling {key} must be a positive integer, got {value!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise IGError(f"sampling seed must be a non-negative integer, got {self.seed!r}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SamplingSettings:
        """From a flat mapping (the config section, defaults for absent keys); unknown keys are errors."""
        sampler_keys = {f.name for f in dataclasses.fields(SamplerSettings)}
        own_keys = {f.name for f in dataclasses.fields(cls)} - {"sampler"}
        unknown = sorted(set(d) - sampler_keys - own_keys)
        if unknown:
            raise IGError(f"unknown sampling key(s) {unknown}; valid keys: {sorted(sampler_keys | own_keys)}")
        sampler = SamplerSettings(**{k: v for k, v in d.items() if k in sampler_keys})
        return cls(sampler=sampler, **{k: v for k, v in d.items() if k in own_keys})

    def to_dict(self) -> dict[str, Any]:
        """Flat, as in the config."""
        own = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "sampler"}
        return {**self.sampler.to_dict(), **own}


HELP = {
    "method": "sde (Euler–Maruyama), euler or heun (probability-flow ODE)",
    "steps": "network evaluations (sde, euler) or steps (heun: 2 evaluations each)",
    "t_last": "SDE: time of the final deterministic step",
    "shift": "ODE: LightningDiT's time shift (0.3 in its release; 1 = uniform grid)",
    "precision": "network arithmetic: fp32, or bf16 autocast",
    "num_samples": "samples in the set",
    "shard_size": "samples per shard file",
    "batch_size": "samples per network batch",
    "seed": "sampling seed: sample i's noise and label depend only on it, i and the label mode",
}


def add_sampling_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per field of :class:`SamplingSettings`, with its default (``--num-samples`` …)."""
    group = parser.add_argument_group("sampling settings (defaults: the SiT release's)")
    defaults = SamplingSettings().to_dict()
    choices = {"method": METHODS, "precision": PRECISIONS}
    for key, default in defaults.items():
        group.add_argument(
            f"--{key.replace('_', '-')}",
            type=type(default),
            default=default,
            choices=choices.get(key),
            help=f"{HELP[key]} (default {default})",
        )


def sampling_from_args(args: argparse.Namespace) -> SamplingSettings:
    return SamplingSettings.from_dict({key: getattr(args, key) for key in SamplingSettings().to_dict()})
