"""Reruns keyed on content: the edit matrix (issue 20; ``docs/architecture.md``, "What reruns when").

On a finished small campaign (``tests/configs/matrix.yaml``), each edit of the config is followed by
a dry run and a real run. For every edit the test states the exact set of jobs that must run, and
checks that the dry run plans that set and the real run executes the same set: reformatting reruns
nothing, a guidance scale reruns its one sample set, sampler settings every set but no training,
and so on. Edits are cumulative: each starts from the campaign the previous one left.
"""

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from ig.campaign import load
from tests.conftest import REPO_ROOT
from tests.test_workflow import snakemake

CONFIG = REPO_ROOT / "tests/configs/matrix.yaml"
PROFILE = ["--profile", str(REPO_ROOT / "profiles/local"), "--cores", "2"]
SETS = ["baseline/it4/none", "ig/it4/none", "ig/it4/ig2", "ig/it4/cfg", "ig/it4/tuned"]
REPORT = {"spec campaign", "tables", "plots", "claims"}


def jobs_of(log: str) -> set[str]:
    """The jobs a Snakemake log plans or runs, as ``rule what`` (``spec <job>`` for a spec; the
    aggregate target ``all`` left out)."""
    found = set()
    for block in re.split(r"\n(?=\[)", log):
        rule = re.search(r"^(?:local)?rule (\w+):", block, flags=re.M)
        if rule is None or rule.group(1) == "all":
            continue
        output = re.search(r"^\s+output: ([^,\s]+)", block, flags=re.M).group(1)
        what = output.removeprefix("results/matrix/")
        if rule.group(1) == "spec":
            what = what.removeprefix("specs/").rsplit("/", 1)[0]
        elif rule.group(1) in ("sample", "evaluate"):
            what = re.sub(r"(/samples\.json|\.json)$", "", what.split("/", 1)[1]).removesuffix("/random")
        elif rule.group(1) == "train_segment":
            what = what.removeprefix("runs/").removesuffix(".pt")
        else:  # one job of its rule in this campaign
            what = ""
        found.add(f"{rule.group(1)} {what}".strip())
    return found


def set_jobs(*sets: str) -> set[str]:
    """The jobs of redoing sample sets: each one's spec, sampling and evaluation."""
    return {job for s in sets for job in (f"spec sample/{s}/random", f"sample {s}", f"evaluate {s}")}


def evaluations(*sets: str) -> set[str]:
    return {f"evaluate {s}" for s in sets}


def training(run: str) -> set[str]:
    return {f"spec run/{run}", f"train_segment {run}/it2", f"train_segment {run}/it4"}


TUNING = {"spec tuning/ig", "tune"}
IG_SETS = [s for s in SETS if s.startswith("ig/")]


def edit_yaml(change: Callable[[dict], None]) -> Callable[[str], str]:
    """An edit of the config's content (written back by ``yaml.safe_dump``, keys sorted)."""

    def apply(text: str) -> str:
        config = yaml.safe_load(text)
        change(config)
        return yaml.safe_dump(config, sort_keys=True)

    return apply


def setting(name: str, **values):
    return edit_yaml(lambda c: c["guidance"][name].update(values))


def sampling(**values):
    return edit_yaml(lambda c: c["sampling"].update(values))


def train(run: str, **values):
    return edit_yaml(lambda c: c["runs"][run]["train"].update(values))


def add_setting(c: dict) -> None:
    c["guidance"]["ig3"] = {"ig_scale": 3.0}
    c["evaluations"][1]["guidance"].append("ig3")


def remove_setting(c: dict) -> None:
    del c["guidance"]["ig3"]
    c["evaluations"][1]["guidance"].remove("ig3")


def reorder(text: str) -> str:
    """The same config, its keys sorted and its style changed, as YAML tools rewrite it."""
    return yaml.safe_dump(yaml.safe_load(text), sort_keys=True, default_flow_style=False)


