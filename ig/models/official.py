"""Load state dicts of the official releases into ig's models.

Four sources share DiT's key layout; the model name gives the family and size, the keys tell
the rest:

- CVL-UESTC/Internal-Guidance ``SiT/``: SiT with head ``final_layer_xr``, output C channels,
  ig's time convention.
- willisma/SiT: SiT without head, learned-sigma output 2C channels, flipped time.
- CVL-UESTC/Internal-Guidance ``LightningDiT/``: LightningDiT with head ``final_layer_xr``, flipped.
- hustvl/LightningDiT: LightningDiT without head, flipped.

"flipped": trained with ``t = 0`` noise and velocity ``x0 - eps``; the model converts at its edge
(``flip_time``). Upstream SiT is recognised by its learned-sigma output (``learn_sigma=True`` in
its training script), of which only the velocity half is kept.
"""

import math
import re
import warnings
from collections import Counter
from collections.abc import Mapping
from typing import Any

import torch

from ig.errors import IGError
from ig.models.dit import DiT, create_model
from ig.models.sizes import MODELS, ModelSpec, model_spec

# The release attaches its intermediate head after block 8 for every size (``encoder_depth``).
RELEASE_IG_LAYER = 8
# DDP (``module.``) and torch.compile (``_orig_mod.``) wrap the keys of models saved from them.
WRAPPER_PREFIXES = ("module.", "_orig_mod.")
RENAMED = {"final_layer_xr.": "intermediate_layer."}
# Keys that official-lineage checkpoints may carry and ig drops on purpose, with the reason.
IGNORED = {
    "projectors.": "REPA's representation-alignment projectors, a leftover the IG release no longer uses",
}


def from_official(name: str, state_dict: Mapping[str, Any], **overrides: Any) -> DiT:
    """Build ``name`` from an official state dict (or a checkpoint dict holding ``ema``/``model``).

    ``in_channels``, ``input_size`` and ``num_classes`` are read from the tensor shapes,
    ``ig_layer`` defaults to the release's 8 when the state dict has an intermediate head (0 when
    not), and SiT's ``flip_time`` to whether it is an upstream (learned-sigma) checkpoint;
    ``overrides`` win. A state dict that does not fit raises an IGError naming the keys and the fix.
    """
    spec = model_spec(name)
    state = _clean_keys(state_dict)
    options = {**_options_from_shapes(state, spec, overrides), **overrides}
    model = create_model(name, **options)
    _keep_velocity_half(state, model)
    _check_fit(state, model, spec)
    model.load_state_dict(state)
    return model


