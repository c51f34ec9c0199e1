# Config validation and the input functions every rule uses. The campaign logic itself
# (milestones, sample sets, paths) is ig.campaign, shared with `ig table`/`ig plot`/`ig plan`.
import json
import os
import re
import shlex
import sys

import yaml

from ig.campaign import Campaign, milestone_target, validate
from ig.errors import IGError
from ig.utils.io import write_text_if_changed

try:
    C = Campaign(validate(config, workflow.source_path("../schemas/config.schema.yaml")))
except IGError as exc:
    raise WorkflowError(str(exc)) from None

R = str(C.root)
ASSETS = config["assets_dir"]
SETS = C.sample_sets()
CAMPAIGN = f"{R}/campaign.yaml"
PAPER_NUMBERS = os.path.join(workflow.basedir, "results", "paper", "numbers.csv")  # tracked, beside the Snakefile

# The resolved config (defaults filled in) and each run's training config are written at parse
# time, and only when their content changes: their mtime then tells Snakemake exactly when the
# tables (campaign.yaml) or a run's checkpoints (run.yaml) are out of date.
write_text_if_changed(CAMPAIGN, yaml.safe_dump(config, sort_keys=False))
for _run, _spec in C.runs.items():
    if "train" in _spec:
        write_text_if_changed(f"{R}/runs/{_run}/run.yaml", yaml.safe_dump({"name": _run, **_spec["train"]}, sort_keys=False))


# `snakemake -n` prints what the campaign will cost (jobs, estimated GPU-hours) before the DAG.
if any(arg in ("-n", "--dry-run", "--dryrun") or re.fullmatch(r"-[A-Za-z]*n[A-Za-z]*", arg) for arg in sys.argv[1:]):
    from ig.report.plan import format_plan, plan

    print(format_plan(plan(C)), file=sys.stderr)


wildcard_constraints:
    run=r"[A-Za-z0-9_.-]+",
    milestone=r"(ep|it)\d+",
    guidance=r"[A-Za-z0-9_.+-]+",
    labels=r"random|balanced",
    shard=r"\d{5}",


def final_outputs():
    outputs = [C.metrics(s) for s in SETS]
    outputs += expand(f"{R}/tables/{{table}}.md", table=[t["name"] for t in config["tables"]])
    if config["tables"] or config["plots"]:
        outputs.append(f"{R}/plots/done.json")
    if config["toy2d"].get("enabled", True):
        outputs.append(f"{R}/toy2d/metrics.md")
    return outputs


# --- data ---------------------------------------------------------------------------------
wildcard_constraints:
    latents="|".join(re.escape(name) for name in config["latents"]),


def dataset_args(dataset: dict, resolution: bool = True) -> str:
    args = f"--dataset {dataset['name']}"
    if resolution:
        args += f" --resolution {dataset['resolution']}"
    if dataset["root"]:
        args += f" --data-root {shlex.quote(dataset['root'])}"
    return args


def latent_spec(wildcards) -> dict:
    return config["latents"][wildcards.latents]


def autoencoder_input(wildcards):
    """The tiny autoencoder is trained by the workflow; the others are fetched assets."""
    if latent_spec(wildcards)["autoencoder"]["kind"] == "tiny":
        return f"{R}/autoencoders/{wildcards.latents}/config.json"
    return []


def autoencoder_arg(wildcards) -> str:
    ae = latent_spec(wildcards)["autoencoder"]
    path = f"{R}/autoencoders/{wildcards.latents}" if ae["kind"] == "tiny" else ae["path"]
    return f"--autoencoder-kind {ae['kind']} --autoencoder {path}"


def encode_args(wildcards) -> str:
    spec = latent_spec(wildcards)
    args = f"{dataset_args(spec['dataset'])} {autoencoder_arg(wildcards)} --format {spec['format']}"
    args += f" --num-shards {spec['num_shards']} --assets-dir {ASSETS}"
    if spec["dataset"]["limit"]:
        args += f" --limit {spec['dataset']['limit']}"
    return args


def latent_shards(wildcards):
    shards = [f"{i:05d}" for i in range(latent_spec(wildcards)["num_shards"])]
    return expand(f"{R}/latents/{wildcards.latents}/shard-{{shard}}.npz", shard=shards)


