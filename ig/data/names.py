"""The data stage's named choices, without torch: ``ig encode``'s options and a config check on a
login node read them here, and the modules that implement them (``datasets``, ``autoencoders``,
``latents``) import them from here."""

DATASETS = ("fashion-mnist", "imagenet")  # ig.data.datasets.build_dataset
AUTOENCODER_KINDS = ("tiny", "sd-vae", "va-vae")  # ig.data.autoencoders.load_autoencoder
LATENT_FORMATS = ("sit", "lightningdit")  # the shard formats of ig.data.latents
