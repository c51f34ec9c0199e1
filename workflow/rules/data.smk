# Dataset → (tiny autoencoder, embedded default only) → latent shards + manifest, per latent set.


rule train_autoencoder:
    output:
        config=f"{R}/autoencoders/{{latents}}/config.json",
    params:
        folder=f"{R}/autoencoders/{{latents}}",
        data=lambda wc: dataset_args(latent_spec(wc)["dataset"], resolution=False),
        train=lambda wc: flags(latent_spec(wc)["autoencoder"]["train"]),
    log:
        f"logs/{config['name']}/train_autoencoder/{{latents}}.log",
    threads: 1
    shell:
        "ig train-autoencoder {params.data} --out {params.folder} {params.train} > {log} 2>&1"


rule encode_shard:
    input:
        autoencoder=autoencoder_input,
        assets=assets_input,
    output:
        shard=f"{R}/latents/{{latents}}/shard-{{shard}}.npz",
    params:
        folder=f"{R}/latents/{{latents}}",
        args=encode_args,
    log:
        f"logs/{config['name']}/encode/{{latents}}/{{shard}}.log",
    threads: 1
    shell:
        "ig encode {params.args} --out-dir {params.folder} --shard {wildcards.shard} > {log} 2>&1"


# `ig encode` writes the manifest once every shard exists; this gathers after the last shard.
rule latent_manifest:
    input:
        shards=latent_shards,
    output:
        manifest=f"{R}/latents/{{latents}}/manifest.json",
    params:
        folder=f"{R}/latents/{{latents}}",
        args=encode_args,
    log:
        f"logs/{config['name']}/encode/{{latents}}/manifest.log",
    shell:
        "ig encode {params.args} --out-dir {params.folder} > {log} 2>&1"