# (what the edit is, the edit, the jobs it must run), in order
MATRIX: list[tuple[str, Callable[[str], str], set[str]]] = [
    ("keys reordered, block style", reorder, set()),
    (
        "2.0 written as 2, 0.001 as 1.0e-3",
        lambda t: t.replace("ig_scale: 2.0", "ig_scale: 2").replace("lr: 0.001", "lr: 1.0e-3"),
        set(),
    ),
    ("a comment", lambda t: "# a comment that changes nothing\n" + t, set()),
    ("ig2: ig_scale 2 -> 2.5", setting("ig2", ig_scale=2.5), set_jobs("ig/it4/ig2") | REPORT),
    ("ig2: ig_interval (0.3, 1]", setting("ig2", ig_interval=[0.3, 1.0]), set_jobs("ig/it4/ig2") | REPORT),
    ("cfg: cfg_scale 1.5 -> 2", setting("cfg", cfg_scale=2.0), set_jobs("ig/it4/cfg") | REPORT),
    ("cfg: cfg_interval (0, 0.7]", setting("cfg", cfg_interval=[0.0, 0.7]), set_jobs("ig/it4/cfg") | REPORT),
    ("sampling.steps 3 -> 4", sampling(steps=4), set_jobs(*SETS) | TUNING | REPORT),
    ("sampling.method sde -> euler", sampling(method="euler"), set_jobs(*SETS) | TUNING | REPORT),
    ("sampling.seed 0 -> 1", sampling(seed=1), set_jobs(*SETS) | TUNING | REPORT),
    ("runs.ig.train.seed 0 -> 1", train("ig", seed=1), training("ig") | set_jobs(*IG_SETS) | TUNING | REPORT),
    (
        "runs.baseline.train lr",
        train("baseline", optimizer={"kind": "adamw", "lr": 0.002}),
        training("baseline") | set_jobs("baseline/it4/none") | REPORT,
    ),  # fmt: skip
    (
        "runs.ig.train model: head after block 1",
        train("ig", model={"name": "SiT-T/2", "input_size": 8, "in_channels": 4, "num_classes": 10, "ig_layer": 1}),
        training("ig") | set_jobs(*IG_SETS) | TUNING | REPORT,
    ),  # fmt: skip
    ("runs.ig.train log_every (execution only)", train("ig", log_every=7), set()),
    ("guidance ig3 added", edit_yaml(add_setting), set_jobs("ig/it4/ig3") | REPORT),
    ("guidance ig3 removed", edit_yaml(remove_setting), REPORT),
    (
        "extractor: classifier trained on 96 images",
        edit_yaml(lambda c: c["evaluation"]["classifier"].update(max_train_images=96)),
        {"spec classifier", "train_classifier", "spec reference", "reference_stats", "spec evaluation"}
        | evaluations(*SETS)
        | TUNING
        | set_jobs("ig/it4/tuned")
        | REPORT,
    ),  # fmt: skip
    (
        "evaluation bootstrap 4 -> 5",
        edit_yaml(lambda c: c["evaluation"]["metrics"].update(bootstrap=5)),
        {"spec evaluation"} | evaluations(*SETS) | REPORT,
    ),  # fmt: skip
    (
        "tuning: eta 2 -> 3",
        edit_yaml(lambda c: c["tuning"]["ig"].update(eta=3)),
        TUNING | set_jobs("ig/it4/tuned") | REPORT,
    ),
    (
        "tuning: extend 2 -> 0 (no extension past an edge)",
        edit_yaml(lambda c: c["tuning"]["ig"].update(extend=0)),
        TUNING | set_jobs("ig/it4/tuned") | REPORT,
    ),
    ("a table title", edit_yaml(lambda c: c["tables"][0].update(title="renamed")), REPORT),
    ("run baseline removed", edit_yaml(lambda c: (c["runs"].pop("baseline"), c["evaluations"].pop(0))), REPORT),
]


RULE_ORDER = ("train_classifier", "reference_stats", "train_segment", "tune", "sample", "evaluate")


def summary(jobs: set[str]) -> str:
    """What an edit reruns, in words: the jobs by rule (specs left out: each job comes with its own)."""
    rules = [job.split()[0] for job in jobs if not job.startswith("spec ")]
    parts = [f"{rule} ×{rules.count(rule)}" if rules.count(rule) > 1 else rule for rule in RULE_ORDER if rule in rules]
    if REPORT - {"spec campaign"} <= set(rules):
        parts.append("the report (tables, plots, claims)")
    return ", ".join(parts) or "nothing"


def markdown_table() -> str:
    """The edit matrix as docs/architecture.md shows it ("What reruns when")."""
    rows = [f"| {what} | {summary(expected)} |" for what, _, expected in MATRIX]
    return "\n".join(["| edit (each after the one above) | what reruns |", "| --- | --- |", *rows]) + "\n"


def test_the_docs_show_this_matrix():
    """docs/architecture.md's table is this matrix (regenerate it with ``markdown_table()``)."""
    assert markdown_table() in (REPO_ROOT / "docs/architecture.md").read_text()


@pytest.fixture(scope="module")
def campaign(tmp_path_factory) -> Path:
    """A finished matrix campaign."""
    folder = tmp_path_factory.mktemp("matrix")
    shutil.copy(CONFIG, folder / "config.yaml")
    first = snakemake([*PROFILE, "--configfile", str(folder / "config.yaml")], folder, timeout=900)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    return folder


