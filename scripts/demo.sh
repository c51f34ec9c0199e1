#!/usr/bin/env bash
# Set up a fresh machine and run the embedded default end to end: Fashion-MNIST → tiny
# autoencoder → tiny SiT baseline vs + IG → paired guided sampling → metrics with errors →
# tables, plots, the claims README, the HTML report.
# Extra arguments go to snakemake (e.g. `--configfile config/ablations.yaml`, a target, `-n`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/venv.sh
export PATH="$IG_VENV/bin:$PATH" HF_HUB_OFFLINE=1

# A Snakemake killed hard (SIGKILL, a closed terminal) leaves its lock behind; unlock when no other
# Snakemake runs here, so that a rerun needs no manual step.
if [[ -n "$(ls -A .snakemake/locks 2>/dev/null)" ]] && ! pgrep -f "snakemake.*--profile profiles/local" >/dev/null; then
    echo "demo: removing the lock of a Snakemake that was killed (none runs now)"
    snakemake --profile profiles/local "$@" --unlock >/dev/null
fi
snakemake --profile profiles/local "$@"

# The HTML report, unless this was a dry run. The campaign's name is that of the last config
# file given that sets one (Snakemake merges them in order).
configfiles=(config/config.yaml)
args=("$@")
for i in "${!args[@]}"; do
    [[ "${args[$i]}" == "-n" || "${args[$i]}" == "--dry-run" ]] && exit 0
    if [[ "${args[$i]}" == "--configfile" ]]; then
        configfiles=()
        for next in "${args[@]:$((i + 1))}"; do
            [[ "$next" == -* ]] && break
            configfiles+=("$next")
        done
    fi
done
name=$(python -c "
import sys, yaml
names = [yaml.safe_load(open(f)).get('name') for f in sys.argv[1:]]
print([n for n in names if n][-1])" "${configfiles[@]}")
# (Snakemake's report step warns of an un-awaited coroutine of its own, once per job: silenced.)
PYTHONWARNINGS=ignore::RuntimeWarning snakemake --profile profiles/local "$@" --report "results/$name/report.html"
echo "demo: done. Claims: results/$name/README.md  tables: results/$name/tables/  plots: results/$name/plots/  report: results/$name/report.html"
