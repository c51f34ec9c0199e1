# Sourced by the scripts after `cd` to the repository root: the virtual environment they share,
# $IG_VENV (absolute, or relative to the repository root; default .venv), made absolute and exported.
IG_VENV=$(realpath -m "${IG_VENV:-.venv}")
export IG_VENV
