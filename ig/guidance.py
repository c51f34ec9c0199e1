"""Guidance: IG, CFG, autoguidance, and combinations, from one forward pass per branch.

Per branch ``b`` (conditional, and unconditional when CFG is on) the guided velocity is
``v_b = v_weak + w (v_b^final - v_weak)``, where the weak prediction is

- IG: the model's own intermediate head, from the same forward pass (no extra network call);
- autoguidance (AG): a separate, weaker network.

Then CFG combines the branches: ``v = v_u + s (v_c - v_u)``. Each guidance is active only for
``t`` inside its half-open interval ``(low, high]``; outside, IG/AG fall back to ``v_final`` and
CFG to the conditional branch alone (and the unconditional branch is not evaluated at all).

The module imports no torch (it works on whatever tensors the model returns), so that a workflow
config's guidance settings are checked on a login node without it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ig.errors import IGError

if TYPE_CHECKING:
    import torch

Interval = tuple[float, float]


def in_interval(t: float, interval: Interval) -> bool:
    """``low < t <= high`` (a ``low < 0`` includes ``t = 0``)."""
    low, high = interval
    return low < t <= high


@dataclass(frozen=True)
class Guidance:
    """One guidance setting. Scales of 1 switch a guidance off."""

    ig_scale: float = 1.0
    ig_interval: Interval = (0.0, 1.0)
    cfg_scale: float = 1.0
    cfg_interval: Interval = (0.0, 1.0)
    ag_scale: float = 1.0
    ag_interval: Interval = (0.0, 1.0)

    def __post_init__(self) -> None:
        for name in ("ig_interval", "cfg_interval", "ag_interval"):
            low, high = getattr(self, name)
            if not low < high:
                raise IGError(f"guidance {name} must be (low, high] with low < high, got ({low}, {high}]")
        if self.ig_scale != 1.0 and self.ag_scale != 1.0:
            raise IGError(
                "IG and autoguidance both extrapolate from a weak prediction; set one of ig_scale, ag_scale to 1"
            )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Guidance:
        """Build from a config mapping; unknown keys are an error that names them."""
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - fields)
        if unknown:
            raise IGError(f"unknown guidance key(s) {unknown}; valid keys: {sorted(fields)}")
        d = {k: tuple(v) if k.endswith("_interval") else float(v) for k, v in d.items()}
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


class GuidedVelocity:
    """The guided velocity field ``(x, t, y) -> v`` that samplers integrate.

    Counters: ``nfe`` = velocity evaluations the sampler asked for; ``forward_passes`` = calls
    of any network; ``rows`` = batch rows pushed through networks (a CFG step pushes 2B rows in
    one pass).
    """

    def __init__(
        self, model: torch.nn.Module, guidance: Guidance = Guidance(), weak_model: torch.nn.Module | None = None
    ) -> None:
        if guidance.ag_scale != 1.0 and weak_model is None:
            raise IGError("autoguidance (ag_scale != 1) needs a weak model checkpoint")
        if guidance.ig_scale != 1.0 and getattr(model, "ig_layer", 1) == 0:
            raise IGError("IG (ig_scale != 1) needs a model with an intermediate head (ig_layer > 0)")
        self.model = model
        self.weak_model = weak_model
        self.guidance = guidance
        self.null_class = model.num_classes
        self.nfe = 0
        self.forward_passes = 0
        self.rows = 0

    def _forward(self, net: torch.nn.Module, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor):
        self.forward_passes += 1
        self.rows += x.shape[0]
        return net(x, t, y)

    def __call__(self, x: torch.Tensor, t: float, y: torch.Tensor) -> torch.Tensor:
        g = self.guidance
        self.nfe += 1
        cfg = g.cfg_scale != 1.0 and in_interval(t, g.cfg_interval)
        if cfg:  # one pass over [conditional; unconditional]
            x_in = x.repeat(2, *[1] * (x.dim() - 1))
            y_in = y.repeat(2)
            y_in[len(y) :] = self.null_class
        else:
            x_in, y_in = x, y
        t_in = x.new_full((x_in.shape[0],), t)

        v_final, v_inter = self._forward(self.model, x_in, t_in, y_in)
        if g.ig_scale != 1.0 and in_interval(t, g.ig_interval):
            v = v_inter + g.ig_scale * (v_final - v_inter)
        elif g.ag_scale != 1.0 and in_interval(t, g.ag_interval):
            v_weak = self._forward(self.weak_model, x_in, t_in, y_in)[0]
            v = v_weak + g.ag_scale * (v_final - v_weak)
        else:
            v = v_final

        if cfg:
            v_cond, v_uncond = v.chunk(2)
            v = v_uncond + g.cfg_scale * (v_cond - v_uncond)
        return v
