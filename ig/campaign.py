"""A workflow config, interpreted: runs, milestones, sample sets, and where every file goes.

The Snakemake rules, ``ig table``, ``ig plot``, ``ig plan`` and ``ig tune`` all read the campaign
through this module, so the DAG and the reports agree on names and paths, and the logic is
testable without Snakemake. The config format is ``workflow/schemas/config.schema.yaml``.

Everything that can be checked before a job runs is checked here, when the workflow parses the
config (``snakemake -n`` included): each run's training settings, milestone order, names used
across sections, guidance that needs an intermediate head, dataset folders. It imports no torch,
so planning a campaign stays light on a login node.

Training seeds: a run with ``seeds: [0, 1, 2]`` stands for one training per seed, named
``<run>.s<seed>`` (``train.seed`` set accordingly); evaluations, tables and plots that name the
run mean all of them, and tables aggregate them.
"""

from __future__ import annotations

import itertools
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ig.errors import IGError
from ig.guidance import Guidance
from ig.models.sizes import model_options
from ig.sampling.settings import SamplingSettings
from ig.train.config import RunConfig
from ig.utils.io import read_yaml_mapping

SCHEMA = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"
GUIDANCE_EXTRAS = ("ag_run", "ag_milestone")  # guidance keys that name a weak model, not a Guidance field
DATASET_IMAGES = {"imagenet": 1_281_167, "fashion-mnist": 60_000}  # training images of each dataset

# Where every file of a campaign goes, under results/<name>/ (a contract with workflow/rules/*.smk,
# which take these patterns through Campaign.path, and with ig table / ig plot).
LAYOUT = {
    "campaign": "campaign.yaml",
    "autoencoder": "autoencoders/{latents}/config.json",
    "autoencoder_dir": "autoencoders/{latents}",
    "latents": "latents/{latents}",
    "latent_shard": "latents/{latents}/shard-{shard}.npz",
    "latent_manifest": "latents/{latents}/manifest.json",
    "run_config": "runs/{run}/run.yaml",
    "checkpoint": "runs/{run}/{milestone}.pt",
    "segment_workdir": "runs/{run}/work-{milestone}",
    "training_log": "runs/{run}/training.jsonl",
    "tensorboard": "runs/{run}/tensorboard",
    "milestone_grid": "runs/{run}/{milestone}.png",
    "samples": "samples/{run}/{milestone}/{guidance}/{labels}",
    "sample_manifest": "samples/{run}/{milestone}/{guidance}/{labels}/samples.json",
    "sample_grid": "samples/{run}/{milestone}/{guidance}/{labels}/grid.png",
    "metrics": "metrics/{run}/{milestone}/{guidance}/{labels}.json",
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
    "tuning_space": "tuning/{tuning}/space.yaml",
    "readme": "README.md",
    "toy2d": "toy2d",
    "toy2d_table": "toy2d/metrics.md",
    "toy2d_claims": "toy2d/claims.json",
    "plan": "plan.md",
}


def validate(config: dict[str, Any], schema_path: str | Path = SCHEMA) -> dict[str, Any]:
    """Check a config against the schema (filling defaults); the first problem as one line."""
    import jsonschema

    schema = yaml.safe_load(Path(schema_path).read_text())
    validator_cls = jsonschema.validators.extend(
        jsonschema.Draft202012Validator,
        {"properties": _fill_defaults(jsonschema.Draft202012Validator.VALIDATORS["properties"])},
    )
    error = jsonschema.exceptions.best_match(validator_cls(schema).iter_errors(config))
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path) or "<top level>"
        raise IGError(f"config: {where}: {error.message} (see config/README.md)")
    return config


