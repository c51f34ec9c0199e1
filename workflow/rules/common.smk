# Config validation and the input functions every rule uses. The campaign itself (runs,
# milestones, sample sets, and the path of every file) is ig.campaign, shared with `ig table`,
# `ig plot`, `ig plan` and `ig tune`; rules take their paths from C.path.
import functools
import json
import os
import re
import shlex
import subprocess
import sys

from ig.campaign import Campaign, SampleSet, milestone_target, validate
from ig.campaign.layout import benchmark_file, log_file
from ig.campaign.specs import sample_job, write_spec
from ig.errors import IGError

DRY_RUN = any(
    arg in ("-n", "--dry-run", "--dryrun") or re.fullmatch(r"-[A-Za-z]*n[A-Za-z]*", arg) for arg in sys.argv[1:]
)

try:
    C = Campaign(
        validate(config, workflow.source_path("../schemas/config.schema.yaml")),
        dry_run=DRY_RUN or "--lint" in sys.argv,
    )
except IGError as exc:
    raise WorkflowError(str(exc)) from None

ASSETS = config["assets_dir"]
FETCHED = f"{ASSETS}/.fetched-{config['name']}"  # the fetch_assets stamp: every asset is there
SETS = C.sample_sets()
PAPER_NUMBERS = workflow.source_path("../../results/paper/numbers.csv")


def log_path(rule: str, name: str) -> str:
    return log_file(config["name"], rule, name)


def benchmark_path(rule: str, name: str) -> str:
    return benchmark_file(config["name"], rule, name)


def q(value) -> str:
    """A config value quoted for the shell (paths with spaces, JSON)."""
    return shlex.quote(str(value))


# Job specs (ig.campaign.specs): every rule takes the spec of what decides its output as an input,
# at a path named after the spec's hash. A changed spec is a new path, which the local rule `spec`
# (spec.smk) writes: so a job reruns exactly when its spec changed, and the dry run plans the same
# jobs as the real run. Reformatting or reordering the config changes no spec.
def spec(job: str) -> str:
    """Path of a job's spec (the job's key, e.g. ``sample/ig/ep8/ig2/random``)."""
    return C.specs.path(job)


def spec_of(pattern: str):
    """An input function: the spec of the job named by ``pattern`` with the rule's wildcards."""
    return lambda wildcards: spec(pattern.format(**wildcards))


def campaign_spec(wildcards=None) -> str:
    return spec("campaign")


# Guard rail: `--forcerun train_segment` (or --forceall) replans every finished segment of every
# run (on the paper ~1,260 GPU-hours). A real run that would do so stops here with one line, unless
# IG_ALLOW_RETRAIN=1; a dry run (the preview) goes on. README: how to redo one segment or one run.
def forced_rules(argv: list[str]) -> set[str]:
    """The rules that --forcerun/-R name, or {"*"} for --forceall/-F."""
    forced, taking = set(), False
    for arg in argv:
        if arg in ("--forceall", "-F"):
            return {"*"}
        if arg.startswith("--forcerun="):
            forced.update(arg.split("=", 1)[1].split(","))
        taking = arg in ("--forcerun", "-R") or (taking and not arg.startswith("-"))
        if taking and not arg.startswith("-"):
            forced.add(arg)
    return forced


def check_forced_retraining() -> None:
    forced = forced_rules(sys.argv[1:])
    if DRY_RUN or not ({"*", "train_segment"} & forced) or os.environ.get("IG_ALLOW_RETRAIN") == "1":
        return
    done = [(run, m) for run in C.runs if not C.is_imported(run) for m in C.milestones(run)]
    done = [(run, m) for run, m in done if os.path.exists(C.checkpoint(run, m))]
    if done:
        raise WorkflowError(
            f"this would retrain {len(done)} finished training segment(s); to redo one segment or run see the "
            "README ('Rerunning what failed'), preview with -n, or set IG_ALLOW_RETRAIN=1 to go on"
        )


if not workflow.remote_exec:
    check_forced_retraining()


