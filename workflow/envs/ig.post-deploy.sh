#!/usr/bin/env bash
# Run by Snakemake once in the freshly created environment of ig.yaml: install this repository (and
# with it pyproject.toml's pinned dependencies), editable, so that jobs run the workflow's own code.
set -euo pipefail
repository="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
python -m pip install --no-cache-dir --disable-pip-version-check -e "$repository"
