"""bf16 vs fp32 sampling: the metrics' paired difference and the speed ratio, on a finished campaign.

Run by hand, not in CI. Samples one checkpoint twice with the same noise and labels (``ig sample``
with ``--precision fp32`` and ``bf16``, same seed), evaluates both (``ig evaluate``, same
bootstrap), and reports per metric ``bf16 − fp32`` with the error of the paired difference and its
verdict: whether the cheaper arithmetic changes the numbers a table would print. The sampling
times are those ``ig sample`` reports once its model is loaded (shard by shard, interleaved, so that
the load of the machine affects both alike). On the embedded default::

    python bench/bf16_sampling.py --campaign results/embedded --run ig --milestone ep8 \\
        --guidance-args "--ig-scale 2" --num-samples 3000 --steps 25 --device cpu

Prints and writes one JSON object (``--record``, default ``bench/results/bf16-sampling-cpu-2core.json``).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import re
import shlex
import subprocess
import sys
from pathlib import Path

from ig.campaign import LAYOUT
from ig.evaluation.evaluate import METRICS
from ig.evaluation.record import MetricsRecord
from ig.evaluation.uncertainty import paired_difference, verdict
from ig.sampling.settings import PRECISIONS
from ig.utils.io import write_json

SAMPLED = re.compile(r"(\d+) images in ([\d.]+) s")  # ig sample's closing log line


def ig(*args: str) -> str:
    """Run one ``ig`` subcommand; its log (stderr)."""
    result = subprocess.run([sys.executable, "-m", "ig", *args], check=True, stderr=subprocess.PIPE, text=True)
    return result.stderr


def sampling_seconds(log: str) -> float:
    """The sampling time ``ig sample`` reports (the model loaded, before writing): imports and loading
    would dilute the ratio of a small model."""
    found = SAMPLED.findall(log)
    if not found:
        raise SystemExit(f"ig sample did not report its sampling time:\n{log[-2000:]}")
    return sum(float(seconds) for _, seconds in found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--campaign", type=Path, required=True, help="results/<name> of a finished campaign")
    parser.add_argument("--run", required=True)
    parser.add_argument("--milestone", required=True)
    parser.add_argument("--extractor", help="as `ig evaluate` takes it (default: the campaign's classifier)")
    parser.add_argument("--guidance-args", default="", help='`ig sample` guidance flags, e.g. "--ig-scale 2"')
    parser.add_argument("--num-samples", type=int, default=3000)
    parser.add_argument("--shard-size", type=int, default=500)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--bootstrap", type=int, default=50)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--work", type=Path, default=Path("/tmp/bf16-sampling"))
    parser.add_argument("--record", type=Path, default=Path("bench/results/bf16-sampling-cpu-2core.json"))
    args = parser.parse_args()

    checkpoint = args.campaign / LAYOUT["checkpoint"].format(run=args.run, milestone=args.milestone)
    reference = args.campaign / LAYOUT["reference"]
    extractor = args.extractor or f"classifier:{args.campaign / LAYOUT['classifier']}"
    shards = range(math.ceil(args.num_samples / args.shard_size))
    seconds = dict.fromkeys(PRECISIONS, 0.0)
    common = [
        "--checkpoint", str(checkpoint), "--num-samples", str(args.num_samples), "--shard-size",
        str(args.shard_size), "--batch-size", str(args.shard_size), "--steps", str(args.steps), "--method", "sde",
        "--device", args.device, *shlex.split(args.guidance_args),
    ]  # fmt: skip
    for shard in shards:  # interleaved: both precisions see the same load
        for precision in PRECISIONS:
            out = args.work / precision
            log = ig("sample", *common, "--precision", precision, "--out-dir", str(out), "--shard", str(shard))
            seconds[precision] += sampling_seconds(log)
    metrics = {}
    for precision in PRECISIONS:
        out = args.work / precision
        ig("sample", *common, "--precision", precision, "--out-dir", str(out), "--manifest", str(out / "samples.json"))
        ig("evaluate", str(out / "samples.json"), "--reference", str(reference), "--extractor", extractor,
           "--bootstrap", str(args.bootstrap), "--out", str(out / "metrics.json"), "--no-progress")  # fmt: skip
        metrics[precision] = MetricsRecord.read(out / "metrics.json")

    rows = {}
    for metric in METRICS:
        if metrics["fp32"].get(metric) is None:
            continue
        d = paired_difference(metrics["bf16"], metrics["fp32"], metric)
        rows[metric] = {"fp32": metrics["fp32"][metric], "bf16": metrics["bf16"][metric], "delta": d.delta,
                        "delta_se": d.se, "paired": d.paired, "fp32_se": metrics["fp32"][f"{metric}_se"],
                        "verdict": verdict(d, metric)}  # fmt: skip
    record = {
        "checkpoint": str(checkpoint),
        "guidance": args.guidance_args or "none",
        "num_samples": args.num_samples,
        "steps": args.steps,
        "device": args.device,
        "metrics_bf16_minus_fp32": rows,
        "sampling_seconds": {k: round(v, 1) for k, v in seconds.items()},
        "bf16_speedup": seconds["fp32"] / seconds["bf16"],
        "load_average_end": os.getloadavg(),
        "versions": {"python": platform.python_version()},
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
    }
    write_json(args.record, record)
    for metric, r in rows.items():
        print(f"{metric}: bf16 − fp32 = {r['delta']:+.4f} ± {r['delta_se']:.4f} ({r['verdict']})")
    print(f"bf16 sampling speed / fp32: {record['bf16_speedup']:.2f}×")


if __name__ == "__main__":
    main()
