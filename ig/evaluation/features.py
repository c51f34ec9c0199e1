"""Feature extractors behind one small interface, and batched extraction with a progress bar.

An extractor maps uint8 images (N×H×W×3) to a dict of float32 feature arrays:

- ``pool`` (N×D): the FID and precision/recall features;
- ``spatial`` (N×S): the sFID features (a slice of a mid-level feature map, channels-last);
- ``logits`` (N×K): the Inception Score input; absent when the network has no classifier head.

Its ``identity`` names the network and a digest of its weights. Reference statistics store it and
``ig evaluate`` refuses to compare features from two different networks.

Two kinds exist (``ig.evaluation.extractors`` builds one from a spec string):
``inception:<weights.pth>`` (the paper's feature space, ADM-compatible) and
``classifier:<checkpoint.pt>`` (a small in-domain CNN, see ``classifier``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable

import numpy as np
import torch
from tqdm import tqdm

from ig.errors import IGError


def check_image_layout(shape: tuple[int, ...], dtype: np.dtype, what: str = "images") -> None:
    """Raise unless (shape, dtype) describe uint8 N×H×W×3 images (the ADM sample format)."""
    if dtype != np.uint8:
        raise IGError(f"{what} must be uint8 (values 0..255), got {dtype}: convert the images before saving them")
    if len(shape) != 4 or shape[-1] != 3:
        raise IGError(f"{what} must have shape N×H×W×3 (RGB, channels last), got {tuple(shape)}")


def check_images(images: np.ndarray, what: str = "images") -> None:
    if not isinstance(images, np.ndarray):
        raise IGError(f"{what} must be a numpy array, got {type(images).__name__}")
    check_image_layout(images.shape, images.dtype, what)


class FeatureExtractor(ABC):
    """uint8 images in, ``{'pool', 'spatial'[, 'logits']}`` float32 features out."""

    kind: str  # "inception" or "classifier"
    identity: str
    has_logits: bool
    device: torch.device

    @abstractmethod
    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Features of a uint8 N×3×H×W batch already on ``self.device``."""

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        check_images(images)
        x = torch.from_numpy(np.ascontiguousarray(images)).to(self.device).permute(0, 3, 1, 2)
        with torch.inference_mode():
            out = self.forward(x)
        return {name: value.float().cpu().numpy() for name, value in out.items()}


def extract_features(
    extractor: FeatureExtractor,
    batches: Iterable[np.ndarray],
    total: int,
    desc: str = "features",
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """Run ``extractor`` over image batches with a progress bar (images/s) and concatenate."""
    parts: dict[str, list[np.ndarray]] = {}
    with tqdm(total=total, desc=desc, unit="img", unit_scale=True, dynamic_ncols=True, disable=not progress) as bar:
        for batch in batches:
            for name, value in extractor(batch).items():
                parts.setdefault(name, []).append(value)
            bar.update(len(batch))
    if not parts:
        raise IGError(f"no images to extract {desc} from: the input is empty")
    return {name: np.concatenate(values) for name, values in parts.items()}
