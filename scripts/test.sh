#!/usr/bin/env bash
# Set up a fresh machine and run the whole test suite, the real-SLURM tests included.
# As root, or with IG_REQUIRE_SLURM=1 (as .ci/run sets; then through sudo if not root), this
# installs and starts a single-node SLURM on loopback (.ci/slurm-up.sh) and the SLURM tests then
# fail rather than skip if it is not up. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
source scripts/venv.sh
export PATH="$IG_VENV/bin:$PATH" HF_HUB_OFFLINE=1
if [[ $(id -u) -eq 0 || ${IG_REQUIRE_SLURM:-0} == 1 ]]; then
    if [[ $(id -u) -eq 0 ]]; then bash .ci/slurm-up.sh; else sudo bash .ci/slurm-up.sh; fi
    export IG_REQUIRE_SLURM=1
fi
ruff check ig tests bench
ruff format --check ig tests bench
# The workflow: formatted (snakefmt, settings in pyproject.toml) and free of lints on the paper's
# campaign (a lint writes nothing; the ImageNet folder need not exist here).
snakefmt --check .
snakemake --lint --configfile config/paper.yaml
set +e
python -m pytest "$@"
status=$?
set -e
# pytest's exit code 5 means "no tests ran": that is a failure, not a pass.
if [[ $status -eq 5 ]]; then echo "test: no tests were collected" >&2; exit 1; fi
exit $status
