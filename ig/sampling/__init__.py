"""Sampling: ``settings`` (what a sample set is made with; no torch), ``integrators`` (SDE and ODE
samplers of a guided velocity field), ``sets`` (``ig sample``: paired, sharded, verified sets)."""
