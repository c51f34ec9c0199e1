"""A workflow config, interpreted: runs, milestones, sample sets, their job specs and file paths.

The Snakemake rules, ``ig table``, ``ig plot``, ``ig claims``, ``ig plan`` and ``ig status`` all
read the campaign through this package, so the DAG and the reports agree on names and paths, and
the logic is testable without Snakemake. By concern: ``config`` (schema and defaults),
``layout`` (every path), ``checks`` (what is checked when the workflow parses the config),
``specs`` (what decides each job's output). It imports no torch, so planning a campaign stays light
on a login node.

Training seeds: a run with ``seeds: [0, 1, 2]`` stands for one training per seed, named
``<run>.s<seed>`` (``train.seed`` set accordingly); evaluations, tables and plots that name the
run mean all of them, and tables aggregate them.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ig.campaign.checks import check
from ig.campaign.config import validate
from ig.campaign.layout import LAYOUT, layout_path, log_file
from ig.campaign.specs import JobSpecs
from ig.errors import IGError
from ig.guidance import Guidance
from ig.models.sizes import model_options
from ig.sampling.settings import SamplingSettings
from ig.train.config import EXECUTION_KEYS, RunConfig
from ig.utils.io import read_yaml_mapping

__all__ = [
    "LAYOUT",
    "TUNING_SEED_OFFSET",
    "Campaign",
    "SampleSet",
    "load",
    "milestone_target",
    "seed_member",
    "validate",
]
TUNING_SEED_OFFSET = 1_000_000  # ig tune samples from sampling seed + this: a stream no table reads
GUIDANCE_EXTRAS = ("ag_run", "ag_milestone")  # guidance keys that name a weak model, not a Guidance field
DATASET_IMAGES = {"imagenet": 1_281_167, "fashion-mnist": 60_000}  # training images of each dataset


def load(path: str | Path | list[str | Path], dry_run: bool = False) -> Campaign:
    """The campaign of a config file, of several merged as ``snakemake --configfile A B`` merges them
    (later files' keys over earlier ones', mapping by mapping), or of the workflow's campaign spec
    (``dry_run``: for planning only, see :class:`Campaign`)."""
    config: dict[str, Any] = {}
    for one in path if isinstance(path, list) else [path]:
        merge(config, read_yaml_mapping(one, what="config"))
    if config.get("kind") == "campaign":  # ig.campaign.specs
        config = config["config"]
    return Campaign(validate(config), dry_run)


def merge(base: dict[str, Any], update: dict[str, Any]) -> None:
    """``update`` into ``base``, recursively for mappings (Snakemake's rule for several config files)."""
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = value


@dataclass(frozen=True, order=True)
class SampleSet:
    """One sample set = one evaluation: a checkpoint sampled with one guidance and label mode."""

    run: str
    milestone: str
    guidance: str
    labels: str

    @property
    def key(self) -> str:
        return f"{self.run}/{self.milestone}/{self.guidance}/{self.labels}"

    @property
    def wildcards(self) -> dict[str, str]:
        return {"run": self.run, "milestone": self.milestone, "guidance": self.guidance, "labels": self.labels}


def milestone_target(milestone: str) -> tuple[str, int]:
    """``ep80`` → ("epoch", 80); ``it400000`` → ("step", 400000)."""
    m = re.fullmatch(r"(ep|it)(\d+)", milestone)
    if not m:
        raise IGError(f"milestone {milestone!r} must look like ep80 (epochs) or it400000 (iterations)")
    return ("epoch" if m.group(1) == "ep" else "step"), int(m.group(2))


def seed_member(run: str, seed: int) -> str:
    """The name of one training seed of a run: ``baseline`` seed 1 → ``baseline.s1``."""
    return f"{run}.s{seed}"


class Campaign:
    """A validated workflow config with the derived quantities every stage needs.

    ``dry_run``: the campaign is only planned here (``snakemake -n``, ``ig plan``), perhaps on another
    machine than the one that runs it, so a dataset folder missing here is a warning, not an error.
    """

    def __init__(self, config: dict[str, Any], dry_run: bool = False) -> None:
        self.config = config
        self.name: str = config["name"]
        self.root = Path("results") / self.name
        self.guidance_settings: dict[str, dict] = {"none": {}, **config["guidance"]}
        self.groups: dict[str, list[str]] = {}  # run as named in the config → its trained runs (seeds)
        self.runs: dict[str, dict] = {}
        for name, spec in config["runs"].items():
            self._add_run(name, spec)
        self.sampling_defaults = SamplingSettings.from_dict(config["sampling"])
        self.specs = JobSpecs(self)
        check(self, dry_run)

    def _add_run(self, name: str, spec: dict) -> None:
        seeds = spec.get("seeds")
        if seeds is None:
            self.groups[name] = [name]
            self.runs[name] = spec
            return
        if "train" not in spec:
            raise IGError(f"config: runs.{name}.seeds: only trained runs have training seeds")
        if len(set(seeds)) != len(seeds):
            raise IGError(f"config: runs.{name}.seeds lists a seed twice: {seeds}")
        if "seed" in spec["train"]:
            raise IGError(f"config: runs.{name}: give either seeds or train.seed, not both")
        self.groups[name] = [seed_member(name, s) for s in seeds]
        for seed, member in zip(seeds, self.groups[name], strict=True):
            if member in self.config["runs"]:
                raise IGError(f"config: runs.{name}: seed run {member!r} clashes with a run of that name")
            self.runs[member] = {**spec, "train": {**spec["train"], "seed": seed}, "group": name}

    # --- paths -----------------------------------------------------------------------------
    def path(self, key: str, **wildcards: Any) -> str:
        """``results/<name>/`` + the ``LAYOUT`` pattern of ``key``, with the given wildcards filled
        in (the others stay ``{wildcard}``, so that rules use the same call for their patterns)."""
        return layout_path(self.root, key, **wildcards)

    def log(self, rule: str, s: SampleSet) -> str:
        """The log of a sample set's ``sample`` or ``evaluate`` job."""
        return log_file(self.name, rule, f"{s.run}/{s.milestone}/{s.guidance}-{s.labels}")

    def checkpoint(self, run: str, milestone: str) -> str:
        return self.path("checkpoint", run=run, milestone=milestone)

    def metrics(self, s: SampleSet) -> str:
        return self.path("metrics", **s.wildcards)

    # --- runs and milestones ---------------------------------------------------------------
    def is_imported(self, run: str) -> bool:
        return "import" in self.runs[run]

    def group_of(self, run: str) -> str:
        """The run as the config names it (a seed run's base name)."""
        return self.runs[run].get("group", run)

    def latents_of(self, run: str) -> str:
        """The latent set a run trains on (or, imported, whose autoencoder decodes its samples)."""
        spec = self.runs[run]
        return spec["import"]["latents"] if "import" in spec else spec["latents"]

    def milestones(self, run: str) -> list[str]:
        spec = self.runs[self.groups[run][0]] if run in self.groups else self.runs[run]
        return [spec["import"].get("milestone", "ep0")] if "import" in spec else list(spec["milestones"])

    def previous(self, run: str, milestone: str) -> str | None:
        """The milestone a training segment continues from (None for the first)."""
        ms = self.milestones(run)
        i = ms.index(milestone)
        return ms[i - 1] if i > 0 else None

    def run_config(self, run: str) -> RunConfig:
        """The ``ig train`` run config of a trained run (checked: the one-line errors of ``ig train``)."""
        try:
            return RunConfig.from_dict({"name": run, **self.runs[run]["train"]})
        except IGError as exc:
            raise IGError(f"config: runs.{self.group_of(run)}.train: {exc}") from None

    def execution_settings(self, run: str) -> dict[str, Any]:
        """The run's training keys that do not change its weights (``EXECUTION_KEYS``): not in its
        spec, so that e.g. a smaller device batch for another GPU retrains nothing."""
        given = {k: v for k, v in self.runs[run]["train"].items() if k in EXECUTION_KEYS}
        return {"name": run, **given}

    def model_config(self, run: str) -> dict[str, Any]:
        """``create_model`` keyword arguments of a run (trained or imported)."""
        spec = self.runs[run]
        if "import" in spec:
            return {"name": spec["import"]["model"], **spec["import"]["overrides"]}
        return dict(spec["train"]["model"])

    def has_head(self, run: str) -> bool:
        """Whether the run's model has an intermediate head (what IG needs)."""
        return model_options(**self.model_config(run))["ig_layer"] > 0

    def steps_per_epoch(self, run: str) -> int:
        dataset = self.config["latents"][self.runs[run]["latents"]]["dataset"]
        images = dataset["limit"] or DATASET_IMAGES[dataset["name"]]
        return max(1, images // self.runs[run]["train"]["global_batch"])

    def milestone_step(self, run: str, milestone: str) -> int:
        unit, value = milestone_target(milestone)
        return value * self.steps_per_epoch(run) if unit == "epoch" else value

    def sampling(self, run: str) -> SamplingSettings:
        """The run's sampling settings: the campaign's, with the run's own ``sampling:`` keys on top.

        Each training seed of a run is sampled with its own noise (``DESIGN.md``, "Errors on
        metrics"): the i-th seed of every run from sampling seed ``seed + i``. So the i-th seeds of
        two runs stay paired, a single-seed run pairs with every run's first seed, and the spread
        over seeds of a difference holds the sampling noise as well as the training noise."""
        settings = {**self.sampling_defaults.to_dict(), **self.runs[run].get("sampling", {})}
        settings["seed"] += self.seed_index(run)
        return SamplingSettings.from_dict(settings)

    def seed_index(self, run: str) -> int:
        """A run's position among its run's training seeds (0 for a run without seeds)."""
        return self.groups[self.group_of(run)].index(run)

    def guidance(self, name: str) -> Guidance:
        """The guidance a named setting stands for (not for a tuned one: see :meth:`tuned_target`)."""
        if self.tuned_target(name):
            raise IGError(f"guidance {name!r} is tuned ({self.tuned_target(name)}): known only once `ig tune` ran")
        setting = {k: v for k, v in self.guidance_settings[name].items() if k not in GUIDANCE_EXTRAS}
        return Guidance.from_dict(setting)

    def tuned_target(self, name: str) -> str | None:
        """The tuning target whose chosen setting a guidance entry ``{tuned: <target>}`` stands for."""
        return self.guidance_settings[name].get("tuned")

    def tuning_space(self, target: str):
        """The :class:`ig.tuning.Space` of a tuning target."""
        from ig.tuning import Space

        spec = self.config["tuning"][target]
        return Space.from_dict(spec["space"], spec["fixed"])

    def tuning_run(self, target: str) -> tuple[str, str]:
        """(run, milestone) whose checkpoint a tuning target tunes (a run with seeds: its first seed)."""
        setting = self.config["tuning"][target]
        return self.groups[setting["run"]][0], self.milestone_of(setting)

    def tuning_sampling(self, target: str) -> SamplingSettings:
        """The run's sampling settings, with the target's full count, on a held-out stream of sampling
        seeds (``TUNING_SEED_OFFSET``): the tuned setting is chosen on other samples than the ones it
        is reported on, so its reported FID carries no winner's curse."""
        run, _ = self.tuning_run(target)
        settings = self.sampling(run).to_dict()
        settings["seed"] += TUNING_SEED_OFFSET
        if self.config["tuning"][target]["num_samples"] is not None:
            settings["num_samples"] = self.config["tuning"][target]["num_samples"]
        return SamplingSettings.from_dict(settings)

    def may_use_ig(self, name: str) -> bool:
        """Whether a guidance setting (or, tuned, any point of its space) applies IG."""
        target = self.tuned_target(name)
        if target is None:
            return self.guidance(name).ig_scale != 1.0
        space = self.tuning_space(target)
        return (
            space.fixed.ig_scale != 1.0
            or any(v != 1.0 for v in space.values.get("ig_scale", ()))
            or "ig_scale" in space.ranges
        )

    def weak_model(self, name: str) -> tuple[str, str] | None:
        """(run, milestone) of the autoguidance weak model of a guidance setting, if any."""
        setting = self.guidance_settings[name]
        if "ag_run" not in setting:
            return None
        run = setting["ag_run"]
        return run, setting.get("ag_milestone", self.milestones(run)[-1])

    # --- what to evaluate --------------------------------------------------------------------
    def members(self, names: str | list[str]) -> list[str]:
        """The runs that config names (``all``, or run names as in the config) stand for."""
        chosen = list(self.groups) if names == "all" else names
        return [member for name in chosen for member in self.groups[name]]

    def sample_sets(self) -> list[SampleSet]:
        """Every sample set the ``evaluations`` list and the tables ask for, without duplicates, sorted."""
        sets = set()
        for ev in self.config["evaluations"]:
            guidance = list(self.guidance_settings) if ev["guidance"] == "all" else ev["guidance"]
            for run in self.members(ev["runs"]):
                ms = self.milestones(run)
                chosen = (
                    ev["milestones"]
                    if isinstance(ev["milestones"], list)
                    else {"all": ms, "last": ms[-1:]}[ev["milestones"]]
                )
                for milestone, g, labels in itertools.product(chosen, guidance, ev["labels"]):
                    sets.add(SampleSet(run, milestone, g, labels))
        for row in self.table_rows():
            sets.update(self.row_sets(row["ours"]))
        for table in self.config["tables"]:
            for comparison in table.get("comparisons", []):
                sets.update(self.row_sets(comparison["a"]) + self.row_sets(comparison["b"]))
        for claim in self.config["claims"]:
            sets.update(self.claim_sets(claim))
        return sorted(sets)

    def claim_sets(self, claim: dict) -> list[SampleSet]:
        """The sample sets a claim reads: its two settings; (``matched``) ``a`` and b's settings along
        its ``curve``; (``steps_to_reach``) every milestone of ``a`` and the last of ``b``."""
        if claim["kind"] == "compare":
            return self.row_sets(claim["a"]) + self.row_sets(claim["b"])
        if claim["kind"] == "matched":
            return self.row_sets(claim["a"]) + [
                s for g in claim["curve"] for s in self.row_sets({**claim["b"], "guidance": g})
            ]
        a, b = claim["a"], claim["b"]
        sets = [s for m in self.milestones(a["run"]) for s in self.row_sets({**a, "milestone": m})]
        return sets + self.row_sets({**b, "milestone": "last"})

    def table_rows(self) -> list[dict]:
        return [row for table in self.config["tables"] for row in table["rows"]]

    def row_sets(self, setting: dict) -> list[SampleSet]:
        """The sample sets of a table cell's setting: one per training seed of its run."""
        guidance, labels = setting.get("guidance", "none"), setting.get("labels", "random")
        milestone = self.milestone_of(setting)
        return [SampleSet(run, milestone, guidance, labels) for run in self.groups[setting["run"]]]

    def milestone_of(self, setting: dict) -> str:
        """A setting's milestone; ``last`` (or none given) is the run's last one."""
        milestone = setting.get("milestone", "last")
        return self.milestones(setting["run"])[-1] if milestone == "last" else milestone
