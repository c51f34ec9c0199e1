"""``ig plan``: what a campaign will cost before it runs — jobs and estimated GPU-hours.

Network FLOPs are counted from the architecture (``ig.models.flops``, no torch); time = FLOPs
/ an assumed sustained throughput (``estimates:`` in the config; defaults
below are for an H100 in bf16 at ~35-40 % of its dense peak). Training costs 3× the forward
FLOPs per image; a sampling step with CFG inside its interval costs two rows per sample. Disk:
a milestone holds the EMA weights only; the full training state (weights, EMA, optimizer moments)
exists for the latest milestone and the running segment; sample sets are uint8 images.
"""

from __future__ import annotations

import argparse
import math
import os

from ig import campaign as campaign_mod
from ig.campaign import Campaign
from ig.guidance import Guidance, in_interval
from ig.models.flops import forward_flops, parameter_count
from ig.utils.io import atomic_path

DEFAULT_ESTIMATES = {
    "gpu": "H100 (bf16)",
    "train_tflops": 350.0,  # sustained TFLOP/s of a training step
    "sample_tflops": 400.0,  # sustained TFLOP/s of sampling forwards in bf16
    "sample_tflops_fp32": 200.0,  # the same in fp32 with TF32 matmuls (as the releases sample): half
    "eval_images_per_s": 2000.0,  # Inception feature extraction
}
# A job's time limit, sized from its estimate: this margin over it, plus minutes to start (imports,
# loading a checkpoint, compiling); ``ig plan`` warns where that exceeds the partition's longest.
RUNTIME_MARGIN = 1.5
RUNTIME_START_MINUTES = 15
MAX_RUNTIME_MINUTES = 1440  # a common partition MaxTime (24 h); IG_SLURM_MAX_MINUTES for your site's
WEIGHT_BYTES = 4  # float32
# A full training state holds the weights, the EMA weights and the optimizer's moments per weight:
# AdamW two, Muon one (its auxiliary Adam's two cover only the few non-matrix parameters).
MOMENTS = {"adamw": 2, "muon": 1}
# Full states on disk at once, at most: the previous milestone's (the segment started from it), the
# resume file, and the new state being written (at a resume save or the milestone).
FULL_STATES_KEPT = 3


def plan(campaign: Campaign) -> dict:
    est = {**DEFAULT_ESTIMATES, **campaign.config.get("estimates", {})}
    runs = {}
    for run, spec in campaign.runs.items():
        model_cfg = campaign.model_config(run)
        flops = forward_flops(**model_cfg)
        milestone_gb = parameter_count(**model_cfg) * WEIGHT_BYTES / 1e9
        entry = {"model": model_cfg["name"], "gflops_forward": flops / 1e9, "segments": 0, "train_gpu_hours": 0.0,
                 "milestone_gb": milestone_gb, "disk_gb": milestone_gb}  # fmt: skip
        if "train" in spec:
            full_copies = 2 + MOMENTS[spec["train"]["optimizer"]["kind"]]  # weights, EMA, moments
            hours_per_image = 3 * flops / (est["train_tflops"] * 1e12) / 3600
            steps = [campaign.milestone_step(run, m) for m in spec["milestones"]]
            images = steps[-1] * spec["train"]["global_batch"]
            entry.update(
                segments=len(spec["milestones"]),
                train_images=images,
                train_gpu_hours=images * hours_per_image,
                # each segment's wall time on the run's GPUs (what its job's time limit must hold)
                segment_hours={
                    m: (b - a) * spec["train"]["global_batch"] * hours_per_image / spec["gpus"]
                    for m, a, b in zip(spec["milestones"], [0, *steps[:-1]], steps, strict=True)
                },
                full_state_gb=milestone_gb * full_copies,
                disk_gb=milestone_gb * (len(spec["milestones"]) + FULL_STATES_KEPT * full_copies),
            )
        runs[run] = entry
    sets = []
    for s in campaign.sample_sets():
        sampling = campaign.sampling(s.run)
        rows = max(network_rows(sampling.sampler, g) for g in guidance_options(campaign, s.guidance))
        flops = runs[s.run]["gflops_forward"] * 1e9 * rows * sampling.num_samples
        sets.append(
            {
                "set": s.key,
                "nfe": len(sampling.sampler.evaluation_times()),
                "sample_gpu_hours": flops / (sample_tflops(est, sampling.sampler) * 1e12) / 3600,
                "eval_gpu_hours": sampling.num_samples / est["eval_images_per_s"] / 3600,
                "disk_gb": images_gb(campaign, s.run, sampling.num_samples),
            }
        )
    tuning = {target: tuning_cost(campaign, target, runs, est) for target in campaign.config["tuning"]}
    totals = {
        "train_gpu_hours": sum(r["train_gpu_hours"] for r in runs.values()),
        "sample_gpu_hours": sum(s["sample_gpu_hours"] for s in sets),
        "eval_gpu_hours": sum(s["eval_gpu_hours"] for s in sets),
        "tune_gpu_hours": sum(t["gpu_hours"] for t in tuning.values()),
        "checkpoint_disk_gb": sum(r["disk_gb"] for r in runs.values()),
        "sample_disk_gb": sum(s["disk_gb"] for s in sets) + sum(t["disk_gb"] for t in tuning.values()),
        "jobs": {
            "train_segment": sum(r["segments"] for r in runs.values()),
            "sample": len(sets),
            "evaluate": len(sets),
            "tune": len(tuning),
        },
    }
    totals["gpu_hours"] = sum(
        totals[k] for k in ("train_gpu_hours", "sample_gpu_hours", "eval_gpu_hours", "tune_gpu_hours")
    )
    return {
        "name": campaign.name,
        "estimates": est,
        "runs": runs,
        "sample_sets": sets,
        "tuning": tuning,
        "totals": totals,
    }


