"""``ig status``: what of a campaign is current, what is out of date and why, and what bringing it up
to date costs — before anything runs.

It compares every job's spec as the config gives it now (``ig.campaign.specs``) with the spec the
workflow last wrote for that job (``results/<name>/specs/<job>/``): a job whose spec is unchanged is
current, one with no spec yet is new, one whose spec differs is out of date, listed with the fields
that changed (old → new). A change upstream shows as the upstream job's hash in the field that
names it (``checkpoint.spec``: the run was retrained). The cost is ``ig plan``'s estimate of the
jobs to redo. Run it where the workflow runs (paths are relative to that folder).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ig import campaign as campaign_mod
from ig.campaign import Campaign
from ig.utils.io import read_json


def flatten(spec: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` → ``{"a.b": 1}`` (lists stay values)."""
    out = {}
    for key, value in spec.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def changed_fields(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``field: old → new`` for every field that differs (``–`` where absent)."""
    a, b = flatten(old), flatten(new)
    show = lambda key, d: json.dumps(d[key]) if key in d else "–"  # noqa: E731
    return [
        f"{key}: {show(key, a)} → {show(key, b)}" for key in sorted(a.keys() | b.keys()) if a.get(key) != b.get(key)
    ]


def job_status(c: Campaign, job: str) -> tuple[str, list[str]]:
    """(``current`` | ``new`` | ``out of date``, the changed fields) of one job."""
    folder = Path(c.path("spec_dir", job=job))
    written = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if Path(c.specs.path(job)) in written:
        return "current", []
    if not written:
        return "new", []
    return "out of date", changed_fields(read_json(written[-1], "job spec"), c.specs(job))


def cost(c: Campaign, jobs: list[str]) -> dict[str, float]:
    """GPU-hours and disk (``ig plan``'s estimates) of redoing ``jobs``."""
    from ig.report.plan import plan

    p = plan(c)
    sets = {s["set"]: s for s in p["sample_sets"]}
    total = {"gpu_hours": 0.0, "disk_gb": 0.0}
    for job in jobs:
        kind, _, rest = job.partition("/")
        if kind == "run":
            total["gpu_hours"] += p["runs"][rest]["train_gpu_hours"]
        elif kind == "sample":
            s = sets[rest]
            total["gpu_hours"] += s["sample_gpu_hours"] + s["eval_gpu_hours"]
            total["disk_gb"] += s["disk_gb"]
        elif kind == "tuning":
            total["gpu_hours"] += p["tuning"][rest]["gpu_hours"]
            total["disk_gb"] += p["tuning"][rest]["disk_gb"]
        elif kind == "evaluation":
            total["gpu_hours"] += sum(s["eval_gpu_hours"] for s in sets.values())
    return total


def status(c: Campaign) -> dict[str, Any]:
    jobs = {job: job_status(c, job) for job in c.specs.jobs()}
    todo = [job for job, (state, _) in jobs.items() if state != "current"]
    return {
        "name": c.name,
        "jobs": {job: {"state": state, "changed": fields} for job, (state, fields) in jobs.items()},
        "todo": todo,
        "cost": cost(c, todo),
    }


def format_status(report: dict[str, Any]) -> str:
    jobs = report["jobs"]
    current = sum(j["state"] == "current" for j in jobs.values())
    lines = [f"# Status: {report['name']}", "", f"{current} of {len(jobs)} jobs current."]
    for state in ("out of date", "new"):
        names = [job for job, j in jobs.items() if j["state"] == state]
        if names:
            lines += ["", f"{state} ({len(names)}):"]
            for job in names:
                lines.append(f"  {job}")
                lines += [f"      {field}" for field in jobs[job]["changed"]]
    c = report["cost"]
    lines += [
        "",
        f"To bring it up to date: {len(report['todo'])} jobs with their dependents, about {c['gpu_hours']:.1f} "
        f"GPU-hours and {c['disk_gb']:.1f} GB of samples (ig plan's estimates). `snakemake -n` lists every job.",
    ]
    return "\n".join(lines) + "\n"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config", nargs="+", required=True, help="the campaign's config file(s), as given to snakemake --configfile"
    )
    p.add_argument("--json", action="store_true", help="print the status as JSON")


def run(args: argparse.Namespace) -> None:
    report = status(campaign_mod.load(args.config, dry_run=True))
    print(json.dumps(report, indent=1) if args.json else format_status(report), end="" if not args.json else "\n")
