# Dataset → (tiny autoencoder, embedded default only) → latent shards + manifest.


rule train_autoencoder:
    output:
        config=f"{R}/autoencoder/config.json",
    params:
        folder=f"{R}/autoencoder",
        data=dataset_args(),
        train=" ".join(f"--{k.replace('_', '-')} {v}" for k, v in config["autoencoder"]["train"].items()),
    log:
        f"logs/{config['name']}/train_autoencoder.log",
    threads: 2
    shell:
        "ig train-autoencoder {params.data} --out {params.folder} {params.train} > {log} 2>&1"


rule encode_shard:
    input:
        autoencoder=autoencoder_input,
    output:
        shard=f"{R}/latents/shard-{{shard}}.npz",
    params:
        folder=f"{R}/latents",
        data=dataset_args(),
        autoencoder=autoencoder_arg(),
        format=config["data"]["format"],
        limit=f"--limit {config['data']['limit']}" if config["data"]["limit"] else "",
        num_shards=config["data"]["num_shards"],
    log:
        f"logs/{config['name']}/encode/{{shard}}.log",
    threads: 1
    shell:
        "ig encode {params.data} {params.autoencoder} --format {params.format} {params.limit} "
        "--out-dir {params.folder} --num-shards {params.num_shards} --shard {wildcards.shard} "
        "--assets-dir {ASSETS} > {log} 2>&1"


rule latent_manifest:
    input:
        shards=latent_shards(),
    output:
        manifest=f"{R}/latents/manifest.json",
    params:
        folder=f"{R}/latents",
        data=dataset_args(),
        autoencoder=autoencoder_arg(),
        format=config["data"]["format"],
        limit=f"--limit {config['data']['limit']}" if config["data"]["limit"] else "",
        num_shards=config["data"]["num_shards"],
    log:
        f"logs/{config['name']}/encode/manifest.log",
    shell:
        "ig encode {params.data} {params.autoencoder} --format {params.format} {params.limit} "
        "--out-dir {params.folder} --num-shards {params.num_shards} --manifest-only "
        "--assets-dir {ASSETS} > {log} 2>&1"