def _fill_defaults(validate_properties):
    def properties(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = sub["default"]
        yield from validate_properties(validator, properties, instance, schema)

    return properties


def load(path: str | Path, dry_run: bool = False) -> Campaign:
    """The campaign of a config file (``dry_run``: for planning only, see :class:`Campaign`)."""
    return Campaign(validate(read_yaml_mapping(path, what="config")), dry_run)


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


class _Partial(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


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
        self._check(dry_run)

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
        return str(self.root / LAYOUT[key].format_map(_Partial(wildcards)))

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
        """The run's sampling settings: the campaign's, with the run's own ``sampling:`` keys on top."""
        own = self.runs[run].get("sampling", {})
        return SamplingSettings.from_dict({**self.sampling_defaults.to_dict(), **own})

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
        """The run's sampling settings, with the target's full count."""
        run, _ = self.tuning_run(target)
        full = self.config["tuning"][target]["num_samples"]
        return (
            self.sampling(run)
            if full is None
            else SamplingSettings.from_dict({**self.sampling(run).to_dict(), "num_samples": full})
        )

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
        """The sample sets a claim reads: its two settings, or (``steps_to_reach``) every milestone of
        ``a`` and the last of ``b``."""
        if claim["kind"] == "compare":
            return self.row_sets(claim["a"]) + self.row_sets(claim["b"])
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

    # --- checks --------------------------------------------------------------------------------
    def _check(self, dry_run: bool) -> None:
        """Names used across sections must exist and settings must be valid: caught here, before any
        job runs, with the one-line errors the commands themselves would give."""
        for target, spec in self.config["tuning"].items():
            where = f"config: tuning.{target}"
            try:
                self.tuning_space(target).candidates(spec["candidates"])
            except IGError as exc:
                raise IGError(f"{where}: {exc}") from None
            self._check_setting(spec, where)
        for name in self.guidance_settings:
            target = self.tuned_target(name)
            if target is not None:
                if len(self.guidance_settings[name]) > 1:
                    raise IGError(f"config: guidance.{name}: a tuned setting has only the key `tuned`")
                if target not in self.config["tuning"]:
                    raise IGError(f"config: guidance.{name}.tuned: unknown tuning target {target!r}")
                continue
            try:
                self.guidance(name)
            except IGError as exc:
                raise IGError(f"config: guidance.{name}: {exc}") from None
            weak = self.guidance_settings[name].get("ag_run")
            if weak is not None and weak not in self.runs:
                raise IGError(f"config: guidance.{name}.ag_run: unknown run {weak!r} (a run without seeds)")
        for run, spec in self.runs.items():
            where = f"config: runs.{self.group_of(run)}"
            if self.latents_of(run) not in self.config["latents"]:
                raise IGError(f"{where}: unknown latent set {self.latents_of(run)!r}")
            try:
                self.sampling(run)
                model_options(**self.model_config(run))
            except IGError as exc:
                raise IGError(f"{where}: {exc}") from None
            if "train" in spec:
                self.run_config(run)
                self._check_milestones(run, where)
        for i, ev in enumerate(self.config["evaluations"]):
            for key, known in (("runs", self.groups), ("guidance", self.guidance_settings)):
                unknown = [n for n in ([] if ev[key] == "all" else ev[key]) if n not in known]
                if unknown:
                    raise IGError(f"config: evaluations.{i}.{key}: unknown name {unknown[0]!r}")
            if isinstance(ev["milestones"], list):
                for run in self.members(ev["runs"]):
                    missing = [m for m in ev["milestones"] if m not in self.milestones(run)]
                    if missing:
                        raise IGError(
                            f"config: evaluations.{i}.milestones: run {run!r} has no milestone {missing[0]!r}"
                        )
        for table in self.config["tables"]:
            for j, row in enumerate(table["rows"]):
                self._check_setting(row["ours"], f"config: tables.{table['name']}.rows.{j}")
            for j, comparison in enumerate(table.get("comparisons", [])):
                for side in ("a", "b"):
                    self._check_setting(comparison[side], f"config: tables.{table['name']}.comparisons.{j}.{side}")
        for j, claim in enumerate(self.config["claims"]):
            for side in ("a", "b"):
                where, setting = f"config: claims.{j}.{side}", claim[side]
                if setting["run"] not in self.groups:
                    raise IGError(f"{where}: unknown run {setting['run']!r}")
                self._check_setting(setting, where)
        for s in self.sample_sets():
            if self.may_use_ig(s.guidance) and not self.has_head(s.run):
                raise IGError(
                    f"config: guidance {s.guidance!r} uses IG on run {self.group_of(s.run)!r}, whose model has no "
                    "intermediate head (ig_layer 0); evaluate it with guidance that has ig_scale 1"
                )
        self._check_dataset_roots(dry_run)

    def _check_setting(self, setting: dict, where: str) -> None:
        if setting["run"] not in self.groups:
            raise IGError(f"{where}: unknown run {setting['run']!r}")
        if self.milestone_of(setting) not in self.milestones(setting["run"]):
            raise IGError(f"{where}: run {setting['run']!r} has no milestone {setting['milestone']!r}")
        if setting.get("guidance", "none") not in self.guidance_settings:
            raise IGError(f"{where}: unknown guidance {setting['guidance']!r}")

    def _check_milestones(self, run: str, where: str) -> None:
        milestones = self.milestones(run)
        duplicates = sorted({m for m in milestones if milestones.count(m) > 1})
        if duplicates:
            raise IGError(f"{where}.milestones: {', '.join(duplicates)} listed twice; each milestone once")
        steps = [self.milestone_step(run, m) for m in milestones]
        for (a, sa), (b, sb) in itertools.pairwise(zip(milestones, steps, strict=True)):
            if sb <= sa:
                raise IGError(
                    f"{where}.milestones: {b} (step {sb}) does not come after {a} (step {sa}); "
                    "list milestones in increasing order"
                )

    def _check_dataset_roots(self, dry_run: bool) -> None:
        """A dataset folder that is not there stops a real run now, not when its job starts; a dry
        run (planning on another machine) only warns. Latents already encoded need no dataset."""
        datasets = [
            (f"latents.{name}.dataset", spec["dataset"], self.path("latent_manifest", latents=name))
            for name, spec in self.config["latents"].items()
        ]
        evaluation = self.config["evaluation"]
        if evaluation["extractor"] == "classifier" or not evaluation["reference"]:
            datasets.append(("evaluation.dataset", evaluation["dataset"], self.path("reference")))
        for where, dataset, product in datasets:
            root = dataset.get("root")
            if root and not os.path.isdir(root) and not os.path.exists(product):
                message = f"config: {where}.root: folder {root} does not exist on this machine; fix the path"
                if not dry_run:
                    raise IGError(message)
                print(f"warning: {message} (a dry run goes on)", file=sys.stderr)
