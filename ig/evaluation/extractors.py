"""The feature extractor a spec string names: ``inception:<weights.pth>`` or ``classifier:<checkpoint.pt>``."""

from __future__ import annotations

import torch

from ig.errors import IGError
from ig.evaluation.classifier import ClassifierExtractor
from ig.evaluation.features import FeatureExtractor

EXTRACTOR_KINDS = ("inception", "classifier")


def load_extractor(spec: str, device: str | torch.device = "cpu") -> FeatureExtractor:
    """Build the extractor that ``spec`` (``inception:<path>`` or ``classifier:<path>``) names."""
    kind, _, path = spec.partition(":")
    if kind not in EXTRACTOR_KINDS or not path:
        raise IGError(
            f"extractor spec must be 'inception:<weights path>' or 'classifier:<checkpoint path>', got {spec!r}"
        )
    if kind == "inception":
        from ig.evaluation.inception import InceptionExtractor  # imports torch-fidelity: only when asked for

        return InceptionExtractor(path, device=device)
    return ClassifierExtractor(path, device=device)
