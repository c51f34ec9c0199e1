"""Exponential moving average of the weights, the model that sampling uses."""

from __future__ import annotations

import copy
from typing import Any

import torch


class EMA:
    """``ema ← decay·ema + (1 − decay)·param`` over the trainable parameters, in one foreach op.

    Frozen parameters (the fixed positional embedding) and buffers are copied once and never
    averaged, so they stay bit-identical to the model's (the releases average them too, which
    only adds rounding noise).
    """

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        trainable = {name for name, p in model.named_parameters() if p.requires_grad}
        self._ema_params = [p for name, p in self.model.named_parameters() if name in trainable]

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        params = [p.detach() for p in model.parameters() if p.requires_grad]
        torch._foreach_lerp_(self._ema_params, params, 1.0 - self.decay)

    def state_dict(self) -> dict[str, Any]:
        return self.model.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state)
