"""FLOPs of one forward pass and the parameter count, counted from the architecture (no torch,
no memory).

Counts the matrix products, as ``torch.utils.flop_counter`` does (2 FLOPs per multiply-add;
norms, activations and RoPE are not counted): patch embedding, time-embedding MLP, per block the
adaLN projection, qkv, attention scores and values, output projection and MLP, and the output
head(s). The compute plan and the MFU of benchmarks use it; a test checks it against torch's own
counter. The parameter count (checkpoint sizes in the compute plan) is checked against the
built model's.
"""

from __future__ import annotations

from typing import Any

from ig.models.sizes import MLP_RATIO, model_options, model_spec

TIME_FREQUENCIES = 256  # the sinusoidal features the time-embedding MLP reads (layers.TimestepEmbedder)


def forward_flops(name: str, **overrides: Any) -> int:
    """FLOPs of one forward pass of one image through ``create_model(name, **overrides)``."""
    options = model_options(name, **overrides)
    h, p, channels = options["hidden_size"], model_spec(name).patch_size, options["in_channels"]
    tokens = (options["input_size"] // p) ** 2
    mlp_hidden = int(MLP_RATIO * h)
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


def parameter_count(name: str, **overrides: Any) -> int:
    """Parameters of ``create_model(name, **overrides)``, the frozen position embedding included
    (it is in every state dict)."""
    options = model_options(name, **overrides)
    h, p, channels = options["hidden_size"], model_spec(name).patch_size, options["in_channels"]
    tokens, head_dim = (options["input_size"] // p) ** 2, h // options["num_heads"]

    def linear(fan_in: int, fan_out: int) -> int:
        return fan_in * fan_out + fan_out

    norm = h if options["rmsnorm"] else 0  # RMSNorm has a weight; the blocks' LayerNorm is affine-free
    qk_norm = 2 * head_dim * (1 if options["rmsnorm"] else 2) if options["qk_norm"] else 0
    mlp_hidden = int(MLP_RATIO * h)
    if options["swiglu"]:
        hidden = int(2 / 3 * mlp_hidden)
        mlp = linear(h, 2 * hidden) + linear(hidden, h)
    else:
        mlp = linear(h, mlp_hidden) + linear(mlp_hidden, h)
    adaln_chunks = 4 if options["wo_shift"] else 6
    block = 2 * norm + linear(h, 3 * h) + qk_norm + linear(h, h) + mlp + linear(h, adaln_chunks * h)
    head = norm + linear(h, p * p * channels) + linear(h, 2 * h)
    labels = options["num_classes"] + (options["class_dropout_prob"] > 0)
    return (
        linear(channels * p * p, h)  # patch embedding
        + linear(TIME_FREQUENCIES, h)
        + linear(h, h)  # time embedding MLP
        + labels * h
        + tokens * h  # position embedding
        + options["depth"] * block
        + head * (1 + (options["ig_layer"] > 0))
    )
