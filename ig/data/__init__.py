"""Datasets, autoencoders and latent shards: everything before training (``names``: the choices of
their options, importable without torch)."""
