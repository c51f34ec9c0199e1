"""``from_official`` against an independent truth, without the official repositories.

The tests build state dicts in the key layout of the four official sources (read from
CVL-UESTC/Internal-Guidance ``SiT/models/sit.py`` and ``LightningDiT/models/lightningdit.py``,
willisma/SiT ``models.py``, hustvl/LightningDiT ``models/lightningdit.py``) with random values,
and compare ig's model with ``reference_forward``: a plain functional forward over the state
dict that follows the official math (explicit softmax attention, adaLN modulate, RoPE as complex
rotation, unpatchify, learned-sigma chunk) in the checkpoint's own time convention. Everything
runs in float64 so that agreement is to ~1e-12, not to float32 noise.
"""

import math
from dataclasses import dataclass, replace

import numpy as np
import pytest
import torch

from ig.errors import IGError
from ig.models import create_model, from_official

# Parameter counts of the official models, measured by building their code (commits
# d048cc3e, 947f95bd, 2725fed4) on the meta device: SiT at 32×32×4, LightningDiT at 16×16×32 with
# the release options (SwiGLU, RMSNorm, RoPE). IG release: with its intermediate head.
IG_RELEASE_PARAMS = {
    "SiT-B/2": 131_693_600, "SiT-B/4": 131_656_832, "SiT-B/8": 132_062_720,
    "SiT-L/2": 460_202_016, "SiT-L/4": 460_152_960, "SiT-L/8": 460_694_016,
    "SiT-XL/2": 677_786_144, "SiT-XL/4": 677_730_944, "SiT-XL/8": 678_339_584,
    "LightningDiT-B/1": 131_762_752, "LightningDiT-B/2": 131_836_672,
    "LightningDiT-L/1": 460_285_984, "LightningDiT-L/2": 460_384_480,
    "LightningDiT-XL/1": 677_951_296, "LightningDiT-XL/2": 678_062_080,
}  # fmt: skip
# Upstream releases: no intermediate head; upstream SiT has a learned-sigma output of 2C channels.
UPSTREAM_PARAMS = {
    "SiT-S/2": 32_963_360, "SiT-S/4": 32_945_024, "SiT-S/8": 33_148_160,
    "SiT-B/2": 130_512_416, "SiT-L/2": 458_102_816, "SiT-XL/2": 675_129_632,
    "LightningDiT-B/1": 130_556_192, "LightningDiT-B/2": 130_556_288,
    "LightningDiT-L/2": 458_153_056, "LightningDiT-XL/1": 675_256_736, "LightningDiT-XL/2": 675_256_832,
}  # fmt: skip


@dataclass(frozen=True)
class Source:
    """One official checkpoint format at the tiny size (depth 6, width 128, 4 heads)."""

    name: str
    patch: int
    channels: int
    input_size: int
    head: bool  # has final_layer_xr (IG release)
    flipped: bool  # trained with t = 0 noise, velocity x0 - eps
    learn_sigma: bool = False
    qk_norm: bool = False
    swiglu: bool = False
    rmsnorm: bool = False
    rope: bool = False
    wo_shift: bool = False
    depth: int = 6
    hidden: int = 128
    heads: int = 4
    num_classes: int = 10
    ig_layer: int = 3

    def options(self) -> dict:
        """The switches (not all are the family's defaults here) and the head's block, which keys cannot show."""
        switches = dict(qk_norm=self.qk_norm, swiglu=self.swiglu, rmsnorm=self.rmsnorm, rope=self.rope)
        return {**switches, "wo_shift": self.wo_shift, "ig_layer": self.ig_layer if self.head else 0}


LIGHTNING = dict(name="LightningDiT-T/1", patch=1, channels=8, input_size=4, flipped=True, swiglu=True)
SOURCES = {
    "ig-sit": Source("SiT-T/2", 2, 4, 8, head=True, flipped=False),
    "ig-sit-qknorm": Source("SiT-T/2", 2, 4, 8, head=True, flipped=False, qk_norm=True),
    "willisma-sit": Source("SiT-T/2", 2, 4, 8, head=False, flipped=True, learn_sigma=True),
    "ig-lightningdit": Source(**LIGHTNING, head=True, rmsnorm=True, rope=True),
    "hustvl-lightningdit": Source(**LIGHTNING, head=False, rmsnorm=True, rope=True),
    "lightningdit-qknorm-woshift": Source(**LIGHTNING, head=True, rmsnorm=True, rope=True, qk_norm=True, wo_shift=True),
    "lightningdit-layernorm-qknorm": Source(**{**LIGHTNING, "swiglu": False}, head=True, qk_norm=True),
}  # fmt: skip


