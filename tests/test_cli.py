"""The ``ig`` command line: ``--version``, and every command's options readable without the heavy
libraries (torch, diffusers, pandas, matplotlib), so that ``ig <command> --help`` answers at once on
a login node. Timings live in bench/results/login-node-cpu-2core.json, never in tests."""

import subprocess
import sys
import tomllib

import pytest

from ig import __version__
from ig.cli import COMMANDS
from tests.conftest import REPO_ROOT

HEAVY = ("torch", "torchvision", "diffusers", "pandas", "matplotlib", "timm", "scipy")
PROBE = """
import argparse, importlib, sys
from ig.cli import COMMANDS
module = importlib.import_module(COMMANDS[sys.argv[1]][0])
module.add_arguments(argparse.ArgumentParser())
print(" ".join(sorted({name.split(".")[0] for name in sys.modules} & set(sys.argv[2:]))))
"""


def test_version_is_the_package_version():
    out = subprocess.run([sys.executable, "-m", "ig", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"ig {__version__}"
    assert __version__ == tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]


@pytest.mark.parametrize("command", COMMANDS)
def test_options_of_every_command_import_no_heavy_library(command):
    probe = subprocess.run(
        [sys.executable, "-c", PROBE, command, *HEAVY], capture_output=True, text=True, cwd=REPO_ROOT, check=True
    )
    assert probe.stdout.split() == [], f"ig {command} --help imports {probe.stdout.strip()}"
