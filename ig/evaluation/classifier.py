"""The in-domain feature network of the embedded default: a small CNN and its extractor.

Inception features of 32×32 Fashion-MNIST images say little and cost ~0.15 s per image on a CPU;
a small CNN trained on the dataset itself gives a meaningful feature space in milliseconds.
Metrics computed in it are *not* comparable to the paper's Inception numbers: every output names
the extractor (``classifier[<dataset>]:<weights digest>``).

Its features mirror the Inception ones:

- ``pool``: global average of the last conv stage (``widths[2]``-d): FID, precision/recall;
- ``spatial``: the first ``SPATIAL_CHANNELS`` channels of the 8×8 mid-level map, channels-last
  (256-d at the defaults): sFID;
- ``logits``: the classifier's own logits (IS).

``ig train-classifier`` (``ig.evaluation.train_classifier``) trains it.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ig.errors import IGError
from ig.evaluation.features import FeatureExtractor
from ig.evaluation.settings import WIDTHS
from ig.utils.io import load_torch, save_torch, state_digest

SPATIAL_CHANNELS = 4
CHECKPOINT_KIND = "ig-classifier"


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SmallCNN(nn.Module):
    """Four 3×3 conv+BN+ReLU layers with 2× pooling in between, global average pool, linear head."""

    def __init__(self, num_classes: int = 10, widths: tuple[int, int, int] = WIDTHS):
        super().__init__()
        w1, w2, w3 = widths
        self.config = {"num_classes": num_classes, "widths": list(widths)}
        self.low = nn.Sequential(_conv(3, w1), nn.MaxPool2d(2), _conv(w1, w2), nn.MaxPool2d(2))
        self.high = nn.Sequential(_conv(w2, w3), nn.MaxPool2d(2), _conv(w3, w3))
        self.head = nn.Linear(w3, num_classes)

    def features(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """uint8 N×3×H×W → pool, spatial and logits features."""
        mid = self.low(images.float() / 127.5 - 1.0)
        pool = self.high(mid).mean(dim=(2, 3))
        spatial = mid.movedim(1, -1)[..., :SPATIAL_CHANNELS].flatten(1)
        return {"pool": pool, "spatial": spatial, "logits": self.head(pool)}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.features(images)["logits"]


def save_classifier(model: SmallCNN, path: str | Path, *, dataset: str, resolution: int, **metadata) -> None:
    """Write the checkpoint that ``classifier:<path>`` loads (metadata: accuracy, training time...)."""
    state_dict = {name: value.cpu() for name, value in model.state_dict().items()}
    checkpoint = {"kind": CHECKPOINT_KIND, "model_config": model.config, "state_dict": state_dict}
    save_torch({**checkpoint, "dataset": dataset, "resolution": resolution, **metadata}, path)


class ClassifierExtractor(FeatureExtractor):
    """Features of a checkpoint written by ``ig train-classifier``."""

    kind = "classifier"

    def __init__(self, checkpoint: str | Path, device: str | torch.device = "cpu"):
        ckpt = load_torch(checkpoint, what="classifier checkpoint")
        if not isinstance(ckpt, dict) or ckpt.get("kind") != CHECKPOINT_KIND:
            raise IGError(f"{checkpoint} is not a checkpoint of `ig train-classifier`; train one with that command")
        self.device = torch.device(device)
        self.model = SmallCNN(**ckpt["model_config"])
        self.model.load_state_dict(ckpt["state_dict"])
        self.model.to(self.device).eval()
        self.resolution = ckpt["resolution"]
        self.identity = f"classifier[{ckpt['dataset']}]:{state_digest(ckpt['state_dict'])}"
        self.has_logits = True

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        if images.shape[-2:] != (self.resolution, self.resolution):
            raise IGError(
                f"the classifier was trained on {self.resolution}×{self.resolution} images, got "
                f"{images.shape[-2]}×{images.shape[-1]}: use a classifier trained at this resolution"
            )
        return self.model.features(images)
