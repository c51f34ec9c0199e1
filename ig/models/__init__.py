"""The model zoo: SiT and LightningDiT with an optional intermediate head for Internal Guidance.

``create_model(name, **overrides)`` builds a registered size (``MODELS``, from ``sizes``);
``from_official(name, state_dict, **overrides)`` loads a checkpoint of the official releases.
Every model maps ``(x, t, y)`` to ``(v_final, v_intermediate | None)`` in ig's time convention.

The sizes registry (``ig.models.sizes``) and the FLOP counts (``ig.models.flops``) import no
torch, so that the workflow can plan a campaign on a login node; the names below import the
networks (and torch) only when first used.
"""

from ig.models.sizes import MODELS

__all__ = ["MODELS", "DiT", "create_model", "from_official"]


def __getattr__(name: str):
    if name in ("DiT", "create_model"):
        from ig.models import dit

        return getattr(dit, name)
    if name == "from_official":
        from ig.models.official import from_official

        return from_official
    raise AttributeError(f"module 'ig.models' has no attribute {name!r}")
