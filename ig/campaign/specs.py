"""Job specs: for every job of a campaign, the canonical content of what decides its output.

A spec is a JSON object with sorted keys and normalised numbers (``2`` and ``2.0`` are one value),
so reordering, reformatting or commenting a config changes no spec. A spec names the specs of the
jobs it reads by their hashes (a sample set names its checkpoint's run spec, an evaluation its
reference's), so a change upstream changes every spec below it, and a spec's hash alone says
whether a result is current.

Where the workflow keeps them (``DESIGN.md``, "Job specs"): ``results/<name>/specs/<job>/<hash>.json``.
A rule takes its job's spec path as an input; when that path does not exist yet, the local rule
``spec`` writes it and removes the job's older specs. So Snakemake reruns a job exactly when its
spec changed, a dry run plans the same jobs as the real run, and nothing depends on when a config
file was saved. Commands read their settings from the spec (one object, not flags rebuilt on each
side) and record its hash in what they write, so tables refuse a result whose spec is not the
config's current one.

The jobs (``job`` keys):

==========================================  =====================================================
``campaign``                                tables, plots, claims, plan: the whole config
``autoencoder/<latents>``                   the tiny autoencoder of a latent set
``latents/<latents>``                       a latent set's shards and manifest
``run/<run>``                               every training segment of a trained run
``import/<run>``                            a released checkpoint, converted
``classifier``                              the in-domain feature network
``reference``                               the reference statistics
``evaluation``                              every evaluation: features, metric settings
``sample/<run>/<milestone>/<guidance>/<labels>``  one sample set
``tuning/<tuning>``                         one ``ig tune`` target
``toy2d``                                   the 2D toy experiment
==========================================  =====================================================
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ig.errors import IGError
from ig.train.config import EXECUTION_KEYS
from ig.utils.io import read_json

if TYPE_CHECKING:
    from ig.campaign import Campaign, SampleSet

SPEC_FORMAT = 1
HASH_LENGTH = 16


def canonical(value: Any) -> Any:
    """``value`` with numbers normalised (an integral float is an int) and mappings' keys sorted."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            return int(value)
        return value
    if isinstance(value, Mapping):
        return {str(k): canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, list | tuple):
        return [canonical(v) for v in value]
    raise TypeError(f"a job spec holds JSON values only, got {type(value).__name__}")


def spec_hash(spec: Mapping[str, Any]) -> str:
    """The hash of a spec's canonical content (what its file is named after)."""
    text = json.dumps(canonical(spec), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:HASH_LENGTH]


def spec_text(spec: Mapping[str, Any]) -> str:
    return json.dumps(canonical(spec), sort_keys=True, indent=1) + "\n"


def read_spec(path: str | Path, kind: str) -> dict[str, Any]:
    """A spec file written by the workflow, checked to be of ``kind`` and intact (its name is its hash)."""
    spec = read_json(path, what=f"{kind} job spec")
    if spec.get("kind") != kind or spec_hash(spec) != Path(path).stem:
        raise IGError(f"{path} is not an intact {kind} job spec; delete it and rerun the workflow to rewrite it")
    return spec


def write_spec(path: str | Path, spec: Mapping[str, Any]) -> None:
    """Write a job's spec at ``path`` (named after its hash) and remove the job's older specs."""
    from ig.utils.io import write_text_if_changed

    path = Path(path)
    if spec_hash(spec) != path.stem:
        raise IGError(f"{path}: the config changed while the workflow ran; rerun it")
    write_text_if_changed(path, spec_text(spec))
    for old in path.parent.glob("*.json"):
        if old != path:
            old.unlink()


