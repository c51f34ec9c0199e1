"""The toy figures, drawn as EDM2 draws them: grey A∪B outline, orange class-A outline, class-A samples.

Uses ``matplotlib.figure.Figure`` directly (no pyplot state), so it is safe in tests and workers.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.figure import Figure

from ig.toy2d.mixture import TreeMixture
from ig.utils.io import atomic_path

VIEW = (-0.9, 1.5)  # EDM2's main view: centre (0.3, 0.3), half-size 1.2
GREY = ((0.9, 0.9, 0.9), (0.7, 0.7, 0.7))
ORANGE = ((1.0, 0.8, 0.6), (0.8, 0.6, 0.5))


@dataclass(frozen=True)
class Panel:
    title: str
    samples: torch.Tensor  # class-A samples


class Background:
    """Log-densities of A∪B and of class A on a grid, computed once for all panels.

    ``levels`` are the outline levels of A∪B and of class A (the metrics' levels, so a dot
    outside the orange outline is exactly a sample the ``outside`` metric counts). Float32, like
    the samples the metrics score, and A∪B from the two class densities (equal priors): the grid
    is the costliest density evaluation of the experiment.
    """

    def __init__(self, tree: TreeMixture, resolution: int, levels: tuple[float, float]) -> None:
        self.levels = levels
        axis = torch.linspace(*VIEW, resolution)
        gx, gy = torch.meshgrid(axis, axis, indexing="xy")
        grid = torch.stack([gx.flatten(), gy.flatten()], dim=1)
        per_class = torch.stack([m.log_prob(grid) for m in tree.classes])
        union = torch.logsumexp(per_class, dim=0) - math.log(tree.num_classes)
        self.axis = axis.numpy()
        self.union = union.view(resolution, resolution).numpy()
        self.class_a = per_class[0].view(resolution, resolution).numpy()

    def draw(self, ax) -> None:
        for logp, level, (fill, line) in zip((self.union, self.class_a), self.levels, (GREY, ORANGE), strict=True):
            ax.contourf(self.axis, self.axis, logp, levels=[level, np.inf], colors=[fill])
            ax.contour(self.axis, self.axis, logp, levels=[level], colors=[line], linewidths=0.8)


def save_figure(path: str | os.PathLike, panels: Sequence[Panel], background: Background, columns: int) -> None:
    """A grid of sample panels over the outlines, written atomically as PNG."""
    rows = math.ceil(len(panels) / columns)
    fig = Figure(figsize=(3.2 * columns, 3.4 * rows), dpi=110, layout="constrained")
    for i, panel in enumerate(panels):
        ax = fig.add_subplot(rows, columns, i + 1)
        background.draw(ax)
        pts = panel.samples.numpy()
        ax.plot(pts[:, 0], pts[:, 1], ".", color="black", markersize=1.2, alpha=0.35, markeredgewidth=0)
        ax.set_xlim(*VIEW)
        ax.set_ylim(*VIEW)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(panel.title, fontsize=9)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
