#!/usr/bin/env bash
# The GPU benchmark, start to finish in one command (≤ 8 minutes on one H100/H200):
#   bench/gpu.sh [OFFICIAL_CHECKOUT] [OUT.json]
# 1. python -m ig.bench --device cuda: SiT-XL/2 and LightningDiT-XL/1 training steps in bf16 at batch
#    32 (with and without the head: images/s, peak memory, MFU), sampling images/s at batch 250 for
#    no guidance, IG, CFG and IG + CFG in fp32 and bf16, SD-VAE encoding and Inception features at
#    256², the FID bootstrap at 50K × 2048, the design's overhead ratios;
# 2. the official IG SiT-XL/2 training step beside ours (bench/train_vs_official.py), when a checkout
#    of CVL-UESTC/Internal-Guidance is given (never committed; carry it to the machine yourself);
# 3. the workflow's device path: the smoke campaign's first milestone through Snakemake on this
#    machine (autoencoder, encoding, classifier, one training segment, one sample set and its
#    evaluation), each job's device (from its log) and time (its benchmark record).
# Each part writes what it measured even if another fails; the merged record goes to OUT.json
# (default bench/results/gpu-<device>.json). On a machine without a GPU: bench/gpu.sh --quick.
set -uo pipefail
cd "$(dirname "$0")/.."
command="bench/gpu.sh $*"
python=${IG_PYTHON:-python}
device=cuda quick=()
if [[ "${1:-}" == "--quick" ]]; then device=cpu quick=(--quick); shift; fi
official=${1:-}
name=$("$python" -c "import torch; print(torch.cuda.get_device_name().split()[-1] if torch.cuda.is_available() else 'cpu')")
out=${2:-bench/results/gpu-${name}.json}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

start=$SECONDS
timeout 420 "$python" -m ig.bench --device "$device" "${quick[@]}" --threads "$(nproc)" --out "$tmp/ig.json" \
    > "$tmp/ig.log" 2>&1 || echo "gpu.sh: ig.bench failed or timed out; see the record" >&2
if [[ -n "$official" ]]; then
    args=(--official "$official" --device "$device")
    [[ $device == cuda ]] && args+=(--model SiT-XL/2 --batch 32 --precision bf16 --steps 10)
    timeout 180 "$python" bench/train_vs_official.py "${args[@]}" > "$tmp/official.json" 2> "$tmp/official.log" \
        || echo "gpu.sh: the official comparison failed; see the record" >&2
fi
# The device leg, in a scratch folder (the repository's results/ stay as they are).
leg="$tmp/leg" && mkdir -p "$leg"
timeout 300 "$python" -m snakemake results/smoke/metrics/ig/it20/none/random.json -s Snakefile --directory "$leg" \
    --profile profiles/local --configfile config/smoke.yaml > "$tmp/leg.log" 2>&1 || echo "gpu.sh: the device leg failed; see the record" >&2
"$python" - "$tmp" "$out" "$official" "$((SECONDS - start))" "$command" <<'PY'
import json, pathlib, sys
tmp, out, official, seconds = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
def part(name, log):
    try:
        return json.loads((tmp / name).read_text())
    except (OSError, ValueError):
        text = (tmp / log).read_text() if (tmp / log).exists() else ""
        return {"error": text.strip().splitlines()[-1] if text.strip() else "no output"}
record = {"command": sys.argv[5], "seconds": seconds, "ig": part("ig.json", "ig.log")}
jobs = []
for bench in sorted((tmp / "leg/benchmarks/smoke").rglob("*.tsv")):  # named as the job's log
    name = bench.relative_to(tmp / "leg/benchmarks/smoke").with_suffix("")
    log = tmp / "leg/logs/smoke" / name.with_suffix(".log")
    ran_on = [line.split("running on ", 1)[1] for line in log.read_text().splitlines() if "running on " in line]
    header, values = bench.read_text().splitlines()[:2]
    jobs.append({"job": str(name), "device": ran_on[0] if ran_on else None,
                 **dict(zip(header.split("\t"), values.split("\t")))})
record["device_leg"] = {"jobs": jobs} if jobs else {"error": ((tmp / "leg.log").read_text().strip().splitlines() or ["no output"])[-1]}
if official:
    record["vs_official"] = part("official.json", "official.log")
out.parent.mkdir(parents=True, exist_ok=True)
out.write_text(json.dumps(record, indent=2) + "\n")
print(f"gpu.sh: {out} ({seconds} s)")
PY
