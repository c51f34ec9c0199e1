"""Datasets, autoencoders and latent shards: everything before training."""
