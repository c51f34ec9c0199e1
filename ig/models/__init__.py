"""The model zoo: SiT and LightningDiT with an optional intermediate head for Internal Guidance.

``create_model(name, **overrides)`` builds a registered size (``MODELS``);
``from_official(name, state_dict, **overrides)`` loads a checkpoint of the official releases.
Every model maps ``(x, t, y)`` to ``(v_final, v_intermediate | None)`` in ig's time convention.
"""

from ig.models.dit import MODELS, DiT, create_model
from ig.models.official import from_official

__all__ = ["MODELS", "DiT", "create_model", "from_official"]
