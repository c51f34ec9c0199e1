"""``ig plan``: what a campaign will cost before it runs — jobs and estimated GPU-hours.

Network FLOPs are counted from the architecture (``ig.models.flops``, no torch); time = FLOPs
/ an assumed sustained throughput (``estimates:`` in the config; defaults
below are for an H100 in bf16 at ~35-40 % of its dense peak). Training costs 3× the forward
FLOPs per image; a sampling step with CFG inside its interval costs two rows per sample.
"""

from __future__ import annotations

import argparse

from ig import campaign as campaign_mod
from ig.campaign import Campaign
from ig.guidance import in_interval
from ig.models.flops import forward_flops
from ig.utils.io import atomic_path

DEFAULT_ESTIMATES = {
    "gpu": "H100 (bf16)",
    "train_tflops": 350.0,  # sustained TFLOP/s of a training step
    "sample_tflops": 400.0,  # sustained TFLOP/s of sampling forwards
    "eval_images_per_s": 2000.0,  # Inception feature extraction
}


def plan(campaign: Campaign) -> dict:
    est = {**DEFAULT_ESTIMATES, **campaign.config.get("estimates", {})}
    runs = {}
    for run, spec in campaign.runs.items():
        model_cfg = campaign.model_config(run)
        flops = forward_flops(**model_cfg)
        entry = {"model": model_cfg["name"], "gflops_forward": flops / 1e9, "segments": 0, "train_gpu_hours": 0.0}
        if "train" in spec:
            images = campaign.milestone_step(run, spec["milestones"][-1]) * spec["train"]["global_batch"]
            entry.update(
                segments=len(spec["milestones"]),
                train_images=images,
                train_gpu_hours=images * 3 * flops / (est["train_tflops"] * 1e12) / 3600,
            )
        runs[run] = entry
    sets = []
    for s in campaign.sample_sets():
        sampling = campaign.sampling(s.run)
        g = campaign.guidance(s.guidance)
        times = sampling.sampler.evaluation_times()
        rows = sum(2 if g.cfg_scale != 1.0 and in_interval(t, g.cfg_interval) else 1 for t in times)
        rows *= 2 if g.ag_scale != 1.0 else 1
        flops = runs[s.run]["gflops_forward"] * 1e9 * rows * sampling.num_samples
        sets.append(
            {
                "set": s.key,
                "nfe": len(times),
                "sample_gpu_hours": flops / (est["sample_tflops"] * 1e12) / 3600,
                "eval_gpu_hours": sampling.num_samples / est["eval_images_per_s"] / 3600,
            }
        )
    totals = {
        "train_gpu_hours": sum(r["train_gpu_hours"] for r in runs.values()),
        "sample_gpu_hours": sum(s["sample_gpu_hours"] for s in sets),
        "eval_gpu_hours": sum(s["eval_gpu_hours"] for s in sets),
        "jobs": {
            "train_segment": sum(r["segments"] for r in runs.values()),
            "sample": len(sets),
            "evaluate": len(sets),
        },
    }
    totals["gpu_hours"] = totals["train_gpu_hours"] + totals["sample_gpu_hours"] + totals["eval_gpu_hours"]
    return {"name": campaign.name, "estimates": est, "runs": runs, "sample_sets": sets, "totals": totals}


def format_plan(p: dict) -> str:
    t = p["totals"]
    lines = [
        f"# Compute plan: {p['name']}",
        "",
        f"Estimated on {p['estimates']['gpu']}: {t['gpu_hours']:,.1f} GPU-hours "
        f"(training {t['train_gpu_hours']:,.1f}, sampling {t['sample_gpu_hours']:,.1f}, "
        f"evaluation {t['eval_gpu_hours']:,.1f}); jobs: " + ", ".join(f"{k} {v}" for k, v in t["jobs"].items()),
        "",
        "| run | model | GFLOPs/img | segments | train images | GPU-h |",
        "|---|---|---|---|---|---|",
    ]
    for run, r in p["runs"].items():
        images = f"{r['train_images']:,}" if "train_images" in r else "imported"
        cells = [
            run,
            r["model"],
            f"{r['gflops_forward']:.3g}",
            str(r["segments"]),
            images,
            f"{r['train_gpu_hours']:,.1f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "| sample set | NFE | sampling GPU-h | evaluation GPU-h |", "|---|---|---|---|"]
    for s in p["sample_sets"]:
        lines.append(f"| {s['set']} | {s['nfe']} | {s['sample_gpu_hours']:,.3g} | {s['eval_gpu_hours']:,.3g} |")
    return "\n".join(lines) + "\n"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="workflow config (YAML)")
    p.add_argument("--out", help="also write the plan (Markdown) here")


def run(args: argparse.Namespace) -> None:
    text = format_plan(plan(campaign_mod.load(args.config, dry_run=True)))
    print(text)
    if args.out:
        with atomic_path(args.out) as tmp:
            tmp.write_text(text)
