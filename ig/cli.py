"""The ``ig`` command: one subcommand per pipeline stage.

Each subcommand lives in its own module, which defines ``add_arguments(parser)`` and
``run(args)``. Modules are imported only when their subcommand runs, so ``ig --help`` is fast
and a stage's heavy imports never slow down another. A command module itself imports nothing
heavy (torch, diffusers, pandas, matplotlib) at its top: those imports go inside ``run()`` or into
the modules ``run()`` calls, so that ``ig <command> --help`` answers at once (tests/test_cli.py).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from ig import __version__
from ig.errors import IGError
from ig.utils.watchdog import watch_parent

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "fetch-assets": ("ig.assets", "download every weight/reference file a cluster run needs"),
    "rehearsal-assets": ("ig.rehearsal", "random-weight stand-ins of the paper's assets and a synthetic ImageNet"),
    "train-autoencoder": ("ig.data.autoencoder_train", "train the tiny AutoencoderKL of the embedded default"),
    "encode": ("ig.data.encode", "encode a dataset into latent shards"),
    "train": ("ig.train.cli", "train one segment of a run, milestone to milestone"),
    "import-checkpoint": ("ig.release", "convert a released checkpoint into an ig checkpoint"),
    "strip-checkpoint": ("ig.strip", "keep only the tensors of a trusted third-party checkpoint"),
    "sample": ("ig.sampling.sets", "sample a checkpoint with a guidance setting into ADM-format npz shards"),
    "tune": ("ig.tuning", "the best guidance setting of a checkpoint by successive halving"),
    "train-classifier": ("ig.evaluation.train_classifier", "train the in-domain feature network (embedded default)"),
    "reference": ("ig.evaluation.reference", "compute reference statistics for evaluation"),
    "evaluate": ("ig.evaluation.evaluate", "FID, sFID, IS, precision and recall of a sample set"),
    "table": ("ig.report.tables", "results tables next to the paper's numbers"),
    "plot": ("ig.report.plots", "plots of the results"),
    "claims": ("ig.report.claims", "the paper's claims with ours ± error and a verdict (the campaign README)"),
    "plan": ("ig.report.plan", "compute plan (jobs, GPU-hours) of a workflow config"),
    "status": ("ig.report.status", "what of a campaign is current, what is out of date and why, and the cost"),
    "toy2d": ("ig.toy2d.experiment", "the 2D tree-mixture experiment"),
    "bench": ("ig.bench", "speed and memory benchmarks (one JSON object)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ig", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"ig {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``ig`` console script and ``python -m ig``."""
    argv = sys.argv[1:] if argv is None else argv
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    top = build_parser()
    args, rest = top.parse_known_args(argv)
    module_name, help_text = COMMANDS[args.command]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"ig {args.command}", description=help_text)
    module.add_arguments(parser)
    sub_args = parser.parse_args(rest)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s: %(message)s",
        stream=sys.stderr,
    )
    watch_parent()  # started by Snakemake: stop when it is killed, not run on as an orphan
    try:
        module.run(sub_args)
    except IGError as exc:
        print(f"ig {args.command}: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"ig {args.command}: interrupted", file=sys.stderr)
        sys.exit(130)
