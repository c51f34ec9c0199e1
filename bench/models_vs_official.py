"""Time ig's SiT-B/2 against the official IG release's, side by side in one process (CPU).

Run by hand, not in CI, with a checkout of https://github.com/CVL-UESTC/Internal-Guidance:

    python bench/models_vs_official.py /path/to/Internal-Guidance [--repeats 10]

Both models get the same weights (ours loaded with ``from_official``), batch 8 of 32×32×4
latents, the head after block 4, 2 CPU threads; one step is forward + IG loss + backward, and the
two models alternate so that load drift hits both alike. Prints one JSON object whose ``ratio``
is ours / theirs (median wall time per step; ``cpu_ratio`` the same for process CPU time).
"""

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import torch

from ig.bench import forward_backward, paired_times
from ig.models import from_official

BATCH, IG_LAYER, THREADS = 8, 4, 2
CPU = torch.device("cpu")


def load_official_sit(repo: Path) -> torch.nn.Module:
    """Import ``SiT/models/sit.py`` of the release (it needs only timm) and build SiT-B/2."""
    spec = importlib.util.spec_from_file_location("official_sit", repo / "SiT" / "models" / "sit.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SiT_models["SiT-B/2"](input_size=32, encoder_depth=IG_LAYER, qk_norm=False, fused_attn=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("repo", type=Path, help="checkout of CVL-UESTC/Internal-Guidance")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    torch.manual_seed(0)

    theirs = load_official_sit(args.repo)
    with torch.no_grad():  # non-zero heads, so that the parity check below means something
        for name, p in theirs.named_parameters():
            if name != "pos_embed":
                p.normal_(0, 0.02)
    ours = from_official("SiT-B/2", theirs.state_dict(), ig_layer=IG_LAYER)

    x, t = torch.randn(BATCH, 4, 32, 32), torch.rand(BATCH)
    y, target = torch.randint(0, 1000, (BATCH,)), torch.randn(BATCH, 4, 32, 32)
    with torch.no_grad():
        ours.eval(), theirs.eval()
        mine, official = ours(x, t, y), theirs(x, t, y)
        max_diff = max((a - b).abs().max().item() for a, b in zip(mine, official[:2], strict=True))
    ours.train(), theirs.train()

    times = paired_times(
        forward_backward(ours, x, t, y, target), forward_backward(theirs, x, t, y, target), args.repeats, CPU
    )
    result = {"model": "SiT-B/2", "batch": BATCH, "threads": THREADS, "repeats": args.repeats}
    result |= {"ours_wall_s": round(times["a_s"], 3), "theirs_wall_s": round(times["b_s"], 3)}
    result |= {"ours_cpu_s": round(times["a_cpu_s"], 3), "theirs_cpu_s": round(times["b_cpu_s"], 3)}
    result["ratio"] = round(1 / times["ratio"], 3)
    result["cpu_ratio"] = round(1 / times["cpu_ratio"], 3)
    result["max_output_diff"] = max_diff
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    main()
