"""The diffusion transformer with an intermediate head, built from a registered size (``ig.models.sizes``).

SiT and LightningDiT are one architecture (DiT with adaLN-Zero) that differ only in switches:
LightningDiT turns on SwiGLU, RMSNorm and 2D RoPE and works in the other time convention. A
family is therefore a set of default options (``ig.models.sizes``), not a separate class.

Internal Guidance adds a second output head (``intermediate_layer``, the release's
``final_layer_xr``) after block ``ig_layer``; both velocities come from one forward pass.
"""

from typing import Any

import torch
from torch import nn

from ig.models.layers import (
    DiTBlock,
    FinalLayer,
    LabelEmbedder,
    PatchEmbed,
    RotaryEmbedding2D,
    TimestepEmbedder,
    sincos_pos_embed_2d,
)
from ig.models.sizes import MLP_RATIO, model_options, model_spec


class DiT(nn.Module):
    """``model(x, t, y) -> (v_final, v_intermediate | None)`` in ig's time convention.

    ``t = 0`` is data, ``t = 1`` noise and the velocity is ``eps - x0``. With ``flip_time`` the
    network itself was trained the other way round (``t = 0`` noise, velocity ``x0 - eps``, as
    upstream SiT and LightningDiT); the model then feeds ``1 - t`` to the time embedding and
    negates both outputs, so callers never see the other convention.
    """

    config: dict[str, Any]  # set by create_model: the name and every option

    def __init__(
        self,
        *,
        depth: int,
        hidden_size: int,
        num_heads: int,
        patch_size: int,
        input_size: int,
        in_channels: int,
        num_classes: int,
        class_dropout_prob: float,
        ig_layer: int,
        head_zero_init: bool,
        qk_norm: bool,
        swiglu: bool,
        rmsnorm: bool,
        rope: bool,
        wo_shift: bool,
        flip_time: bool,
        mlp_ratio: float = MLP_RATIO,
    ):
        super().__init__()
        self.in_channels = in_channels
        self.input_size = input_size
        self.num_classes = num_classes
        self.patch_size = patch_size
        self.ig_layer = ig_layer
        self.flip_time = flip_time
        grid_size = input_size // patch_size

        self.x_embedder = PatchEmbed(patch_size, in_channels, hidden_size)
        self.t_embedder = TimestepEmbedder(hidden_size)
        self.y_embedder = LabelEmbedder(num_classes, hidden_size, class_dropout_prob)
        # A frozen Parameter, not a buffer, as in the releases: it keeps their state-dict layout and
        # their parameter counts (SiT-XL/2 + head = 677.8M). Optimizers must skip requires_grad=False.
        self.pos_embed = nn.Parameter(sincos_pos_embed_2d(hidden_size, grid_size)[None], requires_grad=False)
        self.feat_rope = RotaryEmbedding2D(hidden_size // num_heads, grid_size) if rope else None
        block_options = dict(qk_norm=qk_norm, swiglu=swiglu, rmsnorm=rmsnorm, wo_shift=wo_shift)
        self.blocks = nn.ModuleList(DiTBlock(hidden_size, num_heads, mlp_ratio, **block_options) for _ in range(depth))
        self.intermediate_layer = FinalLayer(hidden_size, patch_size, in_channels, rmsnorm) if ig_layer > 0 else None
        self.final_layer = FinalLayer(hidden_size, patch_size, in_channels, rmsnorm)
        self._initialize_weights(head_zero_init)

    @torch.no_grad()
    def _initialize_weights(self, head_zero_init: bool) -> None:
        """DiT's initialisation: xavier linears, adaLN-Zero blocks, zero final head."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        patch = self.x_embedder.proj
        nn.init.xavier_uniform_(patch.weight.view(patch.weight.shape[0], -1))
        nn.init.zeros_(patch.bias)
        nn.init.normal_(self.y_embedder.embedding_table.weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[0].weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[2].weight, std=0.02)
        for block in self.blocks:
            nn.init.zeros_(block.adaLN_modulation[-1].weight)
            nn.init.zeros_(block.adaLN_modulation[-1].bias)
        # The SiT release zeroes the intermediate head like the final one; LightningDiT keeps xavier.
        heads = [self.final_layer]
        if head_zero_init and self.intermediate_layer is not None:
            heads.append(self.intermediate_layer)
        for head in heads:
            for layer in (head.adaLN_modulation[-1], head.linear):
                nn.init.zeros_(layer.weight)
                nn.init.zeros_(layer.bias)

    def _velocity(self, head: FinalLayer, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Apply an output head, reassemble patches into ``(B, C, H, W)``, convert the convention."""
        patches = head(x, c)
        batch, p, grid = x.shape[0], self.patch_size, self.input_size // self.patch_size
        v = patches.view(batch, grid, grid, p, p, self.in_channels).permute(0, 5, 1, 3, 2, 4)
        v = v.reshape(batch, self.in_channels, grid * p, grid * p)
        return -v if self.flip_time else v

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.flip_time:
            t = 1 - t
        c = self.t_embedder(t) + self.y_embedder(y)
        x = self.x_embedder(x) + self.pos_embed
        v_intermediate = None
        for index, block in enumerate(self.blocks, start=1):
            x = block(x, c, self.feat_rope)
            if index == self.ig_layer:
                v_intermediate = self._velocity(self.intermediate_layer, x, c)
        return self._velocity(self.final_layer, x, c), v_intermediate


def create_model(name: str, **overrides: Any) -> DiT:
    """Build a registered model (``ig.models.sizes``); ``overrides`` replace its default options.

    Options: input_size (latent H = W), in_channels, num_classes, class_dropout_prob, depth,
    hidden_size, num_heads, ig_layer (1-based block after which the intermediate head sits, 0 = none),
    head_zero_init, qk_norm, swiglu, rmsnorm, rope, wo_shift, flip_time. ``model.config`` holds the
    name and every option, so ``create_model(**model.config)`` rebuilds the same architecture.
    """
    options = model_options(name, **overrides)
    model = DiT(patch_size=model_spec(name).patch_size, **options)
    model.config = {"name": name, **options}
    return model
