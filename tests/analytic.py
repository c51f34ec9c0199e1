"""Exact velocity fields of Gaussian data: an independent truth for samplers and guidance.

For ``x0 ~ N(mu, S)`` and ``x_t = (1 - t) x0 + t eps``: ``x_t ~ N((1 - t) mu, C_t)`` with
``C_t = (1 - t)^2 S + t^2 I``, and the posterior means are
``E[eps | x_t] = t C_t^{-1} (x_t - (1 - t) mu)`` and
``E[x0 | x_t] = mu + (1 - t) S C_t^{-1} (x_t - (1 - t) mu)``; the exact velocity is their difference.
"""

from __future__ import annotations

import torch


class GaussianVelocity(torch.nn.Module):
    """A "model" whose final head is the exact velocity of N(mu, cov) data (flattened features).

    The intermediate head returns the exact velocity of a second Gaussian (``weak_mu``,
    ``weak_cov``), so guidance formulas can be checked against closed forms. Labels are ignored.
    """

    def __init__(self, mu, cov, weak_mu=None, weak_cov=None, num_classes: int = 10):
        super().__init__()
        self.mu = torch.as_tensor(mu, dtype=torch.float64)
        self.cov = torch.as_tensor(cov, dtype=torch.float64)
        self.weak_mu = self.mu if weak_mu is None else torch.as_tensor(weak_mu, dtype=torch.float64)
        self.weak_cov = self.cov if weak_cov is None else torch.as_tensor(weak_cov, dtype=torch.float64)
        self.num_classes = num_classes
        self.ig_layer = 1

    @staticmethod
    def velocity(x: torch.Tensor, t: torch.Tensor, mu: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
        d = mu.numel()
        xf = x.reshape(x.shape[0], d).double()
        out = torch.empty_like(xf)
        eye = torch.eye(d, dtype=torch.float64)
        for tv in t.unique():
            rows = t == tv
            tt = float(tv)
            c = (1 - tt) ** 2 * cov + tt**2 * eye
            r = torch.linalg.solve(c, (xf[rows] - (1 - tt) * mu).T).T
            eps = tt * r
            x0 = mu + (1 - tt) * r @ cov.T
            out[rows] = eps - x0
        return out.reshape(x.shape).to(x.dtype)

    def forward(self, x, t, y):
        return self.velocity(x, t, self.mu, self.cov), self.velocity(x, t, self.weak_mu, self.weak_cov)
