"""One SiT training step, ours vs the official IG code, side by side in one process (CPU or GPU).

A step is what each training loop does per batch: posterior sample, forward with the
intermediate head, IG loss (λ = 0.5), backward, gradient clipping at 1.0, AdamW, EMA 0.9999.
Ours is ``ig.train.engine.Trainer`` (data read from memory-mapped shards); the official one is
the loop body of ``SiT/train.py`` with its ``SiT-B/2`` and ``IGLoss`` (head after block 8, the
release default; ours is set to the same block). Steps alternate between the two so that load
on a shared machine hits both alike; the median step time (wall and process CPU time) of each is
compared. Goal: ours ≤ 0.9×.

The official code is never copied into this repository. Check it out under /tmp first::

    # fetch CVL-UESTC/Internal-Guidance (the search tool's `fetch`), then
    mkdir -p /tmp/Internal-Guidance && git --git-dir /work/.mirror/CVL-UESTC+Internal-Guidance/repo \\
        archive HEAD SiT | tar -x -C /tmp/Internal-Guidance
    .venv/bin/python bench/train_vs_official.py --official /tmp/Internal-Guidance --batch 4 --steps 10

On a GPU (what ``bench/gpu.sh`` runs): ``--device cuda --model SiT-XL/2 --batch 32 --precision bf16``
(both under bf16 autocast; the release trains in fp16 through accelerate, the paper's setting for
both here is bf16). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
from collections import OrderedDict
from functools import partial
from pathlib import Path

import torch

from ig.bench import paired_times
from ig.data.latents import LatentDataset
from ig.distributed import DistContext
from ig.train.benchmarks import write_random_latents
from ig.train.config import RunConfig
from ig.train.engine import Trainer

SHAPE = (4, 32, 32)


def official_step(official: dict, batch: tuple[torch.Tensor, torch.Tensor], autocast) -> None:
    """The body of the official training loop (SiT/train.py), minus accelerate and logging."""
    model, ema, optimizer, loss_fn = official["model"], official["ema"], official["optimizer"], official["loss_fn"]
    moments, labels = batch
    with torch.no_grad():  # sample_posterior, scale 0.18215
        mean, std = torch.chunk(moments, 2, dim=1)
        x = (mean + std * torch.randn_like(mean)) * 0.18215
    with autocast:
        gen_loss, align_loss = loss_fn(model, x, labels)
    loss = gen_loss.mean() + 0.5 * align_loss.mean()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    with torch.no_grad():  # update_ema
        ema_params = OrderedDict(ema.named_parameters())
        for name, param in model.named_parameters():
            ema_params[name].mul_(0.9999).add_(param.data, alpha=1 - 0.9999)


def build_official(source: Path, name: str, batch: int, device: torch.device) -> tuple[dict, tuple]:
    sys.path.insert(0, str(source / "SiT"))
    from loss import IGLoss
    from models.sit import SiT_models

    torch.manual_seed(0)
    model = SiT_models[name](input_size=SHAPE[1], num_classes=1000, use_cfg=True, fused_attn=True, qk_norm=False)
    model = model.to(device)
    ema = copy.deepcopy(model).requires_grad_(False).eval()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.999), weight_decay=0.0, eps=1e-8)
    loss_fn = IGLoss(prediction="v", path_type="linear", weighting="uniform", loss_type="l2")
    moments = torch.cat([torch.randn(batch, *SHAPE), 0.1 * torch.rand(batch, *SHAPE)], dim=1).to(device)
    official = {"model": model.train(), "ema": ema, "optimizer": optimizer, "loss_fn": loss_fn}
    return official, (moments, torch.randint(0, 1000, (batch,), device=device))


def ours_step(trainer: Trainer) -> None:
    trainer.compute_gradients()
    trainer.apply_gradients()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", type=Path, default=Path("/tmp/Internal-Guidance"), help="official checkout")
    parser.add_argument("--model", default="SiT-B/2", help="SiT-B/2, SiT-L/2 or SiT-XL/2")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="autocast of both steps")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10, help="timed steps of each (after one warm-up step)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--compile", action="store_true", help="ours with torch.compile (compiled in the warm-up)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    device = torch.device(args.device)
    autocast = torch.autocast(device.type, torch.bfloat16, enabled=args.precision == "bf16")
    official, batch = build_official(args.official, args.model, args.batch, device)
    run = {"model": {"name": args.model, "ig_layer": 8}, "global_batch": args.batch, "compile": args.compile,
           "precision": args.precision}  # fmt: skip
    cfg = RunConfig.from_dict(run)
    with tempfile.TemporaryDirectory() as tmp:
        data = LatentDataset(write_random_latents(Path(tmp), 2 * args.batch, SHAPE, 1000))
        trainer = Trainer(cfg, data, DistContext(0, 1, 0, device))
        n_ours = sum(p.numel() for p in trainer.model.parameters())
        n_official = sum(p.numel() for p in official["model"].parameters())
        ours, theirs = partial(ours_step, trainer), partial(official_step, official, batch, autocast)
        times = paired_times(ours, theirs, args.steps, device)

    median = {"ours": times["a_s"], "official": times["b_s"]}
    median_cpu = {"ours": times["a_cpu_s"], "official": times["b_cpu_s"]}
    wall = {"ours": times["a_all_s"], "official": times["b_all_s"]}
    print(
        json.dumps(
            {
                "model": f"{args.model} (+ head after block 8)",
                "device": str(device),
                "precision": args.precision,
                "params": {"ours": n_ours, "official": n_official},
                "batch": args.batch,
                "threads": args.threads,
                "compile": args.compile,
                "steps": args.steps,
                "median_step_s": median,
                "ratio_ours_over_official": median["ours"] / median["official"],
                "images_per_s": {name: args.batch / t for name, t in median.items()},
                "median_step_cpu_s": median_cpu,
                "cpu_ratio_ours_over_official": median_cpu["ours"] / median_cpu["official"],
                "all_step_s": wall,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
