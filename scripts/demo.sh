#!/usr/bin/env bash
# Set up a fresh machine and run the embedded default end to end: Fashion-MNIST → tiny
# autoencoder → tiny SiT baseline vs + IG → guided sampling → metrics → tables, plots, report.
# Extra arguments go to snakemake (e.g. `--configfile config/smoke.yaml`, a target, `-n`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/${IG_VENV:-.venv}/bin:$PATH" HF_HUB_OFFLINE=1
snakemake --profile profiles/local "$@"

# The HTML report, unless this was a dry run.
configfile=config/config.yaml
args=("$@")
for i in "${!args[@]}"; do
    [[ "${args[$i]}" == "-n" || "${args[$i]}" == "--dry-run" ]] && exit 0
    [[ "${args[$i]}" == "--configfile" ]] && configfile="${args[$((i + 1))]}"
done
name=$(python -c "import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))['name'])" "$configfile")
# (Snakemake's report step warns of an un-awaited coroutine of its own, once per job: silenced.)
PYTHONWARNINGS=ignore::RuntimeWarning snakemake --profile profiles/local "$@" --report "results/$name/report.html"
echo "demo: done. Tables: results/$name/tables/  plots: results/$name/plots/  report: results/$name/report.html"
