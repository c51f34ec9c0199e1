"""What the login node pays: the paper's dry run and lint through profiles/slurm, `ig --version` and
`ig <command> --help`, each timed from outside as a whole process by `farm-bench` (median of
several runs, peak RSS), plus whether planning imports torch. Run by hand, not in CI:

    python bench/login_node.py [--runs 5] [--help-runs 3] [--out bench/results/login-node-cpu-2core.json]
"""

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from ig.cli import COMMANDS
from ig.utils.io import write_json

REPO = Path(__file__).resolve().parents[1]
ROW = re.compile(r"^A (wall s|peak MiB)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)", flags=re.M)


def farm_bench(command: list[str], runs: int, timeout: int = 600) -> dict:
    """Median and spread of wall seconds and peak MiB of ``command`` over ``runs`` runs."""
    out = subprocess.run(
        ["farm-bench", "-n", str(runs), "--timeout", str(timeout), "--", *command],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = {name: [float(v) for v in values] for name, *values in ROW.findall(out)}
    (wall_min, wall, wall_max), (_, peak, _) = rows["wall s"], rows["peak MiB"]
    return {"runs": runs, "wall_s_median": wall, "wall_s_min": wall_min, "wall_s_max": wall_max, "peak_mib": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--help-runs", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="ig-login-"))
    snakemake = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir)]
    paper = ["--configfile", str(REPO / "config/paper.yaml")]
    result = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}}
    result["dry_run_paper"] = farm_bench(
        [*snakemake, "-n", "--profile", str(REPO / "profiles/slurm"), *paper], args.runs
    )
    result["lint_paper"] = farm_bench([*snakemake, "--lint", *paper], args.runs)
    probe = "import runpy, sys; sys.argv = sys.argv[1:]; runpy.run_module('snakemake', run_name='__main__')"
    modules = subprocess.run(  # planning must not import torch: list what the dry run imported
        [
            sys.executable,
            "-X",
            "importtime",
            "-c",
            probe,
            *snakemake[2:],
            "-n",
            "--profile",
            str(REPO / "profiles/slurm"),
            *paper,
        ],
        capture_output=True,
        text=True,
        check=False,
    ).stderr
    result["dry_run_imports_torch"] = bool(re.search(r"\|\s+torch$", modules, flags=re.M))
    written = [p for p in workdir.rglob("*") if p.is_file() and ".snakemake" not in p.parts]
    result["dry_run_and_lint_files_written"] = len(written)
    result["ig_version"] = farm_bench(["ig", "--version"], args.runs)
    result["help"] = {name: farm_bench(["ig", name, "--help"], args.help_runs) for name in COMMANDS}
    print(json.dumps(result, indent=2))
    if args.out:
        write_json(args.out, result)


if __name__ == "__main__":
    main()