@pytest.fixture(autouse=True)
def float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


# --------------------------------------------------------------------------- independent truths


def mae_pos_embed(dim: int, grid: int) -> np.ndarray:
    """MAE's 2D sin-cos table, token by token: [sin(col·ω), cos(col·ω), sin(row·ω), cos(row·ω)]."""
    omega = 1.0 / 10000 ** (np.arange(dim // 4) / (dim / 4))
    table = np.zeros((grid * grid, dim))
    for row in range(grid):
        for col in range(grid):
            table[row * grid + col] = np.concatenate(
                [np.sin(col * omega), np.cos(col * omega), np.sin(row * omega), np.cos(row * omega)]
            )
    return table


def eva_rope_angles(head_dim: int, grid: int) -> np.ndarray:
    """EVA-02 2D RoPE angle per token and channel: first half rotates with the row, second with the
    column; channels 2i and 2i+1 share the frequency 10000^(-2i / (head_dim / 2))."""
    half = head_dim // 2
    angles = np.zeros((grid * grid, head_dim))
    for row in range(grid):
        for col in range(grid):
            for i in range(half // 2):
                freq = 10000.0 ** (-2 * i / half)
                angles[row * grid + col, [2 * i, 2 * i + 1]] = row * freq
                angles[row * grid + col, [half + 2 * i, half + 2 * i + 1]] = col * freq
    return angles


def official_state(src: Source, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights under the official key names and shapes; pos_embed / RoPE tables as released."""
    g = torch.Generator().manual_seed(seed)
    h, p, grid = src.hidden, src.patch, src.input_size // src.patch
    state: dict[str, torch.Tensor] = {}

    def linear(prefix: str, fan_in: int, fan_out: int) -> None:
        state[f"{prefix}.weight"] = torch.randn(fan_out, fan_in, generator=g) / math.sqrt(fan_in)
        state[f"{prefix}.bias"] = 0.1 * torch.randn(fan_out, generator=g)

    def norm(prefix: str, dim: int, rms: bool, layer_norm_affine: bool = False) -> None:
        if rms or layer_norm_affine:
            state[f"{prefix}.weight"] = 1 + 0.1 * torch.randn(dim, generator=g)
        if layer_norm_affine and not rms:
            state[f"{prefix}.bias"] = 0.1 * torch.randn(dim, generator=g)

    def head(prefix: str) -> None:
        norm(f"{prefix}.norm_final", h, src.rmsnorm)
        linear(f"{prefix}.linear", h, p * p * src.channels * (2 if src.learn_sigma else 1))
        linear(f"{prefix}.adaLN_modulation.1", h, 2 * h)

    state["pos_embed"] = torch.from_numpy(mae_pos_embed(h, grid))[None]
    state["x_embedder.proj.weight"] = torch.randn(h, src.channels, p, p, generator=g) / (p * math.sqrt(src.channels))
    state["x_embedder.proj.bias"] = 0.1 * torch.randn(h, generator=g)
    linear("t_embedder.mlp.0", 256, h)
    linear("t_embedder.mlp.2", h, h)
    state["y_embedder.embedding_table.weight"] = torch.randn(src.num_classes + 1, h, generator=g)
    if src.rope:
        angles = torch.from_numpy(eva_rope_angles(h // src.heads, grid)).float()  # float32 buffers
        state["feat_rope.freqs_cos"], state["feat_rope.freqs_sin"] = angles.cos(), angles.sin()
    for i in range(src.depth):
        block = f"blocks.{i}"
        norm(f"{block}.norm1", h, src.rmsnorm)
        norm(f"{block}.norm2", h, src.rmsnorm)
        linear(f"{block}.attn.qkv", h, 3 * h)
        if src.qk_norm:
            norm(f"{block}.attn.q_norm", h // src.heads, src.rmsnorm, layer_norm_affine=True)
            norm(f"{block}.attn.k_norm", h // src.heads, src.rmsnorm, layer_norm_affine=True)
        linear(f"{block}.attn.proj", h, h)
        if src.swiglu:
            hidden = int(2 / 3 * 4 * h)
            linear(f"{block}.mlp.w12", h, 2 * hidden)
            linear(f"{block}.mlp.w3", hidden, h)
        else:
            linear(f"{block}.mlp.fc1", h, 4 * h)
            linear(f"{block}.mlp.fc2", 4 * h, h)
        linear(f"{block}.adaLN_modulation.1", h, (4 if src.wo_shift else 6) * h)
        state[f"{block}.adaLN_modulation.1.weight"] *= 0.3  # keep the gates moderate
    if src.head:
        head("final_layer_xr")
    head("final_layer")
    return state


def reference_forward(
    state: dict[str, torch.Tensor], src: Source, x: torch.Tensor, s: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The official network's output at its own time ``s``, written out step by step."""
    h, heads, p = src.hidden, src.heads, src.patch
    batch, channels, size, _ = x.shape
    grid, d = size // p, h // heads

    def lin(prefix, v):
        return v @ state[f"{prefix}.weight"].T + state[f"{prefix}.bias"]

    def silu(v):
        return v * torch.sigmoid(v)

    def norm(prefix, v, eps=1e-6):
        if src.rmsnorm:
            return v / torch.sqrt((v * v).mean(-1, keepdim=True) + eps) * state[f"{prefix}.weight"]
        mean = v.mean(-1, keepdim=True)
        return (v - mean) / torch.sqrt(((v - mean) ** 2).mean(-1, keepdim=True) + eps)

    def qk_norm(prefix, v):
        if not src.qk_norm:
            return v
        if src.rmsnorm:
            return norm(prefix, v)
        mean = v.mean(-1, keepdim=True)
        normed = (v - mean) / torch.sqrt(((v - mean) ** 2).mean(-1, keepdim=True) + 1e-5)  # nn.LayerNorm
        return normed * state[f"{prefix}.weight"] + state[f"{prefix}.bias"]

    def rotate(v):  # pairs (2i, 2i+1) as complex numbers times e^{i·angle}
        if not src.rope:
            return v
        cos, sin = state["feat_rope.freqs_cos"][:, ::2], state["feat_rope.freqs_sin"][:, ::2]
        pairs = torch.view_as_complex(v.reshape(*v.shape[:-1], d // 2, 2).contiguous())
        return torch.view_as_real(pairs * torch.complex(cos.double(), sin.double())).flatten(-2)

    def modulate(v, shift, scale):
        return v * (1 + scale[:, None]) + (0 if shift is None else shift[:, None])

    def head(prefix, v, c):
        shift, scale = lin(f"{prefix}.adaLN_modulation.1", silu(c)).chunk(2, dim=-1)
        out = lin(f"{prefix}.linear", modulate(norm(f"{prefix}.norm_final", v), shift, scale))
        out_channels = out.shape[-1] // (p * p)
        out = out.reshape(batch, grid, grid, p, p, out_channels)
        out = torch.einsum("nhwpqc->nchpwq", out).reshape(batch, out_channels, size, size)
        return out[:, :channels]  # learned sigma: the velocity is the first half of the channels

    patches = x.reshape(batch, channels, grid, p, grid, p)
    tokens = torch.einsum("bcipjq,ocpq->bijo", patches, state["x_embedder.proj.weight"]).reshape(batch, -1, h)
    tokens = tokens + state["x_embedder.proj.bias"] + state["pos_embed"]
    freqs = torch.exp(-math.log(10000) * torch.arange(128, dtype=torch.float32) / 128)
    arguments = s.float()[:, None] * freqs  # float32 time features, as in the releases
    t_features = torch.cat([torch.cos(arguments), torch.sin(arguments)], dim=-1).double()
    c = lin("t_embedder.mlp.2", silu(lin("t_embedder.mlp.0", t_features)))
    c = c + state["y_embedder.embedding_table.weight"][y]
    v_intermediate = None
    for i in range(src.depth):
        block = f"blocks.{i}"
        modulation = lin(f"{block}.adaLN_modulation.1", silu(c)).chunk(4 if src.wo_shift else 6, dim=-1)
        if src.wo_shift:
            (scale_a, gate_a, scale_m, gate_m), shift_a, shift_m = modulation, None, None
        else:
            shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = modulation
        qkv = lin(f"{block}.attn.qkv", modulate(norm(f"{block}.norm1", tokens), shift_a, scale_a))
        q, k, v = qkv.reshape(batch, -1, 3, heads, d).permute(2, 0, 3, 1, 4)
        q = rotate(qk_norm(f"{block}.attn.q_norm", q))
        k = rotate(qk_norm(f"{block}.attn.k_norm", k))
        weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), dim=-1)
        attention = (weights @ v).transpose(1, 2).reshape(batch, -1, h)
        tokens = tokens + gate_a[:, None] * lin(f"{block}.attn.proj", attention)
        hidden = modulate(norm(f"{block}.norm2", tokens), shift_m, scale_m)
        if src.swiglu:
            a, b = lin(f"{block}.mlp.w12", hidden).chunk(2, dim=-1)
            mlp = lin(f"{block}.mlp.w3", silu(a) * b)
        else:
            u = lin(f"{block}.mlp.fc1", hidden)
            gelu = 0.5 * u * (1 + torch.tanh(math.sqrt(2 / math.pi) * (u + 0.044715 * u**3)))
            mlp = lin(f"{block}.mlp.fc2", gelu)
        tokens = tokens + gate_m[:, None] * mlp
        if src.head and i + 1 == src.ig_layer:
            v_intermediate = head("final_layer_xr", tokens, c)
    return head("final_layer", tokens, c), v_intermediate


def batch_for(src: Source, n: int = 4) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    x = torch.randn(n, src.channels, src.input_size, src.input_size, generator=g)
    y = torch.tensor([0, 3, src.num_classes, 9])[:n]  # includes the null class
    return x, torch.tensor([0.0, 0.13, 0.5, 0.97])[:n], y


# --------------------------------------------------------------------------- parity


@pytest.mark.parametrize("source", SOURCES)
def test_from_official_matches_the_reference_forward_in_our_time_convention(source):
    src = SOURCES[source]
    state = official_state(src)
    model = from_official(src.name, state, **src.options()).eval()
    assert model.flip_time is src.flipped
    x, t, y = batch_for(src)
    with torch.no_grad():
        ours = model(x, t, y)
        # our v at t is their v at t (IG SiT), or minus their v at 1 - t (t = 0 noise releases)
        theirs = reference_forward(state, src, x, 1 - t if src.flipped else t, y)
    sign = -1 if src.flipped else 1
    assert ours[0].abs().max() > 1e-2  # the comparison is not between zeros
    torch.testing.assert_close(ours[0], sign * theirs[0], rtol=1e-9, atol=1e-9)
    if src.head:
        torch.testing.assert_close(ours[1], sign * theirs[1], rtol=1e-9, atol=1e-9)
    else:
        assert ours[1] is None


def test_input_size_channels_and_classes_are_read_from_the_state_dict():
    src = replace(SOURCES["ig-lightningdit"], input_size=6, channels=5, num_classes=7)
    state = official_state(src)
    model = from_official(src.name, state, ig_layer=src.ig_layer).eval()  # the release's other options
    assert (model.in_channels, model.input_size, model.num_classes) == (5, 6, 7)
    x, t, y = batch_for(src, 3)
    with torch.no_grad():
        torch.testing.assert_close(model(x, t, y)[1], -reference_forward(state, src, x, 1 - t, y)[1])


def test_fixed_tables_equal_the_official_formulas():
    """pos_embed and the RoPE tables ig computes itself (create_model) are the releases' ones."""
    model = create_model("LightningDiT-T/1", input_size=6)
    torch.testing.assert_close(model.pos_embed[0], torch.from_numpy(mae_pos_embed(128, 6)), rtol=0, atol=1e-6)
    angles = torch.from_numpy(eva_rope_angles(32, 6)).float()
    torch.testing.assert_close(model.feat_rope.freqs_cos, angles.cos(), rtol=0, atol=1e-6)
    torch.testing.assert_close(model.feat_rope.freqs_sin, angles.sin(), rtol=0, atol=1e-6)


def test_checkpoint_wrappers_and_prefixes_are_unwrapped_preferring_ema():
    src = SOURCES["ig-sit"]
    state, other = official_state(src, seed=0), official_state(src, seed=1)
    wrapped = {f"module._orig_mod.{k}": v for k, v in state.items()}
    x, t, y = batch_for(src)
    expected = reference_forward(state, src, x, t, y)[0]
    for checkpoint in ({"ema": state, "model": other, "opt": {}}, {"model": wrapped, "steps": 3}, wrapped):
        model = from_official(src.name, checkpoint, ig_layer=src.ig_layer).eval()
        with torch.no_grad():
            torch.testing.assert_close(model(x, t, y)[0], expected, rtol=1e-9, atol=1e-9)


def test_repa_projector_keys_are_dropped_with_a_warning():
    src = SOURCES["ig-sit"]
    state = {**official_state(src), "projectors.0.0.weight": torch.zeros(4, 128), "projectors.0.0.bias": torch.zeros(4)}
    with pytest.warns(UserWarning, match="ignoring 2 keys under 'projectors.': REPA"):
        from_official(src.name, state, ig_layer=src.ig_layer)


def test_parameter_counts_equal_the_official_models():
    """IG release models with their head; upstream ones without, minus upstream SiT's sigma half."""
    for name, count in IG_RELEASE_PARAMS.items():
        with torch.device("meta"):
            model = create_model(name, ig_layer=8)
        assert sum(p.numel() for p in model.parameters()) == count, name
    for name, count in UPSTREAM_PARAMS.items():
        with torch.device("meta"):
            model = create_model(name, ig_layer=0)
        hidden, p = model.pos_embed.shape[-1], model.patch_size
        sigma = p * p * model.in_channels * (hidden + 1) if name.startswith("SiT") else 0
        assert sum(q.numel() for q in model.parameters()) + sigma == count, name
    assert round(IG_RELEASE_PARAMS["SiT-XL/2"] / 1e6, 1) == 677.8  # the paper's table


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "source,name,edit,overrides,match",
    [
        ("ig-sit", "SiT-T/2", "drop blocks.3.attn.proj.weight", {"ig_layer": 3},
         r"missing blocks\.3\.attn\.proj\.weight; fix: pass the model name and options"),
        ("ig-sit", "SiT-S/2", None, {"ig_layer": 3},
         r"shape pos_embed \(1, 16, 128\) vs \(1, 16, 384\).*fix: the checkpoint has 6 blocks of width 128 "
         r"with patch 2: load it as SiT-T/2"),
        ("hustvl-lightningdit", "LightningDiT-T/1", None, {"ig_layer": 2},
         r"missing intermediate_layer\..*fix: pass ig_layer=0 \(the checkpoint has no intermediate head\)"),
        ("ig-lightningdit", "LightningDiT-T/1", None, {"ig_layer": 0},
         r"unexpected intermediate_layer\..*fix: pass ig_layer=<block of the intermediate head> "
         r"\(the release uses 8\)"),
        ("lightningdit-qknorm-woshift", "LightningDiT-T/1", None, {"ig_layer": 3},
         r"fix: pass qk_norm=True, wo_shift=True$"),
        ("ig-sit", "SiT-T/2", None, {}, r"ig_layer=8 is outside 0\.\.6"),  # the release's block 8 by default
    ],
)  # fmt: skip
def test_state_dicts_that_do_not_fit_give_one_line_with_the_keys_and_the_fix(source, name, edit, overrides, match):
    state = official_state(SOURCES[source])
    if edit:
        del state[edit.removeprefix("drop ")]
    with pytest.raises(IGError, match=match) as error:
        from_official(name, state, **overrides)
    assert "\n" not in str(error.value)
