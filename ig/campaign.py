"""A workflow config, interpreted: runs, milestones, sample sets and where every file goes.

The Snakemake rules, ``ig table``, ``ig plot`` and ``ig plan`` all read the campaign through
this module, so the DAG and the reports agree on names and paths, and the logic is testable
without Snakemake. The config format is ``workflow/schemas/config.schema.yaml``.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ig.errors import IGError
from ig.guidance import Guidance
from ig.utils.io import read_yaml_mapping

SCHEMA = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"
LABELS = ("random", "balanced")
DEFAULT_SAMPLING = {
    "method": "sde",
    "steps": 250,
    "t_last": 0.04,
    "shift": 1.0,
    "num_samples": 50_000,
    "shard_size": 1000,
    "batch_size": 64,
    "precision": "fp32",
}
GUIDANCE_EXTRAS = ("ag_run", "ag_milestone")  # guidance keys that name a weak model, not a Guidance field


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


def load(path: str | Path) -> Campaign:
    return Campaign(validate(read_yaml_mapping(path, what="config")))


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


def milestone_target(milestone: str) -> tuple[str, int]:
    """``ep80`` → ("epoch", 80); ``it400000`` → ("step", 400000)."""
    m = re.fullmatch(r"(ep|it)(\d+)", milestone)
    if not m:
        raise IGError(f"milestone {milestone!r} must look like ep80 (epochs) or it400000 (iterations)")
    return ("epoch" if m.group(1) == "ep" else "step"), int(m.group(2))


class Campaign:
    """A validated workflow config with the derived quantities every stage needs."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.name: str = config["name"]
        self.root = Path("results") / self.name
        self.guidance_settings: dict[str, dict] = {"none": {}, **config["guidance"]}
        self._check_references()

    # --- runs and milestones -------------------------------------------------------------
    @property
    def runs(self) -> dict[str, dict]:
        return self.config["runs"]

    def is_imported(self, run: str) -> bool:
        return "import" in self.runs[run]

    def latents_of(self, run: str) -> str:
        """The latent set a run trains on (or, imported, whose autoencoder decodes its samples)."""
        spec = self.runs[run]
        return spec["import"]["latents"] if "import" in spec else spec["latents"]

    def milestones(self, run: str) -> list[str]:
        spec = self.runs[run]
        return [spec["import"].get("milestone", "ep0")] if self.is_imported(run) else list(spec["milestones"])

    def previous(self, run: str, milestone: str) -> str | None:
        """The milestone a training segment continues from (None for the first)."""
        ms = self.milestones(run)
        i = ms.index(milestone)
        return ms[i - 1] if i > 0 else None

    def model_config(self, run: str) -> dict[str, Any]:
        """``create_model`` keyword arguments of a run (trained or imported)."""
        spec = self.runs[run]
        if "import" in spec:
            return {"name": spec["import"]["model"], **spec["import"]["overrides"]}
        return dict(spec["train"]["model"])

    def sampling(self, run: str) -> dict[str, Any]:
        return {**DEFAULT_SAMPLING, **self.config["sampling"], **self.runs[run].get("sampling", {})}

    def guidance(self, name: str) -> Guidance:
        setting = {k: v for k, v in self.guidance_settings[name].items() if k not in GUIDANCE_EXTRAS}
        return Guidance.from_dict(setting)

    def weak_model(self, name: str) -> tuple[str, str] | None:
        """(run, milestone) of the autoguidance weak model of a guidance setting, if any."""
        setting = self.guidance_settings[name]
        if "ag_run" not in setting:
            return None
        run = setting["ag_run"]
        return run, setting.get("ag_milestone", self.milestones(run)[-1])

    # --- what to evaluate ----------------------------------------------------------------
    def sample_sets(self) -> list[SampleSet]:
        """Every sample set the ``evaluations`` list asks for, without duplicates, sorted."""
        sets = set()
        for ev in self.config["evaluations"]:
            runs = list(self.runs) if ev["runs"] == "all" else ev["runs"]
            guidance = list(self.guidance_settings) if ev["guidance"] == "all" else ev["guidance"]
            for run in runs:
                ms = self.milestones(run)
                chosen = (
                    ms if ev["milestones"] == "all" else ms[-1:] if ev["milestones"] == "last" else ev["milestones"]
                )
                for milestone, g, labels in itertools.product(chosen, guidance, ev["labels"]):
                    sets.add(SampleSet(run, milestone, g, labels))
        for row in self.table_rows():
            sets.add(self.row_set(row))
        return sorted(sets)

    def _chosen(self, run: str, milestones: str | list[str]) -> list[str]:
        ms = self.milestones(run)
        return {"all": ms, "last": ms[-1:]}.get(milestones, milestones) if isinstance(milestones, str) else milestones

    def table_rows(self) -> list[dict]:
        return [row for table in self.config.get("tables", []) for row in table["rows"]]

    @staticmethod
    def row_set(row: dict) -> SampleSet:
        ours = row["ours"]
        return SampleSet(ours["run"], ours["milestone"], ours.get("guidance", "none"), ours.get("labels", "random"))

    # --- paths (a contract with workflow/rules/*.smk) -------------------------------------
    def path(self, *parts: str) -> str:
        return str(self.root.joinpath(*parts))

    def checkpoint(self, run: str, milestone: str) -> str:
        return self.path("runs", run, f"{milestone}.pt")

    def samples_dir(self, s: SampleSet) -> str:
        return self.path("samples", s.run, s.milestone, s.guidance, s.labels)

    def metrics(self, s: SampleSet) -> str:
        return self.path("metrics", s.run, s.milestone, s.guidance, f"{s.labels}.json")

    # --- checks --------------------------------------------------------------------------
    def _check_references(self) -> None:
        """Names used across sections must exist: caught here, before any job runs."""
        for name in self.guidance_settings:
            self.guidance(name)  # raises on bad values
            weak = self.guidance_settings[name].get("ag_run")
            if weak is not None and weak not in self.runs:
                raise IGError(f"config: guidance.{name}.ag_run: unknown run {weak!r}")
        for i, ev in enumerate(self.config["evaluations"]):
            for key, known in (("runs", self.runs), ("guidance", self.guidance_settings)):
                if ev[key] != "all":
                    for name in ev[key]:
                        if name not in known:
                            raise IGError(
                                f"config: evaluations.{i}.{key}: unknown {key[:-1] if key == 'runs' else key} {name!r}"
                            )
            if isinstance(ev["milestones"], list):
                for run in self.runs if ev["runs"] == "all" else ev["runs"]:
                    for m in ev["milestones"]:
                        if m not in self.milestones(run):
                            raise IGError(f"config: evaluations.{i}.milestones: run {run!r} has no milestone {m!r}")
        for t in self.config.get("tables", []):
            for j, row in enumerate(t["rows"]):
                s = self.row_set(row)
                if s.run not in self.runs or s.milestone not in self.milestones(s.run):
                    raise IGError(f"config: tables.{t['name']}.rows.{j}: unknown run/milestone {s.run}/{s.milestone}")
                if s.guidance not in self.guidance_settings:
                    raise IGError(f"config: tables.{t['name']}.rows.{j}: unknown guidance {s.guidance!r}")
        for run in self.runs:
            if self.latents_of(run) not in self.config["latents"]:
                raise IGError(f"config: runs.{run}: unknown latent set {self.latents_of(run)!r}")
            for m in self.milestones(run):
                milestone_target(m)
