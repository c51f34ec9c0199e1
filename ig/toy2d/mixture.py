"""EDM2's two-class fractal-tree Gaussian mixture, exact along our linear path.

The tree is the one of NVlabs/edm2 ``toy_example.py`` (same seed, origin, scale and random-draw
order, so the same 2 × 1016 components): each class grows a binary tree of depth 7 from the
origin (class A at angle π/4, class B at 5π/4); every branch is 8 elongated Gaussians along its
segment. Diffusing a component ``N(μ, Σ)`` along ``x_t = (1 − t) x0 + t ε`` gives
``N((1 − t) μ, (1 − t)² Σ + t² I)``, so density, score and velocity are exact at every ``t``. All
formulas work in each component's eigenbasis, where the diffused covariance is diagonal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

CLASS_NAMES = ("A", "B")
TREE_DEPTH = 7  # branch depths 0..6; the 64 depth-6 branches of a class are its leaves
POINTS_PER_BRANCH = 8
OUTLINE_DROP = 4.49  # EDM2's outline: sqrt(max log p − log p) ≤ 2.12
_CHUNK_ELEMENTS = 1 << 18  # rows × components at once: temporaries stay in cache (4× more ran ~1.5× slower)


class GaussianMixture:
    """A planar (2D) mixture with exact log-density, score, velocity and sampling along our path.

    ``t`` is a float or a per-row ``(N,)`` tensor; computations run in the dtype of ``x``. The
    2×2 algebra is written out per eigen-direction: 2-3× faster than batched ``einsum``, and these
    evaluations (rows × 1016 components) dominate the metrics' cost.
    """

    def __init__(self, weights: torch.Tensor, means: torch.Tensor, covs: torch.Tensor) -> None:
        weights = torch.as_tensor(weights, dtype=torch.float64)
        self.log_weights = (weights / weights.sum()).log()
        self.means = torch.as_tensor(means, dtype=torch.float64)
        self.covs = torch.as_tensor(covs, dtype=torch.float64)
        if self.means.shape[1:] != (2,):
            raise ValueError(f"GaussianMixture is planar; got means of shape {tuple(self.means.shape)}")
        self.eigvals, self.eigvecs = torch.linalg.eigh(self.covs)  # Σ = Q diag(L) Qᵀ, column e of Q

    def _terms(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Per (row, component): log(weight × density), and per eigen-direction e the coordinate
        ``u_e = q_eᵀ (x − (1 − t) μ)`` and diffused variance ``l_e = (1 − t)² L_e + t²``.

        ``t`` holds one time per row, or a single time shared by all rows: then the variances
        and normalisers are computed once per component instead of once per (row, component).
        """
        mu, eigvals, q = (p.to(x.dtype) for p in (self.means, self.eigvals, self.eigvecs))
        t = t.view(-1, 1)
        d0 = x[:, :1] - (1 - t) * mu[:, 0]
        d1 = x[:, 1:] - (1 - t) * mu[:, 1]
        u = [d0 * q[:, 0, e] + d1 * q[:, 1, e] for e in (0, 1)]
        lam = [(1 - t) ** 2 * eigvals[:, e] + t**2 for e in (0, 1)]
        log_norm = self.log_weights.to(x.dtype) - 0.5 * ((lam[0] * lam[1]).log() + 2 * math.log(2 * math.pi))
        log_wn = log_norm - 0.5 * (u[0] ** 2 / lam[0] + u[1] ** 2 / lam[1])
        return log_wn, u, lam, t

    def _map(self, fn, x: torch.Tensor, t: float | torch.Tensor = 0.0) -> torch.Tensor:
        """Apply ``fn(*terms)`` to row chunks (bounded memory) and concatenate along rows."""
        t = torch.as_tensor(t, dtype=x.dtype)
        rows = max(1, _CHUNK_ELEMENTS // len(self.log_weights))
        chunks = x.split(rows)
        times = t.expand(x.shape[0]).split(rows) if t.dim() else [t] * len(chunks)
        return torch.cat([fn(*self._terms(xc, tc)) for xc, tc in zip(chunks, times, strict=True)])

    def log_prob(self, x: torch.Tensor, t: float | torch.Tensor = 0.0) -> torch.Tensor:
        """``log p_t(x)``, finite for any finite ``x`` (log-sum-exp over components)."""
        return self._map(lambda log_wn, u, lam, t: torch.logsumexp(log_wn, dim=1), x, t)

    def classify(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``log p_0(x)`` and the most responsible component of each row, from one evaluation."""

        def fn(log_wn, u, lam, t):
            return torch.stack([torch.logsumexp(log_wn, dim=1), log_wn.argmax(1).to(x.dtype)], dim=1)

        out = self._map(fn, x)
        return out[:, 0], out[:, 1].long()

    def score(self, x: torch.Tensor, t: float | torch.Tensor = 0.0) -> torch.Tensor:
        """``∇ log p_t(x) = −Σ_k r_k C_k⁻¹ (x − (1 − t) μ_k)``."""
        q = self.eigvecs.to(x.dtype)

        def fn(log_wn, u, lam, t):
            r = torch.softmax(log_wn, dim=1)
            return -sum((r * u[e] / lam[e]) @ q[:, :, e] for e in (0, 1))

        return self._map(fn, x, t)

    def velocity(self, x: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
        """Exact ``E[ε − x0 | x_t = x]``.

        Per component ``E[ε] − E[x0] = (t I − (1 − t) Σ) C⁻¹ d − μ`` with ``d = x − (1 − t) μ``;
        this form stays finite at ``t = 1`` where the score-based one divides by ``1 − t``.
        """
        q, eigvals, mu = (p.to(x.dtype) for p in (self.eigvecs, self.eigvals, self.means))

        def fn(log_wn, u, lam, t):
            r = torch.softmax(log_wn, dim=1)
            shrink = [(t - (1 - t) * eigvals[:, e]) / lam[e] for e in (0, 1)]
            return sum((r * shrink[e] * u[e]) @ q[:, :, e] for e in (0, 1)) - r @ mu

        return self._map(fn, x, t)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` exact float32 samples of the data (``t = 0``)."""
        k = torch.multinomial(self.log_weights.exp(), n, replacement=True, generator=generator)
        z = torch.randn(n, 2, generator=generator, dtype=torch.float64)
        x = self.means[k] + torch.einsum("nde,ne->nd", self.eigvecs[k], self.eigvals[k].sqrt() * z)
        return x.float()

    def mode_log_prob(self, starts: int = 32, iters: int = 50) -> float:
        """``max_x log p_0(x)``: mean-shift fixed-point iterations from the densest component means."""
        x = self.means[self.log_prob(self.means).topk(min(starts, len(self.means))).indices]
        prec = torch.linalg.inv(self.covs)
        for _ in range(iters):
            r = self._map(lambda log_wn, u, lam, t: torch.softmax(log_wn, dim=1), x)
            a = torch.einsum("nk,kde->nde", r, prec)
            b = torch.einsum("nk,kde,ke->nd", r, prec, self.means)
            x = torch.linalg.solve(a, b)
        return float(self.log_prob(x).max())


@dataclass(frozen=True)
class Branch:
    cls: int
    depth: int


class TreeMixture:
    """The two class mixtures of EDM2's toy, their union (equal class priors) and branch labels.

    Label ``y = 2`` (the null class) selects the union, so ``velocity(x, t, y)`` is the exact
    conditional/unconditional velocity a CFG-trained model approximates.
    """

    num_classes = len(CLASS_NAMES)

    def __init__(
        self,
        seed: int = 2,
        origin: tuple[float, float] = (0.0030, 0.0325),
        scale: tuple[float, float] = (1.3136, 1.3844),
    ) -> None:
        rng = np.random.RandomState(seed)
        scale_v = np.asarray(scale)
        self.branches: list[Branch] = []
        comps: list[tuple[int, float, np.ndarray, np.ndarray]] = []  # (branch, weight, mean, cov)

        def grow(cls: int, depth: int, pos: np.ndarray, angle: float) -> None:
            if depth >= TREE_DEPTH:
                return
            direction = np.array([np.cos(angle), np.sin(angle)])
            length = 0.292 * 0.8**depth * (1 + 0.2 * rng.randn())
            thick = 0.2 * 0.8**depth / length
            size = scale_v * length * 0.06
            along = np.outer(direction, direction)
            cov = (along + (np.eye(2) - along) * thick**2) * np.outer(size, size)
            branch = len(self.branches)
            self.branches.append(Branch(cls, depth))
            for f in np.linspace(0.07, 0.93, POINTS_PER_BRANCH):
                comps.append((branch, length * 0.5**depth, (pos + direction * length * f) * scale_v, cov))
            for sign in (1, -1):  # the child's angle is drawn before the child grows (EDM2's order)
                child_angle = angle + sign * 0.7**depth * (1 + 0.2 * rng.randn())
                grow(cls, depth + 1, pos + direction * length, child_angle)

        for cls, angle in enumerate((np.pi / 4, np.pi * 5 / 4)):
            grow(cls, 0, np.asarray(origin, dtype=float), angle)

        branch = torch.tensor([c[0] for c in comps])
        weights = torch.tensor([c[1] for c in comps], dtype=torch.float64)
        means = torch.tensor(np.stack([c[2] for c in comps]))
        covs = torch.tensor(np.stack([c[3] for c in comps]))
        comp_cls = torch.tensor([self.branches[b].cls for b in branch.tolist()])

        self.component_branch: list[torch.Tensor] = []
        self.classes: list[GaussianMixture] = []
        for cls in range(self.num_classes):
            sel = comp_cls == cls
            self.component_branch.append(branch[sel])
            self.classes.append(GaussianMixture(weights[sel], means[sel], covs[sel]))
        class_weights = torch.cat([weights[comp_cls == c] / weights[comp_cls == c].sum() for c in (0, 1)])
        order = torch.cat([torch.nonzero(comp_cls == c).flatten() for c in (0, 1)])
        self.union = GaussianMixture(class_weights, means[order], covs[order])

    def mixture(self, y: int) -> GaussianMixture:
        """Class ``y``'s mixture; the null label ``num_classes`` gives the union."""
        return self.union if y == self.num_classes else self.classes[y]

    def leaves(self, cls: int) -> list[int]:
        """Branch ids of the class's leaf (deepest) branches."""
        return [i for i, b in enumerate(self.branches) if b.cls == cls and b.depth == TREE_DEPTH - 1]

    def velocity(self, x: torch.Tensor, t: float | torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Exact velocity of each row's class (or of the union for the null label)."""
        t = torch.as_tensor(t, dtype=x.dtype).expand(x.shape[0])
        out = torch.empty_like(x)
        for label in y.unique().tolist():
            rows = y == label
            out[rows] = self.mixture(label).velocity(x[rows], t[rows])
        return out

    def sample(self, y: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """One exact data sample per label (null label: from the union)."""
        out = torch.empty(len(y), 2)
        for label in range(self.num_classes + 1):
            rows = y == label
            n = int(rows.sum())
            if n:
                out[rows] = self.mixture(label).sample(n, generator)
        return out

    def outline_levels(self) -> list[float]:
        """Per class, the log-density level of EDM2's high-density outline: max log p − 4.49."""
        return [m.mode_log_prob() - OUTLINE_DROP for m in self.classes]