# Time limits from the plan (ig.report.plan): each GPU job with an estimate requests its estimated
# wall time with a margin, so the profile's limits follow from the plan; `ig plan` (and the dry run)
# warns where one exceeds the partition's longest (IG_SLURM_MAX_MINUTES).
@functools.cache
def campaign_plan() -> dict:
    from ig.report.plan import plan

    return plan(C)


def planned_runtime(kind: str):
    """A resources function: the time limit in minutes of a job of this kind (the plan's name for
    its rule), sized from its estimate."""

    def minutes(wildcards) -> int:
        from ig.report.plan import job_hours, runtime_minutes

        if kind == "train_segment":
            key = f"{wildcards.run}/{wildcards.milestone}"
        elif kind == "tune":
            key = wildcards.tuning
        else:
            key = SampleSet(**wildcards).key
        return runtime_minutes(job_hours(campaign_plan(), kind, key))

    return minutes


# `snakemake -n` prints what the campaign will cost (jobs, estimated GPU-hours) before the DAG.
if DRY_RUN:
    from ig.report.plan import format_plan

    print(format_plan(campaign_plan()), file=sys.stderr)


wildcard_constraints:
    run=r"[A-Za-z0-9_.-]+",
    milestone=r"(ep|it)\d+",
    guidance=r"[A-Za-z0-9_.+-]+",
    labels=r"random|balanced",
    shard=r"\d{5}",


def report_intro() -> str:
    intro = C.path("report_intro")
    return os.path.abspath(intro) if os.path.exists(intro) else workflow.source_path("../report/workflow.rst")


def final_outputs():
    outputs = [C.metrics(s) for s in SETS]
    outputs += [C.path("table", table=t["name"]) for t in config["tables"]]
    if config["tables"] or config["plots"]:
        outputs.append(C.path("plots_done"))
    if config["toy2d"]["enabled"]:
        outputs.append(C.path("toy2d_table"))
    if config["claims"]:
        outputs.append(C.path("readme"))
    return outputs


# --- data ---------------------------------------------------------------------------------
wildcard_constraints:
    latents="|".join(re.escape(name) for name in config["latents"]),


def dataset_args(dataset: dict, resolution: bool = True) -> str:
    args = f"--dataset {dataset['name']}"
    if resolution:
        args += f" --resolution {dataset['resolution']}"
    if dataset["root"]:
        args += f" --data-root {q(dataset['root'])}"
    return args


def latent_spec(wildcards) -> dict:
    return config["latents"][wildcards.latents]


def autoencoder_input(wildcards):
    """The tiny autoencoder is trained by the workflow; the others are fetched assets."""
    if latent_spec(wildcards)["autoencoder"]["kind"] == "tiny":
        return C.path("autoencoder", latents=wildcards.latents)
    return []


def encode_args(wildcards) -> str:
    spec = latent_spec(wildcards)
    ae = spec["autoencoder"]
    path = C.path("autoencoder_dir", latents=wildcards.latents) if ae["kind"] == "tiny" else ae["path"]
    args = f"{dataset_args(spec['dataset'])} --autoencoder-kind {ae['kind']} --autoencoder {q(path)}"
    args += f" --format {spec['format']} --num-shards {spec['num_shards']} --assets-dir {q(ASSETS)}"
    if spec["dataset"]["limit"]:
        args += f" --limit {spec['dataset']['limit']}"
    return args


def latent_shards(wildcards):
    count = latent_spec(wildcards)["num_shards"]
    return [C.path("latent_shard", latents=wildcards.latents, shard=f"{i:05d}") for i in range(count)]


def flags(options: dict) -> str:
    """A config mapping as command-line flags: {max_steps: 5} -> --max-steps 5; a list gives one
    word per item, true a bare switch, false nothing."""

    def flag(key: str, value) -> str:
        name = f"--{key.replace('_', '-')}"
        if isinstance(value, bool):
            return name if value else ""
        if isinstance(value, list):
            return " ".join([name, *(q(v) for v in value)])
        return f"{name} {q(value)}"

    return " ".join(filter(None, (flag(key, value) for key, value in options.items())))


def parent_dir(name: str):
    """A params function: the folder of output ``name`` (of its first file, for a list), where a
    command writes it and its siblings."""

    def folder(wildcards, output) -> str:
        files = output[name]
        return os.path.dirname(files if isinstance(files, str) else files[0])

    return folder


