"""``python -m ig.bench``: speed and memory figures, as ratios measured side by side.

Each ratio compares two variants of the same work in one process, interleaved and repeated, and
reports the ratio of medians (plus the absolute times behind it), so machine load affects both
sides alike. Figures of the other stages (evaluation, data, training) come from their
``benchmarks`` modules. Prints one JSON object; ``--out`` also writes it to a file.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable

import torch

from ig.guidance import Guidance, GuidedVelocity
from ig.losses import ig_losses
from ig.sampling.integrators import sample
from ig.sampling.settings import SamplerSettings

# modules whose ``bench_*`` functions join the report (their sections appear under their name)
SECTIONS = ("ig.evaluation.benchmarks", "ig.data.benchmarks", "ig.train.benchmarks")


def paired_times(a: Callable[[], object], b: Callable[[], object], repeats: int, warmup: int = 1) -> dict:
    """Median wall times of ``a`` and ``b`` run alternately, and their ratio b / a."""
    for _ in range(warmup):
        a(), b()
    ta, tb = [], []
    for _ in range(repeats):
        for fn, store in ((a, ta), (b, tb)):
            start = time.perf_counter()
            fn()
            store.append(time.perf_counter() - start)
    ma, mb = statistics.median(ta), statistics.median(tb)
    return {"a_s": ma, "b_s": mb, "ratio": mb / ma}


def _bench_model(name: str, **overrides) -> torch.nn.Module:
    from ig.models import create_model

    torch.manual_seed(0)
    return create_model(name, **overrides)


def sampling_overheads(model_name: str, batch: int, steps: int, repeats: int, **overrides) -> dict:
    """IG-guided and CFG-guided vs unguided sampling of the same model, same steps."""
    model = _bench_model(model_name, **overrides).eval()
    shape = (batch, model.in_channels, model.input_size, model.input_size)
    noise = torch.randn(shape)
    y = torch.randint(0, model.num_classes, (batch,))

    def run(guidance: Guidance):
        return lambda: sample(GuidedVelocity(model, guidance), noise, y, SamplerSettings(method="sde", steps=steps))

    plain, ig, cfg = run(Guidance()), run(Guidance(ig_scale=1.4)), run(Guidance(cfg_scale=1.5))
    ig_pair = paired_times(plain, ig, repeats)
    cfg_pair = paired_times(plain, cfg, repeats)
    return {
        "ig_sampling_overhead": ig_pair["ratio"],
        "cfg_sampling_overhead": cfg_pair["ratio"],
        "sampling_images_per_s": batch / ig_pair["a_s"],
        "sampling_steps": steps,
        "sampling_plain_s": ig_pair["a_s"],
        "sampling_ig_s": ig_pair["b_s"],
        "sampling_cfg_s": cfg_pair["b_s"],
    }


def aux_train_overhead(model_name: str, batch: int, repeats: int) -> dict:
    """A training step (forward, loss, backward, AdamW) with the intermediate head vs without."""

    def step_fn(ig_layer: int):
        model = _bench_model(model_name, ig_layer=ig_layer).train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        x0 = torch.randn(batch, model.in_channels, model.input_size, model.input_size)
        y = torch.randint(0, model.num_classes, (batch,))
        lam = 0.5 if ig_layer else 0.0

        def step():
            loss = ig_losses(model, x0, y, lam=lam).total
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        return step

    with_head = _bench_model(model_name).ig_layer
    pair = paired_times(step_fn(0), step_fn(with_head), repeats)
    return {"aux_train_overhead": pair["ratio"], "train_step_plain_s": pair["a_s"], "train_step_ig_s": pair["b_s"]}


def core(quick: bool) -> dict:
    """The DESIGN contract's three ratios on a B-size model at a small batch, and the sampling
    speed of the embedded default's tiny model."""
    model = "SiT-T/2" if quick else "SiT-B/2"
    out = {"core_model": model}
    out.update(sampling_overheads(model, batch=2 if quick else 4, steps=4 if quick else 10, repeats=3 if quick else 7))
    out.update(aux_train_overhead(model, batch=4 if quick else 8, repeats=3 if quick else 7))
    embedded = {"input_size": 8, "in_channels": 4, "num_classes": 10}  # config/config.yaml's model
    tiny = sampling_overheads("SiT-T/2", batch=64 if quick else 300, steps=5 if quick else 25, repeats=3, **embedded)
    out["tiny_sampling_images_per_s"] = tiny["sampling_images_per_s"]
    out["tiny_sampling_steps"] = tiny["sampling_steps"]
    return out


def collect(quick: bool, only: list[str] | None = None) -> dict:
    report: dict = {
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            "quick": quick,
        }
    }
    if not only or "core" in only:
        report.update(core(quick))
    for module_name in SECTIONS:
        section = module_name.split(".")[1]
        if only and section not in only:
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            continue
        for name in sorted(n for n in dir(module) if n.startswith("bench_")):
            kwargs = {"quick": quick} if "quick" in getattr(module, name).__code__.co_varnames else {}
            report.setdefault(section, {})[name.removeprefix("bench_")] = getattr(module, name)(**kwargs)
    return report


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="tiny sizes, a smoke run of every benchmark")
    p.add_argument("--only", nargs="*", help="sections to run: core, evaluation, data, train")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", help="also write the JSON here")


def run(args: argparse.Namespace) -> None:
    from ig.utils.io import write_json

    torch.set_num_threads(args.threads)
    report = collect(args.quick, args.only)
    print(json.dumps(report, indent=2))
    if args.out:
        write_json(args.out, report)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ig.bench", description=__doc__.splitlines()[0])
    add_arguments(parser)
    run(parser.parse_args(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