def sample_tflops(est: dict, sampler) -> float:
    """Sampling throughput at the sampler's precision (fp32 sampling runs TF32 matmuls: half bf16's)."""
    return est["sample_tflops"] if sampler.precision == "bf16" else est["sample_tflops_fp32"]


def runtime_minutes(hours: float) -> int:
    """A job's time limit for an estimated ``hours``: with ``RUNTIME_MARGIN`` and start-up minutes."""
    return math.ceil(hours * 60 * RUNTIME_MARGIN) + RUNTIME_START_MINUTES


def job_hours(p: dict, rule: str, key: str) -> float:
    """The estimated wall time of one job: ``train_segment`` (key ``run/milestone``), ``sample`` and
    ``evaluate`` (key: the sample set's), ``tune`` (key: the target)."""
    if rule == "train_segment":
        run, milestone = key.rsplit("/", 1)
        return p["runs"][run]["segment_hours"][milestone]
    if rule == "tune":
        return p["tuning"][key]["gpu_hours"]
    column = {"sample": "sample_gpu_hours", "evaluate": "eval_gpu_hours"}[rule]
    return next(s[column] for s in p["sample_sets"] if s["set"] == key)


def longest_jobs(p: dict) -> dict[str, tuple[str, float]]:
    """Per rule with an estimate, its longest job and that job's hours."""
    jobs = {
        "train_segment": [(f"{r}/{m}", h) for r, e in p["runs"].items() for m, h in e.get("segment_hours", {}).items()],
        "sample": [(s["set"], s["sample_gpu_hours"]) for s in p["sample_sets"]],
        "evaluate": [(s["set"], s["eval_gpu_hours"]) for s in p["sample_sets"]],
        "tune": [(t, c["gpu_hours"]) for t, c in p["tuning"].items()],
    }
    return {rule: max(found, key=lambda job: job[1]) for rule, found in jobs.items() if found}


def limit_warnings(p: dict, max_minutes: int = MAX_RUNTIME_MINUTES) -> list[str]:
    """The jobs whose time limit (sized from their estimate) exceeds the partition's longest."""
    warnings = []
    for rule, (key, hours) in longest_jobs(p).items():
        minutes = runtime_minutes(hours)
        if minutes > max_minutes:
            fix = "add milestones to split it" if rule == "train_segment" else "use fewer samples or more GPUs"
            warnings.append(
                f"warning: {rule} {key} needs a {minutes / 60:,.1f} h limit (estimated {hours:,.1f} h × "
                f"{RUNTIME_MARGIN}), over the partition's {max_minutes / 60:,.0f} h (IG_SLURM_MAX_MINUTES): {fix}"
            )
    return warnings


def images_gb(campaign: Campaign, run: str, images: int) -> float:
    """Disk of ``images`` uint8 RGB samples of a run, at the resolution of its latent set's dataset."""
    resolution = campaign.config["latents"][campaign.latents_of(run)]["dataset"]["resolution"]
    return images * 3 * resolution**2 / 1e9


def network_rows(sampler, g: Guidance) -> int:
    """Rows pushed through networks per sample: one per evaluation, two where CFG is on (conditional
    and unconditional), and twice that with a separate weak model (autoguidance)."""
    rows = sum(2 if g.cfg_scale != 1.0 and in_interval(t, g.cfg_interval) else 1 for t in sampler.evaluation_times())
    return rows * (2 if g.ag_scale != 1.0 else 1)


def guidance_options(campaign: Campaign, name: str) -> list[Guidance]:
    """The guidance a setting may turn out to be: itself, or (tuned) every candidate of its space."""
    target = campaign.tuned_target(name)
    if target is None:
        return [campaign.guidance(name)]
    spec = campaign.config["tuning"][target]
    return campaign.tuning_space(target).candidates(spec["candidates"])


