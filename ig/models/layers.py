"""Building blocks of the adaLN-Zero diffusion transformer (DiT, SiT, LightningDiT).

The standard transformer pieces come from timm, as in the official SiT code (``PatchEmbed``,
``Attention``, ``Mlp`` of ``timm.models.vision_transformer``); what is written here is what timm
does not have in the releases' form, each saying why. Module and parameter names follow the official
releases (facebookresearch/DiT, willisma/SiT, hustvl/LightningDiT, CVL-UESTC/Internal-Guidance), so
their state dicts load without renaming. Elementwise steps are fused where PyTorch offers it
(``addcmul``) because on CPU they, not the matmuls, are what an eager model can still save.
"""

import math
from functools import partial

import torch
import torch.nn.functional as F
from timm.layers import Attention, Mlp
from timm.layers import PatchEmbed as TimmPatchEmbed
from torch import nn

from ig.models.sizes import MLP_RATIO


def modulate(x: torch.Tensor, shift: torch.Tensor | None, scale: torch.Tensor) -> torch.Tensor:
    """adaLN: ``x·(1 + scale) + shift`` per sample; ``shift`` is None for LightningDiT's ``wo_shift``."""
    scale = 1 + scale.unsqueeze(1)
    if shift is None:
        return x * scale
    return torch.addcmul(shift.unsqueeze(1), x, scale)


def make_norm(dim: int, rmsnorm: bool) -> nn.Module:
    """Pre-norm of blocks and heads: affine-free LayerNorm (DiT/SiT) or RMSNorm with a weight (LightningDiT)."""
    if rmsnorm:
        return nn.RMSNorm(dim, eps=1e-6)
    return nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)


def sincos_pos_embed_2d(dim: int, grid_size: int) -> torch.Tensor:
    """Fixed 2D sin-cos position embedding of MAE/DiT, shape ``(grid_size**2, dim)``, row-major tokens.

    The first half of the channels encodes the column index, the second half the row index
    (hand-written: timm's ``build_sincos2d_pos_embed`` orders the channels differently).
    """
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim / 4))
    pos = torch.arange(grid_size, dtype=torch.float64)
    col = torch.outer(pos.repeat(grid_size), omega)
    row = torch.outer(pos.repeat_interleave(grid_size), omega)
    return torch.cat([col.sin(), col.cos(), row.sin(), row.cos()], dim=1).to(torch.get_default_dtype())


class PatchEmbed(TimmPatchEmbed):
    """timm's patch embedding (a strided convolution ``proj``) for any input size, in ig's argument order."""

    def __init__(self, patch_size: int, in_channels: int, hidden_size: int):
        super().__init__(img_size=None, patch_size=patch_size, in_chans=in_channels, embed_dim=hidden_size)


class TimestepEmbedder(nn.Module):
    """Sinusoidal features of the (fractional) time, then an MLP (GLIDE/DiT; not in timm)."""

    def __init__(self, hidden_size: int, frequency_size: int = 256):
        super().__init__()
        self.frequency_size = frequency_size
        self.mlp = nn.Sequential(nn.Linear(frequency_size, hidden_size), nn.SiLU(), nn.Linear(hidden_size, hidden_size))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        # Frequencies are made here in float32, not kept as a buffer, so that model.to(bf16) cannot
        # round them.
        half = self.frequency_size // 2
        freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
        args = t.float()[:, None] * freqs
        features = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
        return self.mlp(features.to(self.mlp[0].weight.dtype))


class LabelEmbedder(nn.Module):
    """Class embedding whose last row (index ``num_classes``) is the null class of CFG (DiT's; not in timm).

    In training mode each label is replaced by the null class with probability ``dropout_prob``.
    As in the releases, the null row exists only when ``dropout_prob > 0``.
    """

    def __init__(self, num_classes: int, hidden_size: int, dropout_prob: float):
        super().__init__()
        self.num_classes = num_classes
        self.dropout_prob = dropout_prob
        self.embedding_table = nn.Embedding(num_classes + int(dropout_prob > 0), hidden_size)

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        if self.training and self.dropout_prob > 0:
            drop = torch.rand(labels.shape, device=labels.device) < self.dropout_prob
            labels = torch.where(drop, self.num_classes, labels)
        return self.embedding_table(labels)


