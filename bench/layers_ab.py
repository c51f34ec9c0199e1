"""Time ig's model built from ``ig/models/layers.py`` against the same model built from that file at
another git revision (e.g. before the timm layers), side by side in one process (CPU).

    python bench/layers_ab.py REVISION [--model SiT-B/2] [--batch 8] [--repeats 10]

Both variants get the same weights; one step is forward + IG loss + backward, the two alternate so
that load drift hits both alike. Prints one JSON object: ``ratio`` is current / REVISION (median
wall time per step), ``cpu_ratio`` the same for process CPU time, ``min_cpu_ratio`` the ratio of the
fastest steps (the steadiest figure on a shared machine), and the largest output difference.
"""

import argparse
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import torch

import ig.models.dit
from ig.bench import forward_backward, paired_times
from ig.models import create_model

REPO = Path(__file__).resolve().parents[1]


def dit_with_layers_of(revision: str):
    """``ig.models.dit`` re-imported against ``ig/models/layers.py`` as it was at ``revision``."""
    source = subprocess.run(
        ["git", "-C", str(REPO), "show", f"{revision}:ig/models/layers.py"], capture_output=True, text=True, check=True
    ).stdout
    layers = importlib.util.module_from_spec(importlib.util.spec_from_loader("layers_at_revision", loader=None))
    exec(compile(source, f"layers.py@{revision}", "exec"), layers.__dict__)
    sys.modules["layers_at_revision"] = layers
    dit_source = (
        Path(ig.models.dit.__file__)
        .read_text()
        .replace("from ig.models.layers import", "from layers_at_revision import")
    )
    dit = importlib.util.module_from_spec(importlib.util.spec_from_loader("dit_at_revision", loader=None))
    exec(compile(dit_source, "dit.py", "exec"), dit.__dict__)
    return dit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("revision", help="git revision whose ig/models/layers.py is the baseline")
    parser.add_argument("--model", default="SiT-B/2")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    current = create_model(args.model, input_size=32, ig_layer=4)
    old = dit_with_layers_of(args.revision).create_model(args.model, input_size=32, ig_layer=4)
    with torch.no_grad():  # non-zero heads, so that the output comparison means something
        for p in current.parameters():
            if p.requires_grad:
                p.normal_(0, 0.02)
    old.load_state_dict(current.state_dict())

    x, t = torch.randn(args.batch, 4, 32, 32), torch.rand(args.batch)
    y, target = torch.randint(0, 1000, (args.batch,)), torch.randn(args.batch, 4, 32, 32)
    with torch.no_grad():
        current.eval(), old.eval()
        diff = max((a - b).abs().max().item() for a, b in zip(current(x, t, y), old(x, t, y), strict=True))
    current.train(), old.train()

    times = paired_times(
        forward_backward(current, x, t, y, target),
        forward_backward(old, x, t, y, target),
        args.repeats,
        torch.device("cpu"),
    )
    result = {"model": args.model, "batch": args.batch, "threads": args.threads, "repeats": args.repeats}
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", args.revision], capture_output=True, text=True
    )
    result |= {"baseline_revision": commit.stdout.strip() or args.revision, "torch": torch.__version__}
    result |= {"current_wall_s": round(times["a_s"], 4), "baseline_wall_s": round(times["b_s"], 4)}
    result |= {"current_cpu_s": round(times["a_cpu_s"], 4), "baseline_cpu_s": round(times["b_cpu_s"], 4)}
    result["ratio"] = round(1 / times["ratio"], 3)
    result["cpu_ratio"] = round(1 / times["cpu_ratio"], 3)
    result["min_cpu_ratio"] = round(1 / times["min_cpu_ratio"], 3)
    result["max_output_diff"] = diff
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    main()
