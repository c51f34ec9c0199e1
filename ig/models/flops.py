"""FLOPs of one forward pass, counted from the architecture (no torch, no memory).

Counts the matrix products, as ``torch.utils.flop_counter`` does (2 FLOPs per multiply-add;
norms, activations and RoPE are not counted): patch embedding, time-embedding MLP, per block the
adaLN projection, qkv, attention scores and values, output projection and MLP, and the output
head(s). The compute plan and the MFU of benchmarks use it; a test checks it against torch's own
counter.
"""

from __future__ import annotations

from typing import Any

from ig.models.sizes import model_options, model_spec

TIME_FREQUENCIES = 256  # the sinusoidal features the time-embedding MLP reads (layers.TimestepEmbedder)


def forward_flops(name: str, **overrides: Any) -> int:
    """FLOPs of one forward pass of one image through ``create_model(name, **overrides)``."""
    spec = model_spec(name)
    options = model_options(name, **overrides)
    h, p, channels = spec.hidden_size, spec.patch_size, options["in_channels"]
    tokens = (options["input_size"] // p) ** 2
    mlp_hidden = int(4.0 * h)
    if options["swiglu"]:
        hidden = int(2 / 3 * mlp_hidden)
        mlp = h * 2 * hidden + hidden * h
    else:
        mlp = 2 * h * mlp_hidden
    adaln_chunks = 4 if options["wo_shift"] else 6
    per_block = tokens * (3 * h * h + h * h + mlp) + 2 * tokens * tokens * h + adaln_chunks * h * h
    head = tokens * h * p * p * channels + 2 * h * h
    macs = (
        tokens * channels * p * p * h  # patch embedding
        + TIME_FREQUENCIES * h
        + h * h  # time embedding MLP
        + options["depth"] * per_block
        + head * (1 + (options["ig_layer"] > 0))
    )
    return 2 * macs
