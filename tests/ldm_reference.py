"""The LDM autoencoder (CompVis latent-diffusion; VA-VAE's ``tokenizer/autoencoder.py``) written
as plain functions over its state dict: an independent reference for ``ig.data.autoencoders``.

``Params`` creates each weight on first use, so one pass builds an LDM-format state dict and
later passes compute reference outputs from it.
"""

import torch
import torch.nn.functional as F


class Params:
    def __init__(self, seed: int = 0):
        self.sd: dict[str, torch.Tensor] = {}
        self.gen = torch.Generator().manual_seed(seed)

    def get(self, name: str, shape: tuple[int, ...], scale: float, offset: float = 0.0) -> torch.Tensor:
        if name not in self.sd:
            self.sd[name] = offset + scale * torch.randn(shape, generator=self.gen)
        return self.sd[name]

    def conv(self, x, name, out_ch, k=3, stride=1, padding=1):
        w = self.get(f"{name}.weight", (out_ch, x.shape[1], k, k), (x.shape[1] * k * k) ** -0.5)
        return F.conv2d(x, w, self.get(f"{name}.bias", (out_ch,), 0.1), stride=stride, padding=padding)

    def norm(self, x, name):
        c = x.shape[1]
        return F.group_norm(
            x, 32, self.get(f"{name}.weight", (c,), 0.1, 1.0), self.get(f"{name}.bias", (c,), 0.1), 1e-6
        )

    def resnet(self, x, name, out_ch):
        h = self.conv(F.silu(self.norm(x, f"{name}.norm1")), f"{name}.conv1", out_ch)
        h = self.conv(F.silu(self.norm(h, f"{name}.norm2")), f"{name}.conv2", out_ch)
        if x.shape[1] != out_ch:
            x = self.conv(x, f"{name}.nin_shortcut", out_ch, k=1, padding=0)
        return x + h

    def attn(self, x, name):
        b, c, hh, ww = x.shape
        h = self.norm(x, f"{name}.norm")
        q, k, v = (self.conv(h, f"{name}.{p}", c, k=1, padding=0).reshape(b, c, hh * ww) for p in "qkv")
        weights = torch.softmax(torch.einsum("bci,bcj->bij", q, k) * c**-0.5, dim=2)
        out = torch.einsum("bcj,bij->bci", v, weights).reshape(b, c, hh, ww)
        return x + self.conv(out, f"{name}.proj_out", c, k=1, padding=0)


ARCH = {"ch": 32, "ch_mult": (1, 2, 2), "blocks": 2, "z": 4, "attn_levels": (2,)}


def ldm_encode(p: Params, x, ch, ch_mult, blocks, z, attn_levels):
    h = p.conv(x, "encoder.conv_in", ch)
    for i, mult in enumerate(ch_mult):
        for j in range(blocks):
            h = p.resnet(h, f"encoder.down.{i}.block.{j}", ch * mult)
            if i in attn_levels:
                h = p.attn(h, f"encoder.down.{i}.attn.{j}")
        if i != len(ch_mult) - 1:
            h = p.conv(F.pad(h, (0, 1, 0, 1)), f"encoder.down.{i}.downsample.conv", h.shape[1], stride=2, padding=0)
    h = p.resnet(h, "encoder.mid.block_1", h.shape[1])
    h = p.attn(h, "encoder.mid.attn_1")
    h = p.resnet(h, "encoder.mid.block_2", h.shape[1])
    h = p.conv(F.silu(p.norm(h, "encoder.norm_out")), "encoder.conv_out", 2 * z)
    mean, logvar = p.conv(h, "quant_conv", 2 * z, k=1, padding=0).chunk(2, dim=1)
    return mean, torch.exp(0.5 * logvar.clamp(-30, 20))


def ldm_decode(p: Params, latent, ch, ch_mult, blocks, z, attn_levels):
    h = p.conv(p.conv(latent, "post_quant_conv", z, k=1, padding=0), "decoder.conv_in", ch * ch_mult[-1])
    h = p.resnet(h, "decoder.mid.block_1", h.shape[1])
    h = p.attn(h, "decoder.mid.attn_1")
    h = p.resnet(h, "decoder.mid.block_2", h.shape[1])
    for i in reversed(range(len(ch_mult))):
        for j in range(blocks + 1):
            h = p.resnet(h, f"decoder.up.{i}.block.{j}", ch * ch_mult[i])
            if i in attn_levels:
                h = p.attn(h, f"decoder.up.{i}.attn.{j}")
        if i != 0:
            h = p.conv(F.interpolate(h, scale_factor=2.0, mode="nearest"), f"decoder.up.{i}.upsample.conv", h.shape[1])
    return p.conv(F.silu(p.norm(h, "decoder.norm_out")), "decoder.conv_out", 3)


def make_ldm_checkpoint(seed: int = 0, arch: dict = ARCH) -> tuple[Params, dict]:
    """A tiny VA-VAE-like LDM checkpoint (attention at its lowest level, as VA-VAE's 16×16), with
    the extra keys of a real one (loss, foundation-model projection) that loading must drop."""
    p = Params(seed)
    mean, _ = ldm_encode(p, torch.rand(2, 3, 16, 16) * 2 - 1, **arch)
    ldm_decode(p, mean, **arch)
    junk = {"loss.logvar": torch.zeros(()), "foundation_model.model.w": torch.ones(3), "linear_proj.w": torch.ones(2)}
    return p, {"state_dict": p.sd | junk}
