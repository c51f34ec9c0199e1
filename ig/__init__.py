"""Internal Guidance (IG) for diffusion transformers.

Conventions used everywhere inside this package (see README "Conventions"):
``t`` in [0, 1], ``t = 0`` is data, ``t = 1`` is noise, ``x_t = (1 - t) x0 + t eps`` and the
networks predict the velocity ``v = eps - x0``. Code in another convention is converted at the
edge (model wrappers), once.
"""

__version__ = "0.1.0"