def _clean_keys(checkpoint: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Pick the EMA weights if present, strip wrapper prefixes, rename the head, drop ignored keys."""
    for key in ("ema", "model"):
        if isinstance(checkpoint.get(key), Mapping):
            checkpoint = checkpoint[key]
            break
    state, ignored = {}, Counter()
    for key, value in checkpoint.items():
        while key.startswith(WRAPPER_PREFIXES):
            key = key.split(".", 1)[1]
        for old, new in RENAMED.items():
            if key.startswith(old):
                key = new + key.removeprefix(old)
        prefix = next((p for p in IGNORED if key.startswith(p)), None)
        if prefix is None:
            state[key] = value
        else:
            ignored[prefix] += 1
    for prefix, count in ignored.items():
        warnings.warn(f"from_official: ignoring {count} keys under {prefix!r}: {IGNORED[prefix]}", stacklevel=3)
    return state


def _options_from_shapes(state: dict, spec: ModelSpec, overrides: dict) -> dict[str, Any]:
    """The options a state dict shows; absent keys leave the defaults (the fit check reports them)."""
    options: dict[str, Any] = {"ig_layer": RELEASE_IG_LAYER if "intermediate_layer.linear.weight" in state else 0}
    if "x_embedder.proj.weight" in state:
        options["in_channels"] = state["x_embedder.proj.weight"].shape[1]
    if "pos_embed" in state:
        options["input_size"] = math.isqrt(state["pos_embed"].shape[1]) * spec.patch_size
    if "y_embedder.embedding_table.weight" in state:
        dropout = overrides.get("class_dropout_prob", spec.defaults["class_dropout_prob"])
        options["num_classes"] = state["y_embedder.embedding_table.weight"].shape[0] - int(dropout > 0)
    if spec.family == "SiT":
        in_channels = options.get("in_channels", spec.defaults["in_channels"])
        options["flip_time"] = _has_learned_sigma(state, "final_layer", in_channels, spec.patch_size)
    return options


def _has_learned_sigma(state: dict, head: str, in_channels: int, patch_size: int) -> bool:
    weight = state.get(f"{head}.linear.weight")
    return weight is not None and weight.shape[0] == 2 * patch_size**2 * in_channels


def _keep_velocity_half(state: dict, model: DiT) -> None:
    """Slice a learned-sigma head (p·p·2C outputs, channel fastest) down to its velocity channels."""
    p, channels = model.patch_size, model.in_channels
    for head in ("final_layer", "intermediate_layer"):
        if _has_learned_sigma(state, head, channels, p):
            for key in (f"{head}.linear.weight", f"{head}.linear.bias"):
                state[key] = state[key].unflatten(0, (p * p, 2 * channels))[:, :channels].flatten(0, 1)


def _check_fit(state: dict, model: DiT, spec: ModelSpec) -> None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}"
        for k in expected
        if k in state and state[k].shape != expected[k].shape
    ]
    problems = [
        f"{label} {', '.join(keys[:3])}" + (f" (+{len(keys) - 3} more)" if len(keys) > 3 else "")
        for label, keys in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("checkpoint vs model shape", mismatched),
        )
        if keys
    ]
    if problems:
        name = model.config["name"]
        raise IGError(f"{name}: the state dict does not fit: {'; '.join(problems)}; fix: {_fix(state, model, spec)}")


def _fix(state: dict, model: DiT, spec: ModelSpec) -> str:
    """The most likely remedy: another model name, other options, or the training configuration."""
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d+)\.", k))}
    width = state["t_embedder.mlp.2.weight"].shape[0] if "t_embedder.mlp.2.weight" in state else None
    patch = state["x_embedder.proj.weight"].shape[-1] if "x_embedder.proj.weight" in state else None
    shape = (len(blocks), width, patch)
    if blocks and width and patch and shape != (spec.depth, spec.hidden_size, spec.patch_size):
        names = [n for n, s in MODELS.items() if (s.depth, s.hidden_size, s.patch_size) == shape]
        names.sort(key=lambda n: MODELS[n].family != spec.family)
        found = f"load it as {names[0]}" if names else "no registered model has that shape"
        return f"the checkpoint has {shape[0]} blocks of width {width} with patch {patch}: {found}"
    has_head = "intermediate_layer.linear.weight" in state
    if has_head != (model.ig_layer > 0):
        if has_head:
            return f"pass ig_layer=<block of the intermediate head> (the release uses {RELEASE_IG_LAYER})"
        return "pass ig_layer=0 (the checkpoint has no intermediate head)"
    adaln = state.get("blocks.0.adaLN_modulation.1.weight")
    shown = {
        "qk_norm": "blocks.0.attn.q_norm.weight" in state,
        "swiglu": "blocks.0.mlp.w12.weight" in state,
        "rmsnorm": "blocks.0.norm1.weight" in state,
        "rope": "feat_rope.freqs_cos" in state,
        "wo_shift": adaln is not None and adaln.shape[0] == 4 * spec.hidden_size,
    }
    differing = [f"{k}={v}" for k, v in shown.items() if model.config[k] != v]
    if differing:
        return f"pass {', '.join(differing)}"
    return "pass the model name and options the checkpoint was trained with"
