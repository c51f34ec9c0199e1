"""Where every file of a campaign goes, under ``results/<name>/``: one table, read by the Snakemake
rules (through :meth:`ig.campaign.Campaign.path`), ``ig table``, ``ig plot``, ``ig claims`` and
``ig status``, so that they can never disagree on a name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

LAYOUT = {
    # job specs (ig.campaign.specs): one folder per job, holding the spec of its current content
    "spec": "specs/{job}/{hash}.json",
    "spec_dir": "specs/{job}",
    "autoencoder": "autoencoders/{latents}/config.json",
    "autoencoder_dir": "autoencoders/{latents}",
    "latents": "latents/{latents}",
    "latent_shard": "latents/{latents}/shard-{shard}.npz",
    "latent_manifest": "latents/{latents}/manifest.json",
    "checkpoint": "runs/{run}/{milestone}.pt",
    "segment_workdir": "runs/{run}/work-{milestone}",
    "training_log": "runs/{run}/training.jsonl",
    "tensorboard": "runs/{run}/tensorboard",
    "milestone_grid": "runs/{run}/{milestone}.png",
    "samples": "samples/{run}/{milestone}/{guidance}/{labels}",
    "sample_manifest": "samples/{run}/{milestone}/{guidance}/{labels}/samples.json",
    "metrics": "metrics/{run}/{milestone}/{guidance}/{labels}.json",
    # the first samples of a set, drawn by its evaluation: kept with the metrics when shards are dropped
    "grid": "metrics/{run}/{milestone}/{guidance}/{labels}.png",
    "classifier": "classifier.pt",
    "reference": "reference.npz",
    "tables": "tables",
    "table": "tables/{table}.md",
    "plots": "plots",
    "plot": "plots/{plot}.png",
    "plots_done": "plots/done.json",
    "tuning": "tuning/{tuning}",
    "tuned": "tuning/{tuning}/chosen.json",
    "tuning_trace": "tuning/{tuning}/trace.json",
    "readme": "README.md",
    "report_intro": "report.rst",  # the first page of snakemake --report: verdicts and pending cells
    "pending": "pending.md",
    "toy2d": "toy2d",
    "toy2d_table": "toy2d/metrics.md",
    "toy2d_claims": "toy2d/claims.json",
    "plan": "plan.md",
}


class _Partial(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def layout_path(root: str | Path, key: str, **wildcards: Any) -> str:
    """``root`` + the ``LAYOUT`` pattern of ``key``, with the given wildcards filled in (the others
    stay ``{wildcard}``, so that rules use the same call for their patterns)."""
    return str(Path(root) / LAYOUT[key].format_map(_Partial(wildcards)))


def log_file(campaign: str, rule: str, name: str) -> str:
    """Every rule's log: ``logs/<campaign>/<rule>/<name>.log`` (beside results/, where Snakemake runs)."""
    return f"logs/{campaign}/{rule}/{name}.log"


def benchmark_file(campaign: str, rule: str, name: str) -> str:
    """Every GPU rule's ``benchmark:`` record (wall time, memory, CPU of the job: what sizes the next
    run's limits): ``benchmarks/<campaign>/<rule>/<name>.tsv``, named as the job's log."""
    return f"benchmarks/{campaign}/{rule}/{name}.tsv"