def tuning_cost(campaign: Campaign, target: str, runs: dict, est: dict) -> dict:
    """Images and GPU-hours of a tuning target at most (every rung keeps ⌈alive/η⌉ candidates; the
    first extension round tries every dimension past its edge at the full count, a later one only the
    dimension the last winner moved along: the others were widened past it) and of the grid of the same
    candidates at the full count."""
    from ig.tuning import rung_sizes

    spec = campaign.config["tuning"][target]
    run, _ = campaign.tuning_run(target)
    sampling = campaign.tuning_sampling(target)
    space = campaign.tuning_space(target)
    candidates = space.candidates(spec["candidates"])
    sizes = rung_sizes(len(candidates), sampling.num_samples, spec["eta"], spec["min_samples"])
    images, alive, previous = 0, len(candidates), 0
    for n in sizes:
        images += alive * (n - previous)
        alive, previous = max(1, math.ceil(alive / spec["eta"])), n
    if spec["extend"]:
        images += (len(space.ends()) + spec["extend"] - 1) * sampling.num_samples
    rows = max(network_rows(sampling.sampler, g) for g in candidates)
    per_image = runs[run]["gflops_forward"] * 1e9 * rows / (sample_tflops(est, sampling.sampler) * 1e12) / 3600
    seconds_eval = 1 / est["eval_images_per_s"] / 3600
    grid = len(candidates) * sampling.num_samples
    return {
        "candidates": len(candidates),
        "schedule": sizes,
        "images": images,
        "grid_images": grid,
        "gpu_hours": images * (per_image + seconds_eval),
        "grid_gpu_hours": grid * (per_image + seconds_eval),
        "disk_gb": images_gb(campaign, run, images),
    }


def format_plan(p: dict) -> str:
    t = p["totals"]
    lines = [
        f"# Compute plan: {p['name']}",
        "",
        f"Estimated on {p['estimates']['gpu']}: {t['gpu_hours']:,.1f} GPU-hours "
        f"(training {t['train_gpu_hours']:,.1f}, sampling {t['sample_gpu_hours']:,.1f}, "
        f"evaluation {t['eval_gpu_hours']:,.1f}, guidance tuning {t['tune_gpu_hours']:,.1f}); jobs: "
        + ", ".join(f"{k} {v}" for k, v in t["jobs"].items()),
        "",
        f"Disk at most: {t['checkpoint_disk_gb'] + t['sample_disk_gb']:,.0f} GB (checkpoints "
        f"{t['checkpoint_disk_gb']:,.0f} GB, sample sets and tuning samples {t['sample_disk_gb']:,.0f} GB; "
        "latents and the ADM reference not counted). A milestone holds the EMA weights only; a run's full "
        f"training state (weights, EMA, optimizer moments) exists at most {FULL_STATES_KEPT} times at once.",
        "",
        "| run | model | GFLOPs/img | segments | train images | GPU-h | milestone GB | full state GB | disk GB |",
        "|---|---|---|---|---|---|---|---|---|",
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
            f"{r['milestone_gb']:,.2f}",
            f"{r['full_state_gb']:,.2f}" if "full_state_gb" in r else "–",
            f"{r['disk_gb']:,.1f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if p["tuning"]:
        header = "| tuning target | candidates | rungs (samples) | images (≤) | GPU-h | the grid: images | GPU-h |"
        lines += ["", header, "|---|---|---|---|---|---|---|"]
        for target, c in p["tuning"].items():
            cells = [target, str(c["candidates"]), ", ".join(map(str, c["schedule"])), f"{c['images']:,}",
                     f"{c['gpu_hours']:,.2f}", f"{c['grid_images']:,}", f"{c['grid_gpu_hours']:,.2f}"]  # fmt: skip
            lines.append("| " + " | ".join(cells) + " |")
    max_minutes = int(os.environ.get("IG_SLURM_MAX_MINUTES", MAX_RUNTIME_MINUTES))
    lines += [
        "",
        f"Time limits, sized from the estimates (× {RUNTIME_MARGIN} + {RUNTIME_START_MINUTES} min; the rules request "
        f"them): the longest job of each kind, against the partition's {max_minutes / 60:,.0f} h.",
        "",
        "| rule | longest job | estimated h | limit h |",
        "|---|---|---|---|",
    ]
    for rule, (key, hours) in longest_jobs(p).items():
        lines.append(f"| {rule} | {key} | {hours:,.2f} | {runtime_minutes(hours) / 60:,.2f} |")
    lines += ["", *limit_warnings(p, max_minutes)]
    lines += ["", "| sample set | NFE | sampling GPU-h | evaluation GPU-h | disk GB |", "|---|---|---|---|---|"]
    for s in p["sample_sets"]:
        lines.append(
            f"| {s['set']} | {s['nfe']} | {s['sample_gpu_hours']:,.3g} | {s['eval_gpu_hours']:,.3g} | "
            f"{s['disk_gb']:,.2f} |"
        )
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
