"""``ig tune`` (successive halving) vs the exhaustive grid it replaces, on one checkpoint.

Run by hand, not in CI: it first runs the tuner exactly as ``ig tune`` does, then scores every
candidate of the space at the full sample count (the grid; the tuner's samples are the first ones
of each candidate's set, so they are reused, not redrawn), and reports

- the **regret**: the tuner's choice minus the grid's best, FD at the full count, as a paired
  difference (same noise and labels, same bootstrap resamples) with its error and verdict;
- the **sample share**: the tuner's images over the grid's;
- two baselines at the tuner's budget, computed from the grid's own samples: **random search**
  (as many candidates as the budget pays for at the full count, drawn at random: its expected regret
  and the chance its pick is within noise of the best, exactly over all draws) and a **uniform
  allocation** (every candidate at budget / candidates samples, the lowest FD taken).

Arguments are ``ig tune``'s; e.g. on the embedded default's checkpoint and its own tuning space
(written by the workflow from ``config/config.yaml``, ``tuning: ig-cfg``, which contains the embedded
guidance grid), with η = 4 so that two rungs prune 14 candidates to one::

    python bench/tuning_vs_grid.py --checkpoint results/embedded/runs/ig/ep8.pt \\
        --space results/embedded/tuning/ig-cfg/space.yaml --reference results/embedded/reference.npz \\
        --extractor classifier:results/embedded/classifier.pt --out-dir /tmp/tuning-vs-grid \\
        --num-samples 752 --eta 4 --min-samples 47 --method sde --steps 25 --batch-size 47 \\
        --bootstrap 50 --device cpu

Prints and writes one JSON object (``--record``, default
``bench/results/tuning-vs-grid-cpu-2core.json``).
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from ig.evaluation.uncertainty import verdict
from ig.guidance import Guidance
from ig.tuning import METRIC, add_arguments, label, paired, problem_from_args, tune
from ig.utils.io import write_json


def random_search(values: np.ndarray, good: np.ndarray, picks: int) -> dict:
    """Expected FD of the best of ``picks`` candidates drawn without replacement (exactly, over all
    draws: the j-th best is the draw's minimum with probability C(m-1-j, picks-1) / C(m, picks)),
    and the chance that this minimum is one of the ``good`` ones."""
    order = np.argsort(values)
    m = len(values)
    p = np.array([math.comb(m - 1 - j, picks - 1) / math.comb(m, picks) for j in range(m)])
    return {"picks": picks, "expected_fd": float(p @ values[order]),
            "chance_within_noise": float(p @ good[order])}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    parser.add_argument("--record", type=Path, default=Path("bench/results/tuning-vs-grid-cpu-2core.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    omp_threads = os.environ.get("OMP_NUM_THREADS")
    load_start = os.getloadavg()

    problem = problem_from_args(args)
    start = time.perf_counter()
    trace = tune(problem.space, problem.candidates, problem.sizes, problem.eta, problem.scorer, args.out_dir,
                 problem.extend)  # fmt: skip
    tuner_seconds = time.perf_counter() - start

    full = problem.sizes[-1]
    start = time.perf_counter()
    grid = [problem.scorer(g, full) for g in problem.candidates]
    grid_extra_seconds = time.perf_counter() - start
    values = np.array([s.value for s in grid])
    best = int(np.argmin(values))
    versus_best = [paired(s, grid[best]) for s in grid]
    good = np.array([i == best or verdict(d, METRIC) != "worse" for i, d in enumerate(versus_best)], dtype=float)

    chosen = Guidance.from_dict(trace["chosen"])  # a grid candidate, or one past the grid's edge (--extend)
    chosen_score = problem.scorer(chosen, full)  # its full set is there: scored again, not sampled
    regret = paired(chosen_score, grid[best])
    budget = trace["sampled_images"]
    uniform_n = budget // len(grid) // problem.sizes[0] * problem.sizes[0]  # whole shards of the prefix
    uniform = [problem.scorer(g, uniform_n) for g in problem.candidates] if uniform_n else []
    uniform_pick = int(np.argmin([s.value for s in uniform])) if uniform else None
    search = random_search(values, good, max(1, budget // full))
    search["expected_regret"] = search["expected_fd"] - float(values[best])

    record = {
        "space": trace["space"],
        "candidates": len(grid),
        "schedule": problem.sizes,
        "eta": problem.eta,
        "full_samples": full,
        "grid": [
            {
                "label": label(g),
                METRIC: float(s.value),
                "se": float(np.std(s.replicates, ddof=1)),
                "delta_to_best": d.delta,
                "delta_se": d.se,
                "verdict": "best" if i == best else verdict(d, METRIC),
            }
            for i, (g, s, d) in enumerate(zip(problem.candidates, grid, versus_best, strict=True))
        ],  # fmt: skip
        "grid_best": label(problem.candidates[best]),
        "within_noise_of_best": int(good.sum()),
        "tuner": {
            "chosen": trace["chosen_label"],
            "regret": regret.delta,
            "regret_se": regret.se,
            "verdict": "best" if chosen == problem.candidates[best] else verdict(regret, METRIC),
            "rank_in_grid": int(np.sum(values < chosen_score.value)) + 1,
            "sampled_images": budget,
            "grid_images": trace["grid_images"],
            "sample_share": trace["sample_share"],
            "seconds": round(tuner_seconds, 1),
        },
        "random_search_same_budget": search,
        "uniform_same_budget": None
        if uniform_pick is None
        else {
            "samples_each": uniform_n,
            "chosen": label(problem.candidates[uniform_pick]),
            "regret": versus_best[uniform_pick].delta,
            "regret_se": versus_best[uniform_pick].se,
            "within_noise": bool(good[uniform_pick]),
        },
        "grid_extra_seconds": round(grid_extra_seconds, 1),
        "omp_num_threads": omp_threads,
        "load_average_start_end": [load_start, os.getloadavg()],
        "versions": {"python": platform.python_version(), "numpy": np.__version__},
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
    }
    write_json(args.record, record)
    t = record["tuner"]
    print(
        f"tuner: {t['chosen']} (rank {t['rank_in_grid']}/{len(grid)}), regret {t['regret']:+.3f} ± "
        f"{t['regret_se']:.3f} ({t['verdict']}), {100 * t['sample_share']:.0f} % of the grid's images; "
        f"random search at that budget: expected regret {search['expected_regret']:+.3f}, "
        f"within noise {100 * search['chance_within_noise']:.0f} %"
    )


if __name__ == "__main__":
    main()