def test_each_edit_reruns_exactly_its_jobs_and_the_dry_run_says_so(campaign):
    config = campaign / "config.yaml"
    args = [*PROFILE, "--configfile", str(campaign / "config.yaml")]
    for what, edit, expected in MATRIX:
        config.write_text(edit(config.read_text()))
        dry = snakemake(["-n", *args], campaign)
        assert dry.returncode == 0, f"{what}: {dry.stderr[-2000:]}"
        planned = jobs_of(dry.stdout + dry.stderr)
        assert planned == expected, (
            f"{what}: planned {sorted(planned - expected)} too many, {sorted(expected - planned)} missing"
        )
        real = snakemake(args, campaign, timeout=900)
        assert real.returncode == 0, f"{what}: {real.stderr[-3000:]}"
        ran = jobs_of(real.stdout + real.stderr)
        assert ran == planned, f"{what}: ran {sorted(ran ^ planned)} other than planned"
        print(f"{what}: {len(ran)} jobs")


def test_a_deleted_sample_set_runs_nothing_and_its_cells_still_show(campaign):
    """Deleting a set's samples (to free disk) keeps its metrics and grid, which stay current."""
    args = [*PROFILE, "--configfile", str(campaign / "config.yaml")]
    shutil.rmtree(campaign / "results/matrix/samples/ig/it4/cfg")
    dry = snakemake(["-n", *args], campaign)
    assert dry.returncode == 0 and jobs_of(dry.stdout + dry.stderr) == set(), dry.stdout[-2000:]
    report = snakemake([*args, "--report", "report.html"], campaign)
    assert report.returncode == 0 and (campaign / "report.html").stat().st_size > 0, report.stderr[-2000:]
    table = (campaign / "results/matrix/tables/matrix.md").read_text()
    assert "| CFG |" in table and "Pending" not in table


def test_dropped_shards_free_the_disk_and_are_sampled_again_only_when_needed(campaign):
    """``evaluation.drop_shards``: each evaluation deletes its set's shards and manifest (metrics and
    grid stay); nothing reruns for it, until the evaluation itself must be redone."""
    config = campaign / "config.yaml"
    args = [*PROFILE, "--configfile", str(config)]

    def bootstrap(c: dict) -> None:
        c["evaluation"]["drop_shards"] = True
        c["evaluation"]["metrics"]["bootstrap"] += 1

    def run_edit(expected: set[str]) -> None:
        config.write_text(edit_yaml(bootstrap)(config.read_text()))
        dry = snakemake(["-n", *args], campaign)
        planned = jobs_of(dry.stdout + dry.stderr)
        assert planned == expected, f"planned {sorted(planned ^ expected)} other than expected"
        real = snakemake(args, campaign, timeout=900)
        assert real.returncode == 0 and jobs_of(real.stdout + real.stderr) == planned, real.stderr[-3000:]

    sets = [s.key.removesuffix("/random") for s in load(config).sample_sets()]
    folders = {s: campaign / f"results/matrix/samples/{s}/random" for s in sets}
    deleted = {f"sample {s}" for s, folder in folders.items() if not (folder / "samples.json").exists()}
    run_edit({"spec evaluation"} | deleted | evaluations(*sets) | REPORT)  # a deleted set: sampled again
    for s, folder in folders.items():  # (sets the campaign no longer has keep theirs: nothing evaluates them)
        assert not list(folder.glob("*.npz")) and not (folder / "samples.json").exists(), s
    assert all((campaign / f"results/matrix/metrics/{s}/random.png").is_file() for s in sets)
    dry = snakemake(["-n", *args], campaign)
    assert jobs_of(dry.stdout + dry.stderr) == set()
    run_edit({"spec evaluation"} | {job for s in sets for job in (f"sample {s}", f"evaluate {s}")} | REPORT)


def test_a_failed_evaluation_names_itself_and_every_other_cell_is_built(campaign):
    """One job fails: the run exits non-zero, and the tables and claims are built from what is
    current, the failed cell pending with the log to read."""
    config = campaign / "config.yaml"
    args = [*PROFILE, "--configfile", str(config)]
    config.write_text(setting("ig2", ig_scale=3.0)(config.read_text()))
    sampled = snakemake([*args, "--until", "sample"], campaign)
    assert sampled.returncode == 0, sampled.stderr[-2000:]
    shard = campaign / "results/matrix/samples/ig/it4/ig2/random/shard-00000.npz"
    shard.write_bytes(shard.read_bytes()[:-100])  # a corrupt shard: its evaluation fails
    failed = snakemake(args, campaign, timeout=900)
    assert failed.returncode != 0
    table = (campaign / "results/matrix/tables/matrix.md").read_text()
    log = "logs/matrix/evaluate/ig/it4/ig2-random.log"
    assert "| IG w=2 | – |" in table and "| CFG | " in table and "| CFG | – |" not in table
    assert f"- `ig/it4/ig2/random`: not evaluated: the evaluate job failed or was interrupted; see {log}" in table
    assert "checksum" in (campaign / log).read_text()
    readme = (campaign / "results/matrix/README.md").read_text()
    assert "## Pending" in readme and "not evaluated" in readme
