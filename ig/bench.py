"""``python -m ig.bench``: speed and memory, measured side by side in one process, on the CPU or a GPU.

- **ratios** (the design contract): IG-guided / unguided sampling, CFG / unguided, and a training
  step with / without the intermediate head, on one model, interleaved and repeated (ratio of
  medians), so that machine load affects both sides alike;
- **train**: training-step throughput of SiT and LightningDiT with and without the head: images/s,
  peak memory and, on a GPU, model FLOPs utilisation (FLOPs per image from the architecture,
  ``ig.models.flops``, × 3 for the backward pass, against the device's dense bf16 peak);
- **sampling**: images/s per guidance (none, IG, CFG, IG + CFG) and precision (fp32, bf16), from a
  few SDE steps scaled to the 250 steps of an evaluation;
- **evaluation**, **data**: the stages' own figures (``ig/*/benchmarks.py``): Fréchet distance and
  its bootstrap at 50K × 2048, feature extraction, encoding.

On a GPU (``--device cuda``) the models are the paper's (SiT-XL/2, LightningDiT-XL/1, bf16, batch 32
per GPU, sampling batch 250); on the CPU small ones; ``--quick`` runs tiny versions of everything (CI
runs it). Every part is timed on its own: one that fails is recorded with its error and the rest go
on. Prints one JSON object; ``--out`` also writes it. ``bench/gpu.sh`` runs this beside the
official code's training step on a GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ig.guidance import Guidance, GuidedVelocity
from ig.sampling.settings import SamplerSettings

# torch and the modules that import it are imported where used, so that `ig bench --help` needs none
if TYPE_CHECKING:
    import torch

# modules whose ``bench_*(device, quick)`` functions join the report, under the module's package name
SECTIONS = ("ig.evaluation.benchmarks", "ig.data.benchmarks", "ig.train.benchmarks")
GUIDANCE = {
    "none": Guidance(),
    "ig": Guidance(ig_scale=1.4),
    "cfg": Guidance(cfg_scale=1.5),
    "ig+cfg": Guidance(ig_scale=1.4, cfg_scale=1.35, cfg_interval=(0.0, 0.7)),
}
EVALUATION_STEPS = 250  # the SDE steps of an evaluation: sampling times are scaled to them


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def paired_times(a: Callable[[], object], b: Callable[[], object], repeats: int, device: torch.device) -> dict:
    """``a`` and ``b`` run alternately ``repeats`` times after one warm-up round each: the median wall
    seconds and their ratio b / a, the same for process CPU seconds (the steadier figure on a shared
    machine) with the ratio of the fastest CPU times, and every wall time."""
    runs: dict[str, list[tuple[float, float]]] = {"a": [], "b": []}
    for repeat in range(repeats + 1):
        for key, fn in (("a", a), ("b", b)):
            cpu = time.process_time()
            wall = timed(fn, device)
            if repeat:  # the first round warms up (and compiles)
                runs[key].append((wall, time.process_time() - cpu))
    out: dict[str, Any] = {}
    for key, times in runs.items():
        out[f"{key}_s"] = statistics.median(w for w, _ in times)
        out[f"{key}_cpu_s"] = statistics.median(c for _, c in times)
        out[f"{key}_min_cpu_s"] = min(c for _, c in times)
        out[f"{key}_all_s"] = [w for w, _ in times]
    out["ratio"] = out["b_s"] / out["a_s"]
    out["cpu_ratio"] = out["b_cpu_s"] / out["a_cpu_s"]
    out["min_cpu_ratio"] = out["b_min_cpu_s"] / out["a_min_cpu_s"]
    return out


def model(name: str, device: torch.device, **overrides) -> torch.nn.Module:
    import torch

    from ig.models import create_model

    torch.manual_seed(0)
    return create_model(name, **overrides).to(device)


def sampler(net: torch.nn.Module, batch: int, steps: int, guidance: Guidance, precision: str, device: torch.device):
    """One sampling run of ``batch`` images as a callable (fixed noise and labels)."""
    import torch

    from ig.sampling.integrators import sample

    noise = torch.randn(batch, net.in_channels, net.input_size, net.input_size, device=device)
    y = torch.randint(0, net.num_classes, (batch,), device=device)
    settings = SamplerSettings(method="sde", steps=steps, precision=precision)
    return lambda: sample(GuidedVelocity(net, guidance), noise, y, settings)


def train_step(net: torch.nn.Module, batch: int, precision: str, device: torch.device) -> Callable[[], None]:
    """A training step on data already on the device: IG loss, backward, fused AdamW."""
    import torch

    from ig.losses import ig_losses

    net.train()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4, fused=True)
    x0 = torch.randn(batch, net.in_channels, net.input_size, net.input_size, device=device)
    y = torch.randint(0, net.num_classes, (batch,), device=device)
    lam = 0.5 if net.ig_layer else 0.0
    autocast = torch.autocast(device.type, torch.bfloat16, enabled=precision == "bf16")

    def step() -> None:
        with autocast:
            loss = ig_losses(net, x0, y, lam=lam).total
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def forward_backward(model: torch.nn.Module, x, t, y, target) -> Callable[[], None]:
    """Forward + the release's loss (final MSE + 0.5 · intermediate MSE) + backward, no optimizer, as a
    callable: what the model comparisons in ``bench/`` time (a release's extra outputs are ignored)."""
    import torch.nn.functional as F

    def step() -> None:
        model.zero_grad(set_to_none=True)
        v_final, v_intermediate = model(x, t, y)[:2]
        (F.mse_loss(v_final, target) + 0.5 * F.mse_loss(v_intermediate, target)).backward()

    return step


def plan(device: torch.device, quick: bool) -> dict[str, Any]:
    """The sizes of every measurement on this device."""
    if device.type == "cuda" and not quick:
        return {"model": "SiT-XL/2", "models": ("SiT-XL/2", "LightningDiT-XL/1"), "train_batch": 32,
                "sample_batch": 250, "sample_steps": 5, "repeats": 5, "precision": "bf16", "overrides": {}}  # fmt: skip
    if quick:
        return {"model": "SiT-T/2", "models": ("SiT-T/2",), "train_batch": 4, "sample_batch": 2, "sample_steps": 3,
                "repeats": 2, "precision": "fp32", "overrides": {"input_size": 8, "num_classes": 10}}  # fmt: skip
    return {"model": "SiT-B/2", "models": ("SiT-B/2", "LightningDiT-B/1"), "train_batch": 8, "sample_batch": 4,
            "sample_steps": 10, "repeats": 7, "precision": "fp32", "overrides": {}}  # fmt: skip


def ratios(device: torch.device, quick: bool) -> dict[str, Any]:
    """The contract's three ratios on one model (on the CPU at a small batch)."""
    p = plan(device, quick)
    net = model(p["model"], device, **p["overrides"]).eval()
    run = {
        name: sampler(net, p["sample_batch"], p["sample_steps"], g, p["precision"], device)
        for name, g in GUIDANCE.items()
    }
    ig, cfg = (
        paired_times(run["none"], run["ig"], p["repeats"], device),
        paired_times(run["none"], run["cfg"], p["repeats"], device),
    )
    head = model(p["model"], device, **p["overrides"])
    plain = model(p["model"], device, **(p["overrides"] | {"ig_layer": 0}))
    aux = paired_times(
        train_step(plain, p["train_batch"], p["precision"], device),
        train_step(head, p["train_batch"], p["precision"], device),
        p["repeats"],
        device,
    )
    return {
        "model": p["model"],
        "ig_sampling_overhead": ig["ratio"],
        "cfg_sampling_overhead": cfg["ratio"],
        "aux_train_overhead": aux["ratio"],
        "sampling_plain_s": ig["a_s"],
        "train_step_plain_s": aux["a_s"],
        "train_step_ig_s": aux["b_s"],
    }  # fmt: skip


def peak_bf16_flops(device: torch.device) -> float | None:
    """The device's dense bf16 peak (vendor figures), for the model FLOPs utilisation."""
    if device.type != "cuda":
        return None
    import torch

    name = torch.cuda.get_device_name(device)
    for key, tflops in (("H200", 989), ("H100", 989), ("A100", 312), ("L40S", 362), ("A10", 125), ("4090", 165)):
        if key in name:
            return tflops * 1e12
    return None


def train(device: torch.device, quick: bool) -> dict[str, Any]:
    """Training-step throughput, peak memory and MFU of each model with and without the head."""
    import torch

    from ig.models.flops import forward_flops

    p = plan(device, quick)
    out = {}
    for name in p["models"]:
        for label, extra in (("head", {}), ("no_head", {"ig_layer": 0})):
            options = p["overrides"] | extra
            with _measured(out, f"{name} {label}"):
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                step = train_step(model(name, device, **options), p["train_batch"], p["precision"], device)
                seconds = statistics.median(timed(step, device) for _ in range(p["repeats"] + 1))
                images_per_s = p["train_batch"] / seconds
                flops = 3 * forward_flops(name, **options) * images_per_s
                peak = peak_bf16_flops(device)
                out[f"{name} {label}"] = {
                    "batch": p["train_batch"],
                    "precision": p["precision"],
                    "images_per_s": images_per_s,
                    "tflops": flops / 1e12,
                    "mfu": flops / peak if peak else None,
                    "peak_mem_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
                }
    return out


def sampling(device: torch.device, quick: bool) -> dict[str, Any]:
    """Images/s of an evaluation's 250 SDE steps, per guidance and precision."""
    p = plan(device, quick)
    net = model(p["model"], device, **p["overrides"]).eval()
    out = {}
    for precision in ("fp32", "bf16"):
        for name, g in GUIDANCE.items():
            with _measured(out, f"{name} {precision}"):
                run = sampler(net, p["sample_batch"], p["sample_steps"], g, precision, device)
                seconds = min(timed(run, device) for _ in range(2)) * EVALUATION_STEPS / p["sample_steps"]
                out[f"{name} {precision}"] = {"images_per_s": p["sample_batch"] / seconds, "batch": p["sample_batch"]}
    return {"model": p["model"], "steps": EVALUATION_STEPS, **out}


@contextlib.contextmanager
def _measured(report: dict, key: str):
    """Record a failing measurement as its error and go on with the others."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - a benchmark must report what it could measure
        report[key] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}


def collect(device: torch.device, quick: bool, only: list[str] | None = None) -> dict[str, Any]:
    import torch

    report: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "quick": quick,
        }
    }
    own = {"ratios": ratios, "train": train, "sampling": sampling}
    for section, fn in own.items():
        if not only or section in only:
            with _measured(report, section):
                report[section] = fn(device, quick)
    for module_name in SECTIONS:
        section = module_name.split(".")[1]
        if only and section not in only:
            continue
        module = importlib.import_module(module_name)
        for name in sorted(n for n in dir(module) if n.startswith("bench_")):
            key = name.removeprefix("bench_")
            with _measured(report.setdefault(section, {}), key):
                report[section][key] = getattr(module, name)(device=device, quick=quick)
    return report


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run of every benchmark")
    p.add_argument("--device", default="cpu", help="cpu or cuda (the paper's models, bf16)")
    p.add_argument("--only", nargs="*", help="sections: ratios, train, sampling, evaluation, data")
    p.add_argument("--threads", type=int, default=2, help="CPU threads")
    p.add_argument("--out", help="also write the JSON here")


def run(args: argparse.Namespace) -> None:
    import torch

    from ig.distributed import select_device
    from ig.utils.io import write_json

    torch.set_num_threads(args.threads)
    report = collect(select_device(args.device), args.quick, args.only)
    print(json.dumps(report, indent=2))
    if args.out:
        write_json(args.out, report)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ig.bench", description=__doc__.splitlines()[0])
    add_arguments(parser)
    run(parser.parse_args(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