# --- training -----------------------------------------------------------------------------
def segment_inputs(wildcards):
    latents = C.latents_of(wildcards.run)
    inputs = {
        "spec": spec(f"run/{wildcards.run}"),
        "latents": C.path("latent_manifest", latents=latents),
    }
    prev = C.previous(wildcards.run, wildcards.milestone)
    if prev is not None:
        inputs["init"] = C.checkpoint(wildcards.run, prev)
    return inputs


# Where a training segment runs (profiles/README.md): the run's GPUs on one node, one process per
# GPU through torchrun; on several nodes (more GPUs than IG_SLURM_GPUS_PER_NODE), or with
# IG_SLURM_LAUNCHER=srun, one srun task per GPU, each reading its rank from srun's environment
# (ig.distributed). The srun form is an `mpi` job for the SLURM executor: no `srun -n1` around the
# rule, and `tasks_per_gpu` keeps the plugin from turning `tasks` into --ntasks-per-gpu.
GPUS_PER_NODE = int(os.environ.get("IG_SLURM_GPUS_PER_NODE", "8"))
SRUN_ALWAYS = os.environ.get("IG_SLURM_LAUNCHER", "torchrun") == "srun"
SRUN = "srun"


def train_gpus(wildcards) -> int:
    return config["runs"][C.group_of(wildcards.run)]["gpus"]


