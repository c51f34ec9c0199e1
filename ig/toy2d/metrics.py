"""Quantitative versions of what the toy figures show (EDM2's toy has none).

Per class, then averaged over the two classes:

- ``outside``: fraction of samples below their class's outline level (EDM2's plotted outline,
  ``log p_0 ≥ max log p_0 − 4.49``): samples that leaked between branches or off the tree.
- ``confusion``: fraction of samples inside the *other* class's outline: samples of the wrong
  class, which CFG is said to suppress. The two trees share their root, so ground-truth samples
  score ~2 %, not 0.
- ``loglik``: mean ground-truth ``log p_0`` of the samples (exact, finite even for far outliers).
- ``coverage``: fraction of the class's 64 leaf branches that hold at least a quarter of the
  samples they would hold under the ground truth (and at least one); each sample goes to the
  branch of its most responsible ground-truth component. All samples count, outliers included:
  ``outside`` measures precision, ``coverage`` recall of the branches.
- ``swd``: sliced 2-Wasserstein distance to as many fresh ground-truth samples.
"""

from __future__ import annotations

import torch

from ig.toy2d.mixture import TreeMixture

METRICS = ("outside", "confusion", "loglik", "coverage", "swd")
LOWER_IS_BETTER = {"outside": True, "confusion": True, "loglik": False, "coverage": False, "swd": True}
# How tables show each metric: header, factor, format.
DISPLAY = {
    "outside": ("outside %", 100, "{:.1f}"),
    "confusion": ("other class %", 100, "{:.1f}"),
    "loglik": ("mean log p", 1, "{:.2f}"),
    "coverage": ("leaf coverage %", 100, "{:.1f}"),
    "swd": ("SWD ×1e-3", 1000, "{:.1f}"),
}


def show(metric: str, value: float) -> str:
    """``value`` of ``metric`` in its table units, e.g. ``7.0`` for an ``outside`` of 0.07."""
    _, factor, fmt = DISPLAY[metric]
    return fmt.format(value * factor)


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, projections: int, generator: torch.Generator) -> float:
    """``sqrt(E_θ W2²(θᵀa, θᵀb))`` over random unit directions (equal sample counts: sorted matching)."""
    theta = torch.randn(a.shape[1], projections, generator=generator)
    theta = theta / theta.norm(dim=0)
    pa, _ = torch.sort(a.float() @ theta, dim=0)
    pb, _ = torch.sort(b.float() @ theta, dim=0)
    return float(((pa - pb).double() ** 2).mean().sqrt())


def leaf_coverage(tree: TreeMixture, cls: int, components: torch.Tensor, min_fraction: float = 0.25) -> float:
    """Fraction of the class's leaf branches whose sample count reaches ``min_fraction`` of expected.

    ``components`` holds each sample's most responsible component of the class mixture; a leaf's
    expected count is its ground-truth mass times the number of samples.
    """
    mix = tree.classes[cls]
    branch_of = tree.component_branch[cls]
    hits = torch.bincount(branch_of[components], minlength=len(tree.branches))
    mass = torch.zeros(len(tree.branches), dtype=torch.float64).index_add_(0, branch_of, mix.log_weights.exp())
    leaves = torch.tensor(tree.leaves(cls))
    need = (min_fraction * mass[leaves] * len(components)).clamp(min=1.0)
    return float((hits[leaves] >= need).double().mean())


def confusion(tree: TreeMixture, cls: int, x: torch.Tensor, levels: list[float]) -> float:
    """Fraction of class-``cls`` samples ``x`` inside the outline of some other class."""
    inside = torch.zeros(len(x), dtype=torch.bool)
    for other in range(tree.num_classes):
        if other != cls:
            inside |= tree.classes[other].log_prob(x) >= levels[other]
    return float(inside.double().mean())


def evaluate(
    tree: TreeMixture,
    x: torch.Tensor,
    y: torch.Tensor,
    levels: list[float],
    generator: torch.Generator,
    projections: int = 128,
) -> dict[str, float]:
    """All metrics of samples ``x`` with class labels ``y`` (see the module docstring)."""
    per_class = []
    for cls in range(tree.num_classes):
        xc = x[y == cls]
        logp, components = tree.classes[cls].classify(xc)
        reference = tree.classes[cls].sample(len(xc), generator)
        per_class.append(
            {
                "outside": float((logp < levels[cls]).double().mean()),
                "confusion": confusion(tree, cls, xc, levels),
                "loglik": float(logp.double().mean()),
                "coverage": leaf_coverage(tree, cls, components),
                "swd": sliced_wasserstein(xc, reference, projections, generator),
            }
        )
    return {k: sum(m[k] for m in per_class) / len(per_class) for k in METRICS}