def flags(options: dict) -> str:
    """A config mapping as command-line flags: {max_steps: 5} -> --max-steps 5."""
    return " ".join(f"--{key.replace('_', '-')} {value}" for key, value in options.items())


# --- training -----------------------------------------------------------------------------
def segment_inputs(wildcards):
    latents = C.latents_of(wildcards.run)
    inputs = {"run_config": f"{R}/runs/{wildcards.run}/run.yaml", "latents": f"{R}/latents/{latents}/manifest.json"}
    prev = C.previous(wildcards.run, wildcards.milestone)
    if prev is not None:
        inputs["init"] = C.checkpoint(wildcards.run, prev)
    return inputs


def ig_launcher(gpus: int) -> str:
    """`ig`, or one `ig` process per GPU through torchrun (one node; see profiles/slurm for srun)."""
    return "ig" if gpus == 1 else f"torchrun --standalone --nproc_per_node={gpus} -m ig"


def segment_args(wildcards, input):
    unit, value = milestone_target(wildcards.milestone)
    args = f"--until-{unit} {value}"
    if "init" in input.keys():
        args += f" --init {input.init}"
    return args


def runs_regex(imported: bool) -> str:
    """A wildcard constraint matching exactly the trained (or the imported) runs, so that the
    training and import rules never compete for the same checkpoint."""
    names = [re.escape(r) for r in C.runs if C.is_imported(r) == imported]
    return "|".join(names) if names else "(?!)"


def import_args(wildcards):
    spec = config["runs"][wildcards.run]["import"]
    ae = config["latents"][spec["latents"]]["autoencoder"]
    unit, value = milestone_target(wildcards.milestone)
    args = f"--model {spec['model']} --asset {spec['asset']} --assets-dir {ASSETS} --autoencoder {ae['kind']}:{ae['path']}"
    args += f" --epoch {value}" if unit == "epoch" else ""
    if spec["overrides"]:
        args += f" --overrides {shlex.quote(json.dumps(spec['overrides']))}"
    return args


# --- sampling -----------------------------------------------------------------------------
def sample_inputs(wildcards):
    inputs = {"checkpoint": C.checkpoint(wildcards.run, wildcards.milestone)}
    weak = C.weak_model(wildcards.guidance)
    if weak is not None:
        inputs["weak"] = C.checkpoint(*weak)
    latents = C.latents_of(wildcards.run)
    if config["latents"][latents]["autoencoder"]["kind"] == "tiny":
        inputs["autoencoder"] = f"{R}/autoencoders/{latents}/config.json"
    elif config["assets"]:
        inputs["assets"] = FETCHED
    return inputs


def sample_args(wildcards, input):
    s = C.sampling(wildcards.run)
    g = C.guidance(wildcards.guidance)
    args = [
        f"--num-samples {s['num_samples']} --shard-size {s['shard_size']} --batch-size {s['batch_size']}",
        f"--method {s['method']} --steps {s['steps']} --t-last {s['t_last']} --shift {s['shift']}",
        f"--precision {s['precision']} --labels {wildcards.labels}",
        f"--ig-scale {g.ig_scale} --ig-interval {g.ig_interval[0]} {g.ig_interval[1]}",
        f"--cfg-scale {g.cfg_scale} --cfg-interval {g.cfg_interval[0]} {g.cfg_interval[1]}",
        f"--ag-scale {g.ag_scale} --ag-interval {g.ag_interval[0]} {g.ag_interval[1]}",
        f"--assets-dir {ASSETS}",
    ]
    if "weak" in input.keys():
        args.append(f"--ag-checkpoint {input.weak}")
    return " ".join(args)


# --- evaluation ---------------------------------------------------------------------------
FETCHED = f"{ASSETS}/.fetched-{config['name']}"  # the fetch_assets stamp: every asset is there


def extractor_input(wildcards=None):
    if config["evaluation"]["extractor"] == "classifier":
        return f"{R}/classifier.pt"
    return FETCHED


def extractor_arg() -> str:
    if config["evaluation"]["extractor"] == "classifier":
        return f"classifier:{R}/classifier.pt"
    return f"inception:{ASSETS}/torch-fidelity/weights-inception-2015-12-05-6726825d.pth"


def assets_input(wildcards=None):
    """Rules that read fetched assets depend on the stamp of the local fetch_assets rule."""
    return FETCHED if config["assets"] else []
