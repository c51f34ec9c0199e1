"""Optimizers of the two releases: AdamW (SiT + IG) and Muon with an auxiliary Adam (LightningDiT + IG).

Muon is our implementation of the release's ``MuonWithAuxAdam`` (CVL-UESTC/Internal-Guidance,
``LightningDiT/muon_new.py``):
matrices (``ndim >= 2``) follow Nesterov momentum (0.95), orthogonalised by 5 quintic
Newton–Schulz steps (3.4445, −4.7750, 2.0315) in bf16 after scaling to unit Frobenius norm, times
``sqrt(max(1, rows/cols))``; the step size is ``lr · 0.2 · sqrt(max(rows, cols))`` and weight decay
is decoupled (``p ← p·(1 − lr·wd)``, 0.01). Everything else (gains, biases) gets a bias-corrected
Adam (β = (0.9, 0.95), eps 1e-8, no decay). Differences from the release, on purpose:

- **Frozen parameters are left out.** The release hands every parameter to the optimizer, so its
  fixed sin-cos ``pos_embed`` gets a zero update but is still shrunk by weight decay every step.
- Convolution kernels are treated as their ``(out, in·k·k)`` matrix for the step-size rule too (the
  release uses ``(out, in)`` there); the two agree for the patch-1 embedding LightningDiT uses.
- With several processes each rank orthogonalises only its share of the matrices and broadcasts
  the results (momentum stays on every rank, so checkpoints need no gathering); the release
  repeats all of the work on every rank.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

from ig.train.config import OptimizerConfig

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def build_optimizer(cfg: OptimizerConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    """The optimizer of ``cfg.kind`` over the trainable parameters of ``model``."""
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.kind == "adamw":
        fused = all(p.device.type in ("cpu", "cuda") for p in params)
        opt = torch.optim.AdamW(
            params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay, fused=fused
        )
    else:
        opt = Muon(
            matrices=[p for p in params if p.ndim >= 2],
            others=[p for p in params if p.ndim < 2],
            lr=cfg.lr,
            momentum=cfg.momentum,
            ns_steps=cfg.ns_steps,
            weight_decay=cfg.muon_weight_decay,
            betas=cfg.betas,
            eps=cfg.eps,
            adam_weight_decay=cfg.weight_decay,
        )
    for group in opt.param_groups:
        group["initial_lr"] = group["lr"]
    return opt


def set_learning_rate(opt: torch.optim.Optimizer, cfg: OptimizerConfig, step: int) -> None:
    """Linear warmup over ``warmup_steps``, then constant (both releases are constant). A pure
    function of the step, so resuming needs no scheduler state."""
    factor = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0
    for group in opt.param_groups:
        group["lr"] = group["initial_lr"] * factor


def orthogonalize(g: torch.Tensor, steps: int) -> torch.Tensor:
    """Approximately ``U Vᵀ`` of ``g = U S Vᵀ`` by a quintic Newton–Schulz iteration in bf16."""
    a, b, c = NS_COEFFICIENTS
    x = g.bfloat16()
    tall = x.size(0) > x.size(1)
    if tall:
        x = x.T
    x = x / (x.norm() + 1e-7)
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return (x.T if tall else x).to(g.dtype)


class Muon(torch.optim.Optimizer):
    """Muon for the matrices, Adam for the rest (see the module docstring)."""

    def __init__(
        self,
        matrices: list[torch.nn.Parameter],
        others: list[torch.nn.Parameter],
        *,
        lr: float,
        momentum: float,
        ns_steps: int,
        weight_decay: float,
        betas: tuple[float, float],
        eps: float,
        adam_weight_decay: float,
    ) -> None:
        # Largest first, so that dealing them out round-robin balances the ranks' work.
        matrices = sorted(matrices, key=lambda p: p.numel(), reverse=True)
        groups = [
            dict(
                params=matrices, use_muon=True, lr=lr, momentum=momentum, ns_steps=ns_steps, weight_decay=weight_decay
            ),
            dict(params=others, use_muon=False, lr=lr, betas=betas, eps=eps, weight_decay=adam_weight_decay, step=0),
        ]
        super().__init__([g for g in groups if g["params"]], {})

    @torch.no_grad()
    def step(self, closure: None = None) -> None:
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if params:
                (self._muon_step if group["use_muon"] else self._adam_step)(group, params)

    def _muon_step(self, group: dict, params: list[torch.Tensor]) -> None:
        buffers = [self.state[p].setdefault("momentum_buffer", torch.zeros_like(p)) for p in params]
        torch._foreach_lerp_(buffers, [p.grad for p in params], 1 - group["momentum"])
        rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
        for p, buffer in zip(params[rank::world], buffers[rank::world], strict=True):
            matrix = p.grad.lerp(buffer, group["momentum"]).reshape(len(p), -1)  # Nesterov
            rows, cols = matrix.shape
            ortho = orthogonalize(matrix, group["ns_steps"]) * math.sqrt(max(1.0, rows / cols))
            p.mul_(1 - group["lr"] * group["weight_decay"])
            p.add_(ortho.view_as(p), alpha=-group["lr"] * 0.2 * math.sqrt(max(rows, cols)))
        if world > 1:
            for owner in range(world):
                owned = [p.data for p in params[owner::world]]
                flat = _flatten_dense_tensors(owned)
                dist.broadcast(flat, src=owner)
                torch._foreach_copy_(owned, _unflatten_dense_tensors(flat, owned))

    def _adam_step(self, group: dict, params: list[torch.Tensor]) -> None:
        beta1, beta2 = group["betas"]
        group["step"] += 1
        grads = [p.grad for p in params]
        m = [self.state[p].setdefault("exp_avg", torch.zeros_like(p)) for p in params]
        v = [self.state[p].setdefault("exp_avg_sq", torch.zeros_like(p)) for p in params]
        torch._foreach_lerp_(m, grads, 1 - beta1)
        torch._foreach_mul_(v, beta2)
        torch._foreach_addcmul_(v, grads, grads, 1 - beta2)
        correction1 = 1 - beta1 ** group["step"]
        correction2 = 1 - beta2 ** group["step"]
        denom = torch._foreach_sqrt(v)
        torch._foreach_div_(denom, math.sqrt(correction2))
        torch._foreach_add_(denom, group["eps"])
        if group["weight_decay"]:
            torch._foreach_mul_(params, 1 - group["lr"] * group["weight_decay"])
        torch._foreach_addcdiv_(params, m, denom, -group["lr"] / correction1)