def train_nodes(wildcards) -> int:
    return -(-train_gpus(wildcards) // GPUS_PER_NODE)


def srun_tasks(wildcards) -> int | None:
    """One task per GPU when the segment is launched by srun (None: one task, torchrun or plain)."""
    gpus = train_gpus(wildcards)
    return gpus if gpus > 1 and (SRUN_ALWAYS or train_nodes(wildcards) > 1) else None


def srun_mpi(wildcards) -> str | None:
    return SRUN if srun_tasks(wildcards) else None


def srun_tasks_per_gpu(wildcards) -> int | None:
    return 1 if srun_tasks(wildcards) else None


def train_launcher(wildcards) -> str:
    """The command that starts `ig` once per GPU: srun tasks, each with the job's threads as its CPUs
    (Snakemake sets OMP_NUM_THREADS to them; srun in a job does not inherit the job's CPUs per task),
    torchrun over one node's GPUs, or plain `ig` for one GPU."""
    tasks, gpus = srun_tasks(wildcards), train_gpus(wildcards)
    if tasks:
        return f'{SRUN} -n {tasks} --cpus-per-task="$OMP_NUM_THREADS" python -m ig'
    return "ig" if gpus == 1 else f"torchrun --standalone --nproc_per_node={gpus} -m ig"


def tensorboard_dir(wildcards) -> str:
    """One TensorBoard folder per run, shared by its segments (steps continue across them)."""
    return C.path("tensorboard", run=wildcards.run)


def segment_args(wildcards, input) -> str:
    """The segment's end, its start, and the run's execution keys (cadences, device batch: they
    may change between segments and are not part of the run's spec)."""
    unit, value = milestone_target(wildcards.milestone)
    args = f"--until-{unit} {value}"
    execution = C.execution_settings(wildcards.run)
    if execution:
        args += f" --execution {q(json.dumps(execution, sort_keys=True))}"
    if "init" in input.keys():
        args += f" --init {q(input.init)}"
    return args


def runs_regex(imported: bool) -> str:
    """A wildcard constraint matching exactly the trained (or the imported) runs, so that the
    training and import rules never compete for the same checkpoint."""
    names = [re.escape(r) for r in C.runs if C.is_imported(r) == imported]
    return "|".join(names) if names else "(?!)"


def import_args(wildcards) -> str:
    spec = config["runs"][wildcards.run]["import"]
    ae = config["latents"][spec["latents"]]["autoencoder"]
    unit, value = milestone_target(wildcards.milestone)
    args = f"--model {spec['model']} --asset {spec['asset']} --assets-dir {q(ASSETS)}"
    args += f" --autoencoder {q(ae['kind'] + ':' + ae['path'])}"
    args += f" --epoch {value}" if unit == "epoch" else ""
    if spec["overrides"]:
        args += f" --overrides {q(json.dumps(spec['overrides']))}"
    return args


# --- sampling -----------------------------------------------------------------------------
def sample_inputs(wildcards):
    s = SampleSet(**wildcards)
    inputs = {"spec": spec(sample_job(s)), "checkpoint": C.checkpoint(s.run, s.milestone)}
    target = C.tuned_target(s.guidance)
    if target is not None:
        inputs["tuned"] = C.path("tuned", tuning=target)
    weak = C.weak_model(s.guidance)
    if weak is not None:
        inputs["weak"] = C.checkpoint(*weak)
    latents = C.latents_of(s.run)
    if config["latents"][latents]["autoencoder"]["kind"] == "tiny":
        inputs["autoencoder"] = C.path("autoencoder", latents=latents)
    elif config["assets"]:
        inputs["assets"] = FETCHED
    return inputs


def sample_args(wildcards, input) -> str:
    """The input files a sample set's spec names (its settings are in the spec)."""
    args = [f"--assets-dir {q(ASSETS)}"]
    if "tuned" in input.keys():
        args.append(f"--guidance-file {q(input.tuned)}")
    if "weak" in input.keys():
        args.append(f"--ag-checkpoint {q(input.weak)}")
    return " ".join(args)


# --- evaluation ---------------------------------------------------------------------------
def extractor_input(wildcards=None):
    if config["evaluation"]["extractor"] == "classifier":
        return C.path("classifier")
    return FETCHED


def extractor_arg() -> str:
    if config["evaluation"]["extractor"] == "classifier":
        return q(f"classifier:{C.path('classifier')}")
    return q(f"inception:{ASSETS}/torch-fidelity/weights-inception-2015-12-05-6726825d.pth")


def drop_shards_flag() -> str:
    return "--drop-shards" if config["evaluation"]["drop_shards"] else ""


def assets_input(wildcards=None):
    """Rules that read fetched assets depend on the stamp of the local fetch_assets rule."""
    return FETCHED if config["assets"] else []


# --- the 2D toy ---------------------------------------------------------------------------
def toy_claims_input(wildcards=None) -> list[str]:
    """The toy's verdicts go into the campaign README when the campaign runs the toy."""
    return [C.path("toy2d_claims")] if config["toy2d"]["enabled"] else []


def toy2d_args() -> str:
    toy = config["toy2d"]
    return ("--quick " if toy["quick"] else "") + (f"--seeds {toy['seeds']}" if toy["seeds"] else "")


# --- guidance tuning ----------------------------------------------------------------------
wildcard_constraints:
    tuning="|".join(re.escape(name) for name in config["tuning"]) or "(?!)",


def tune_args(wildcards) -> str:
    spec = config["tuning"][wildcards.tuning]
    options = {key: spec[key] for key in ("eta", "min_samples", "extend") if spec[key] is not None}
    if spec["candidates"]:
        options["candidates"] = spec["candidates"]
    args = flags(C.tuning_sampling(wildcards.tuning).to_dict() | options)
    return args + f" --assets-dir {q(ASSETS)}"


# --- after a failed job ------------------------------------------------------------------
def partial_report() -> None:
    """Tables, plots and the claims README from every current result, the others pending with their
    reason: after a failed job, so that one failure never holds back the campaign's other results."""
    if workflow.dryrun or not (config["tables"] or config["plots"] or config["claims"]):
        return
    campaign = spec("campaign")
    write_spec(campaign, C.specs("campaign"))
    commands = []
    if config["tables"]:
        commands.append(f"ig table --config {q(campaign)} --paper {q(PAPER_NUMBERS)} --out-dir {q(C.path('tables'))}")
    if config["plots"]:
        commands.append(f"ig plot --config {q(campaign)} --out-dir {q(C.path('plots'))}")
    if config["claims"]:
        commands.append(f"ig claims --config {q(campaign)} --paper {q(PAPER_NUMBERS)} --out {q(C.path('readme'))}")
    print("a job failed: building the tables, plots and claims from what is current (pending cells marked)")
    for command in commands:
        subprocess.run(command, shell=True, check=False)
