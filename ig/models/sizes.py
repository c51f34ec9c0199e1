"""The registry of named model sizes and their options, without importing torch.

A name such as ``SiT-XL/2`` is a family (SiT or LightningDiT: a set of default options), a size
(depth, width, heads) and a patch size. The workflow reads this registry when it parses a config
(which runs have an intermediate head, what a forward pass costs), so it stays free of torch;
``ig.models.dit`` builds the networks from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ig.errors import IGError


@dataclass(frozen=True)
class ModelSpec:
    """A registered name: its family, shape and default options."""

    family: str
    depth: int
    hidden_size: int
    num_heads: int
    patch_size: int
    defaults: dict[str, Any]


# depth, hidden size, heads (DiT shapes; "T" is a tiny size for tests and the CPU default)
SIZES = {"T": (6, 128, 4), "S": (12, 384, 6), "B": (12, 768, 12), "L": (24, 1024, 16), "XL": (28, 1152, 16)}
MLP_RATIO = 4.0  # MLP width / hidden size in every block (SwiGLU takes 2/3 of it)
# Block after which the intermediate head sits: the paper's choice (block 4 for SiT-B/2, 8 beyond).
# The release itself hard-codes 8 for every size; ig.models.from_official follows the checkpoint.
DEFAULT_IG_LAYER = {"T": 2, "S": 4, "B": 4, "L": 8, "XL": 8}
# Each family's options as its release trains them.
FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    "SiT": dict(
        input_size=32,
        in_channels=4,
        head_zero_init=True,
        flip_time=False,
        qk_norm=False,
        swiglu=False,
        rmsnorm=False,
        rope=False,
        wo_shift=False,
    ),
    "LightningDiT": dict(
        input_size=16,
        in_channels=32,
        head_zero_init=False,
        flip_time=True,
        qk_norm=False,
        swiglu=True,
        rmsnorm=True,
        rope=True,
        wo_shift=False,
    ),
}
PATCH_SIZES = {
    "SiT": {"T": (1, 2), "S": (2, 4, 8), "B": (2, 4, 8), "L": (2, 4, 8), "XL": (2, 4, 8)},
    "LightningDiT": {"T": (1, 2), "B": (1, 2), "L": (1, 2), "XL": (1, 2)},
}

MODELS: dict[str, ModelSpec] = {
    f"{family}-{size}/{patch}": ModelSpec(
        family,
        *SIZES[size],
        patch,
        dict(
            num_classes=1000,
            class_dropout_prob=0.1,
            depth=SIZES[size][0],
            hidden_size=SIZES[size][1],
            num_heads=SIZES[size][2],
            ig_layer=DEFAULT_IG_LAYER[size],
            **FAMILY_DEFAULTS[family],
        ),
    )
    for family, patches in PATCH_SIZES.items()
    for size, sizes in patches.items()
    for patch in sizes
}


def model_spec(name: str) -> ModelSpec:
    """The registered spec of ``name``, or an IGError that lists the names."""
    if name not in MODELS:
        raise IGError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}")
    return MODELS[name]


def model_options(name: str, **overrides: Any) -> dict[str, Any]:
    """Every option of ``name`` with ``overrides`` applied, checked: what ``create_model`` builds.

    ``depth``, ``hidden_size`` and ``num_heads`` may be overridden (e.g. a tiny model with the 12
    blocks of SiT-B, or the paper's models at toy width for a rehearsal); ``ig_layer`` is the 1-based
    block after which the intermediate head sits (0 = none).
    """
    spec = model_spec(name)
    unknown = sorted(set(overrides) - set(spec.defaults))
    if unknown:
        raise IGError(f"{name}: unknown option(s) {unknown}; valid options: {', '.join(spec.defaults)}")
    options = {**spec.defaults, **overrides}
    for key in ("depth", "hidden_size", "num_heads"):
        if not isinstance(options[key], int) or options[key] < 1:
            raise IGError(f"{name}: {key}={options[key]} must be a positive integer")
    width, heads = options["hidden_size"], options["num_heads"]
    if width % heads or width % 4 or (options["rope"] and width // heads % 4):
        raise IGError(
            f"{name}: hidden_size={width} must be a multiple of num_heads={heads} and of 4 (the 2D position "
            "embedding), and with rope its width per head a multiple of 4"
        )
    if not isinstance(options["ig_layer"], int) or not 0 <= options["ig_layer"] <= options["depth"]:
        raise IGError(
            f"{name}: ig_layer={options['ig_layer']} is outside 0..{options['depth']} (0 = no intermediate head)"
        )
    if options["input_size"] % spec.patch_size:
        raise IGError(
            f"{name}: input_size={options['input_size']} is not a multiple of the patch size "
            f"{spec.patch_size}; pick a model with a matching patch size"
        )
    return options
