"""Everything about a campaign that can be checked before a job runs, checked when the workflow
parses the config (``snakemake -n`` included), with the one-line errors the commands themselves
would give: each run's training settings, milestone order, names used across sections, guidance
that needs an intermediate head, dataset folders."""

from __future__ import annotations

import itertools
import os
import sys
from typing import TYPE_CHECKING

from ig.errors import IGError
from ig.models.sizes import model_options

if TYPE_CHECKING:
    from ig.campaign import Campaign


def check(c: Campaign, dry_run: bool) -> None:
    """Names used across sections must exist and settings must be valid: caught here, before any
    job runs, with the one-line errors the commands themselves would give."""
    for target, spec in c.config["tuning"].items():
        where = f"config: tuning.{target}"
        try:
            c.tuning_space(target).candidates(spec["candidates"])
        except IGError as exc:
            raise IGError(f"{where}: {exc}") from None
        _check_setting(c, spec, where)
    for name in c.guidance_settings:
        target = c.tuned_target(name)
        if target is not None:
            if len(c.guidance_settings[name]) > 1:
                raise IGError(f"config: guidance.{name}: a tuned setting has only the key `tuned`")
            if target not in c.config["tuning"]:
                raise IGError(f"config: guidance.{name}.tuned: unknown tuning target {target!r}")
            continue
        try:
            c.guidance(name)
        except IGError as exc:
            raise IGError(f"config: guidance.{name}: {exc}") from None
        weak = c.guidance_settings[name].get("ag_run")
        if weak is not None and weak not in c.runs:
            raise IGError(f"config: guidance.{name}.ag_run: unknown run {weak!r} (a run without seeds)")
    for run, spec in c.runs.items():
        where = f"config: runs.{c.group_of(run)}"
        if c.latents_of(run) not in c.config["latents"]:
            raise IGError(f"{where}: unknown latent set {c.latents_of(run)!r}")
        try:
            c.sampling(run)
            model_options(**c.model_config(run))
        except IGError as exc:
            raise IGError(f"{where}: {exc}") from None
        if "train" in spec:
            c.run_config(run)
            _check_milestones(c, run, where)
    for i, ev in enumerate(c.config["evaluations"]):
        for key, known in (("runs", c.groups), ("guidance", c.guidance_settings)):
            unknown = [n for n in ([] if ev[key] == "all" else ev[key]) if n not in known]
            if unknown:
                raise IGError(f"config: evaluations.{i}.{key}: unknown name {unknown[0]!r}")
        if isinstance(ev["milestones"], list):
            for run in c.members(ev["runs"]):
                missing = [m for m in ev["milestones"] if m not in c.milestones(run)]
                if missing:
                    raise IGError(f"config: evaluations.{i}.milestones: run {run!r} has no milestone {missing[0]!r}")
    for table in c.config["tables"]:
        for j, row in enumerate(table["rows"]):
            _check_setting(c, row["ours"], f"config: tables.{table['name']}.rows.{j}")
        for j, comparison in enumerate(table.get("comparisons", [])):
            for side in ("a", "b"):
                _check_setting(c, comparison[side], f"config: tables.{table['name']}.comparisons.{j}.{side}")
    for name, plot in c.config["plots"].items():
        where = f"config: plots.{name}"
        for run in plot["runs"] if "runs" in plot else [plot["run"]]:
            if run not in c.groups:
                raise IGError(f"{where}: unknown run {run!r}")
        guidance = plot.get("guidance", "none")
        for g in [guidance] if isinstance(guidance, str) else guidance:
            if g not in c.guidance_settings:
                raise IGError(f"{where}.guidance: unknown guidance {g!r}; define it under guidance:")
    for j, claim in enumerate(c.config["claims"]):
        if claim["expect"] == "matches" and "margin" not in claim:
            raise IGError(
                f"config: claims.{j}: a 'matches' claim needs a margin (|a − b| that still counts as a match)"
            )
        if (claim["kind"] == "matched") != ("curve" in claim):
            raise IGError(
                f"config: claims.{j}: a curve (b's guidance settings to read b at a's {claim['match']}) "
                "belongs to, and is needed by, kind: matched"
            )
        if claim["kind"] == "matched" and claim["match"] == claim["metric"]:
            raise IGError(f"config: claims.{j}: match {claim['match']!r} is the compared metric; hold another fixed")
        for g in claim.get("curve", []):
            _check_setting(c, {**claim["b"], "guidance": g}, f"config: claims.{j}.curve")
        for side in ("a", "b"):
            where, setting = f"config: claims.{j}.{side}", claim[side]
            if setting["run"] not in c.groups:
                raise IGError(f"{where}: unknown run {setting['run']!r}")
            _check_setting(c, setting, where)
    for s in c.sample_sets():
        if c.may_use_ig(s.guidance) and not c.has_head(s.run):
            raise IGError(
                f"config: guidance {s.guidance!r} uses IG on run {c.group_of(s.run)!r}, whose model has no "
                "intermediate head (ig_layer 0); evaluate it with guidance that has ig_scale 1"
            )
    _check_dataset_roots(c, dry_run)


def _check_setting(c: Campaign, setting: dict, where: str) -> None:
    if setting["run"] not in c.groups:
        raise IGError(f"{where}: unknown run {setting['run']!r}")
    if c.milestone_of(setting) not in c.milestones(setting["run"]):
        raise IGError(f"{where}: run {setting['run']!r} has no milestone {setting['milestone']!r}")
    if setting.get("guidance", "none") not in c.guidance_settings:
        raise IGError(f"{where}: unknown guidance {setting['guidance']!r}")


def _check_milestones(c: Campaign, run: str, where: str) -> None:
    milestones = c.milestones(run)
    duplicates = sorted({m for m in milestones if milestones.count(m) > 1})
    if duplicates:
        raise IGError(f"{where}.milestones: {', '.join(duplicates)} listed twice; each milestone once")
    steps = [c.milestone_step(run, m) for m in milestones]
    for (a, sa), (b, sb) in itertools.pairwise(zip(milestones, steps, strict=True)):
        if sb <= sa:
            raise IGError(
                f"{where}.milestones: {b} (step {sb}) does not come after {a} (step {sa}); "
                "list milestones in increasing order"
            )


def _check_dataset_roots(c: Campaign, dry_run: bool) -> None:
    """A dataset folder that is not there stops a real run now, not when its job starts; a dry
    run (planning on another machine) only warns. Latents already encoded need no dataset."""
    datasets = [
        (f"latents.{name}.dataset", spec["dataset"], c.path("latent_manifest", latents=name))
        for name, spec in c.config["latents"].items()
    ]
    evaluation = c.config["evaluation"]
    if evaluation["extractor"] == "classifier" or not evaluation["reference"]:
        datasets.append(("evaluation.dataset", evaluation["dataset"], c.path("reference")))
    for where, dataset, product in datasets:
        root = dataset.get("root")
        if root and not os.path.isdir(root) and not os.path.exists(product):
            message = f"config: {where}.root: folder {root} does not exist on this machine; fix the path"
            if not dry_run:
                raise IGError(message)
            print(f"warning: {message} (a dry run goes on)", file=sys.stderr)