class JobSpecs:
    """The spec of every job of a campaign (computed once each)."""

    def __init__(self, campaign: Campaign) -> None:
        self.c = campaign
        self._cache: dict[str, dict[str, Any]] = {}

    def __call__(self, job: str) -> dict[str, Any]:
        if job not in self._cache:
            kind, _, rest = job.partition("/")
            build = getattr(self, f"_{kind}", None)
            if build is None:
                raise IGError(f"unknown job {job!r}")
            args = rest.split("/") if rest else []
            self._cache[job] = canonical({"kind": kind, "format": SPEC_FORMAT, **build(*args)})
        return self._cache[job]

    def hash(self, job: str) -> str:
        return spec_hash(self(job))

    def path(self, job: str) -> str:
        return self.c.path("spec", job=job, hash=self.hash(job))

    def jobs(self) -> list[str]:
        """Every job of the campaign that has a spec."""
        c = self.c
        jobs = ["campaign", "evaluation", "reference"]
        if c.config["evaluation"]["extractor"] == "classifier":
            jobs.append("classifier")
        for name, spec in c.config["latents"].items():
            if spec["autoencoder"]["kind"] == "tiny":
                jobs.append(f"autoencoder/{name}")
            jobs.append(f"latents/{name}")
        jobs += [("import/" if c.is_imported(run) else "run/") + run for run in c.runs]
        jobs += [sample_job(s) for s in c.sample_sets()]
        jobs += [f"tuning/{t}" for t in c.config["tuning"]]
        if c.config["toy2d"]["enabled"]:
            jobs.append("toy2d")
        return jobs

    # --- one builder per kind of job: what decides its output ------------------------------
    def _campaign(self) -> dict[str, Any]:
        """The whole config, less the runs' execution keys (no table, plot or claim reads them)."""
        runs = {
            name: {**run, "train": {k: v for k, v in run["train"].items() if k not in EXECUTION_KEYS}}
            if "train" in run
            else run
            for name, run in self.c.config["runs"].items()
        }
        return {"config": {**self.c.config, "runs": runs}}

    def _autoencoder(self, latents: str) -> dict[str, Any]:
        spec = self.c.config["latents"][latents]
        return {"dataset": spec["dataset"], "train": spec["autoencoder"]["train"]}

    def _latents(self, latents: str) -> dict[str, Any]:
        spec = self.c.config["latents"][latents]
        ae = spec["autoencoder"]
        trained = self.hash(f"autoencoder/{latents}") if ae["kind"] == "tiny" else None
        return {
            "dataset": spec["dataset"],
            "autoencoder": {"kind": ae["kind"], "path": ae["path"], "trained": trained},
            "format": spec["format"],
            "num_shards": spec["num_shards"],
        }

    def _run(self, run: str) -> dict[str, Any]:
        """What a trained run's weights depend on: its training settings except the execution keys
        (which may change between segments) and its latents."""
        train = {k: v for k, v in self.c.run_config(run).to_dict().items() if k not in EXECUTION_KEYS}
        return {"train": train, "latents": self.hash(f"latents/{self.c.latents_of(run)}")}

    def _import(self, run: str) -> dict[str, Any]:
        spec = self.c.runs[run]["import"]
        ae = self.c.config["latents"][spec["latents"]]["autoencoder"]
        return {"import": spec, "autoencoder": {"kind": ae["kind"], "path": ae["path"]}}

    def _classifier(self) -> dict[str, Any]:
        evaluation = self.c.config["evaluation"]
        return {"dataset": evaluation["dataset"], "train": evaluation["classifier"]}

    def _features(self) -> dict[str, Any]:
        """The feature network every metric is computed in."""
        if self.c.config["evaluation"]["extractor"] == "classifier":
            return {"kind": "classifier", "classifier": self.hash("classifier")}
        return {"kind": "inception"}

    def _reference(self) -> dict[str, Any]:
        evaluation = self.c.config["evaluation"]
        source = {"images": evaluation["reference"]} if evaluation["reference"] else {"dataset": evaluation["dataset"]}
        return {"source": source, "features": self._features(), "pr_images": evaluation["reference_images"]}

    def _evaluation(self) -> dict[str, Any]:
        return {
            "features": self._features(),
            "reference": self.hash("reference"),
            "metrics": self.c.config["evaluation"]["metrics"],
        }

    def checkpoint(self, run: str, milestone: str) -> dict[str, Any]:
        """A checkpoint's identity: its run's spec and its milestone."""
        kind = "import" if self.c.is_imported(run) else "run"
        return {"run": run, "milestone": milestone, "spec": self.hash(f"{kind}/{run}")}

    def _sample(self, run: str, milestone: str, guidance: str, labels: str) -> dict[str, Any]:
        c = self.c
        target = c.tuned_target(guidance)
        weak = c.weak_model(guidance)
        return {
            "checkpoint": self.checkpoint(run, milestone),
            "guidance": {"tuned": self.hash(f"tuning/{target}")} if target else c.guidance(guidance).to_dict(),
            "weak_checkpoint": self.checkpoint(*weak) if weak else None,
            "sampling": c.sampling(run).to_dict(),
            "labels": labels,
        }

    def _tuning(self, target: str) -> dict[str, Any]:
        c = self.c
        spec = c.config["tuning"][target]
        return {
            "checkpoint": self.checkpoint(*c.tuning_run(target)),
            "space": spec["space"],
            "fixed": spec["fixed"],
            "search": {key: spec[key] for key in ("eta", "min_samples", "candidates", "extend")},
            "sampling": c.tuning_sampling(target).to_dict(),
            "features": self._features(),
            "reference": self.hash("reference"),
        }

    def _toy2d(self) -> dict[str, Any]:
        return {"toy2d": self.c.config["toy2d"]}


def sample_job(s: SampleSet) -> str:
    return f"sample/{s.key}"
