"""Where a whole Snakemake run's time went, from its log: per rule the jobs, their wall seconds and
thread-seconds, how busy the cores were, and (``--scale``) what a slower CPU would take.

    scripts/demo.sh > demo.log 2>&1                 # or `/usr/bin/time -v scripts/demo.sh ...`
    python bench/pipeline_timeline.py demo.log --cores 2 [--scale train_segment=1.78 ...] [--out X.json]

A job's wall time runs from Snakemake's "[date]" line above its rule to its "Finished jobid" line;
a job holds its rule's ``threads`` (1 unless the log says otherwise). A run cannot beat either its
thread-seconds spread over all cores or its longest job, so ``--scale`` (rule=factor: that rule's
jobs take factor× as long, e.g. 400/225 for training on a CPU that trains the tiny SiT at 225 img/s
instead of 400) reports the projected wall time as this run's wall scaled by the work it adds, and
never below that bound.
"""

from __future__ import annotations

import argparse
import json
import re
from datetime import datetime
from pathlib import Path

from ig.utils.io import write_json

STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ [\d:]+ \d{4})\]$")
RULE = re.compile(r"^(?:local)?rule (\w+):$")
JOBID = re.compile(r"^\s+jobid: (\d+)$")
THREADS = re.compile(r"^\s+threads: (\d+)$")
FINISHED = re.compile(r"^Finished jobid: (\d+)")
TIME_V = {"user_s": "User time (seconds)", "sys_s": "System time (seconds)", "max_rss_kb": "Maximum resident set size"}


def parse(text: str) -> list[dict]:
    """Every job of the log: rule, threads, start and end (datetimes)."""
    jobs: dict[int, dict] = {}  # a job's dict is filled in as its block goes on (threads come after jobid)
    stamp = pending = None
    for line in text.splitlines():
        if m := STAMP.match(line.strip()):
            stamp, pending = datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y"), None
        elif m := RULE.match(line):
            pending = {"rule": m.group(1), "threads": 1, "start": stamp}
        elif pending and (m := THREADS.match(line)):
            pending["threads"] = int(m.group(1))
        elif pending and (m := JOBID.match(line)):
            jobs[int(m.group(1))] = pending
        elif (m := FINISHED.match(line)) and int(m.group(1)) in jobs:
            jobs[int(m.group(1))]["end"] = stamp
    return [j for j in jobs.values() if "end" in j and j["start"] is not None]


def summarise(jobs: list[dict], cores: int, scale: dict[str, float]) -> dict:
    start, end = min(j["start"] for j in jobs), max(j["end"] for j in jobs)
    wall = (end - start).total_seconds()
    rules: dict[str, dict] = {}
    for j in jobs:
        seconds = (j["end"] - j["start"]).total_seconds()
        r = rules.setdefault(j["rule"], {"jobs": 0, "threads": j["threads"], "job_s": 0.0, "longest_s": 0.0})
        r["jobs"] += 1
        r["job_s"] += seconds
        r["longest_s"] = max(r["longest_s"], seconds)
    for r in rules.values():
        r["thread_s"] = r["job_s"] * r["threads"]
    busy = sum(r["thread_s"] for r in rules.values())
    out = {
        "wall_s": wall,
        "cores": cores,
        "thread_s": busy,
        "cores_busy": busy / (cores * wall),
        "rules": dict(sorted(rules.items(), key=lambda kv: -kv[1]["thread_s"])),
    }
    if scale:
        added = sum(rules[name]["thread_s"] * (f - 1) for name, f in scale.items() if name in rules)
        longest = max(r["longest_s"] * scale.get(name, 1.0) for name, r in rules.items())
        projected = max(wall * (busy + added) / busy, (busy + added) / cores, longest)
        out["projection"] = {"scale": scale, "wall_s": projected}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("log", type=Path, help="the run's Snakemake output (and /usr/bin/time -v's, if any)")
    parser.add_argument("--cores", type=int, required=True)
    parser.add_argument("--scale", nargs="*", default=[], metavar="RULE=FACTOR")
    parser.add_argument("--note", default="", help="what ran, where (stored in the record)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    text = args.log.read_text(errors="replace")
    jobs = parse(text)
    if not jobs:
        raise SystemExit(f"error: no finished Snakemake jobs in {args.log}; pass the log of a real (not dry) run")
    scale = {name: float(f) for name, f in (item.split("=", 1) for item in args.scale)}
    record = {"log": str(args.log), "note": args.note, **summarise(jobs, args.cores, scale)}
    for key, label in TIME_V.items():
        if m := re.search(rf"^\s*{re.escape(label)}[^:]*: ([\d.]+)$", text, flags=re.M):
            record[key] = float(m.group(1))
    print(json.dumps(record, indent=2))
    if args.out:
        write_json(args.out, record)


if __name__ == "__main__":
    main()