class RotaryEmbedding2D(nn.Module):
    """2D rotary position embedding of EVA-02 as used by LightningDiT (hand-written: timm's rotary
    embeddings name and lay out their tables differently from the release's buffers).

    The first half of each head's channels rotates with the token's row, the second half with
    its column; channel pairs ``(2i, 2i+1)`` rotate together. The cos/sin tables are persistent
    buffers named as in the release (``freqs_cos``, ``freqs_sin``), so its checkpoints load as
    they are.
    """

    def __init__(self, head_dim: int, grid_size: int, theta: float = 10000.0):
        super().__init__()
        half = head_dim // 2
        freqs = 1.0 / theta ** (torch.arange(0, half, 2, dtype=torch.float32) / half)
        angles = torch.outer(torch.arange(grid_size, dtype=torch.float32), freqs).repeat_interleave(2, dim=1)
        rows = angles[:, None, :].expand(grid_size, grid_size, half)
        cols = angles[None, :, :].expand(grid_size, grid_size, half)
        angles = torch.cat([rows, cols], dim=-1).reshape(grid_size * grid_size, head_dim)
        self.register_buffer("freqs_cos", angles.cos())
        self.register_buffer("freqs_sin", angles.sin())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pairs = x.unflatten(-1, (-1, 2))
        rotated = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)
        return torch.addcmul(x * self.freqs_cos, rotated, self.freqs_sin)


class RopeAttention(Attention):
    """timm's attention, plus LightningDiT's 2D RoPE on q and k when ``rope`` is given (timm's own
    ``AttentionRope`` re-concatenates prefix tokens and re-casts q and k on every call)."""

    def forward(self, x: torch.Tensor, rope: RotaryEmbedding2D | None = None) -> torch.Tensor:
        if rope is None:
            return super().forward(x)
        batch, tokens, dim = x.shape
        qkv = self.qkv(x).view(batch, tokens, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q, k = rope(self.q_norm(q)), rope(self.k_norm(k))
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(batch, tokens, dim))


class SwiGLU(nn.Module):
    """LightningDiT feed-forward: ``w3(silu(a) * b)`` with ``a, b`` from one fused projection ``w12``
    (hand-written: timm's ``GluMlp`` computes the same but names its weights ``fc1``/``fc2``)."""

    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        self.w12 = nn.Linear(dim, 2 * hidden_dim)
        self.w3 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.w12(x).chunk(2, dim=-1)
        return self.w3(F.silu(a) * b)


class DiTBlock(nn.Module):
    """Transformer block with adaLN-Zero conditioning; the LightningDiT options switch its parts."""

    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        mlp_ratio: float = MLP_RATIO,
        *,
        qk_norm: bool = False,
        swiglu: bool = False,
        rmsnorm: bool = False,
        wo_shift: bool = False,
    ):
        super().__init__()
        self.wo_shift = wo_shift
        self.norm1 = make_norm(hidden_size, rmsnorm)
        # QK-norm over each head's channels: LayerNorm with affine (SiT) or RMSNorm (LightningDiT).
        qk_norm_layer = partial(nn.RMSNorm, eps=1e-6) if rmsnorm else nn.LayerNorm
        self.attn = RopeAttention(hidden_size, num_heads, qkv_bias=True, qk_norm=qk_norm, norm_layer=qk_norm_layer)
        self.norm2 = make_norm(hidden_size, rmsnorm)
        mlp_hidden = int(hidden_size * mlp_ratio)
        # LightningDiT keeps the parameter count of the GELU MLP: 2/3 of the hidden width.
        gelu = partial(nn.GELU, approximate="tanh")
        self.mlp = (
            SwiGLU(hidden_size, int(2 / 3 * mlp_hidden)) if swiglu else Mlp(hidden_size, mlp_hidden, act_layer=gelu)
        )
        chunks = 4 if wo_shift else 6
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, chunks * hidden_size))

    def forward(self, x: torch.Tensor, c: torch.Tensor, rope: RotaryEmbedding2D | None = None) -> torch.Tensor:
        if self.wo_shift:
            scale_msa, gate_msa, scale_mlp, gate_mlp = self.adaLN_modulation(c).chunk(4, dim=-1)
            shift_msa = shift_mlp = None
        else:
            shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.adaLN_modulation(c).chunk(6, dim=-1)
        h = self.attn(modulate(self.norm1(x), shift_msa, scale_msa), rope)
        x = torch.addcmul(x, gate_msa.unsqueeze(1), h)
        h = self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp))
        return torch.addcmul(x, gate_mlp.unsqueeze(1), h)


class FinalLayer(nn.Module):
    """Output head: adaLN-modulated norm, then a linear map of each token to its p×p×C patch (DiT's)."""

    def __init__(self, hidden_size: int, patch_size: int, out_channels: int, rmsnorm: bool = False):
        super().__init__()
        self.norm_final = make_norm(hidden_size, rmsnorm)
        self.linear = nn.Linear(hidden_size, patch_size * patch_size * out_channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 2 * hidden_size))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=-1)
        return self.linear(modulate(self.norm_final(x), shift, scale))
