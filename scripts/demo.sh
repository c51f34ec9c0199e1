#!/usr/bin/env bash
# Set up a fresh machine and run the embedded default end to end: Fashion-MNIST → tiny
# autoencoder → tiny SiT baseline vs + IG → guided sampling → metrics → tables, plots, report.
# Extra arguments go to snakemake (e.g. --configfile, a target, -n).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/${IG_VENV:-.venv}/bin:$PATH" HF_HUB_OFFLINE=1
snakemake --profile profiles/local "$@"
if [[ " $* " != *" -n "* && " $* " != *" --dry-run "* ]]; then
    name=$(python -c "import yaml,sys; print(yaml.safe_load(open('config/config.yaml'))['name'])")
    snakemake --profile profiles/local "$@" --report "results/$name/report.html"
    echo "demo: done. Tables: results/$name/tables/, plots: results/$name/plots/, report: results/$name/report.html"
fi
