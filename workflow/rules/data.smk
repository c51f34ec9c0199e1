# Dataset → (tiny autoencoder, embedded default only) → latent shards + manifest, per latent set.


rule train_autoencoder:
    input:
        spec=spec_of("autoencoder/{latents}"),
    output:
        config=C.path("autoencoder"),
    log:
        log_path("train_autoencoder", "{latents}"),
    benchmark:
        benchmark_path("train_autoencoder", "{latents}")
    conda:
        "../envs/ig.yaml"
    threads: 1
    params:
        folder=parent_dir("config"),
        data=lambda wc: dataset_args(latent_spec(wc)["dataset"], resolution=False),
        train=lambda wc: flags(latent_spec(wc)["autoencoder"]["train"]),
    shell:
        "ig train-autoencoder {params.data} --out {params.folder:q} {params.train} > {log:q} 2>&1"


rule encode_shard:
    input:
        spec=spec_of("latents/{latents}"),
        autoencoder=autoencoder_input,
        assets=assets_input,
    output:
        shard=C.path("latent_shard"),
    log:
        log_path("encode", "{latents}/{shard}"),
    benchmark:
        benchmark_path("encode", "{latents}/{shard}")
    conda:
        "../envs/ig.yaml"
    threads: 1
    params:
        folder=parent_dir("shard"),
        args=encode_args,
    shell:
        "ig encode {params.args} --out-dir {params.folder:q} --shard {wildcards.shard} "
        "--num-workers {threads} > {log:q} 2>&1"


# `ig encode` writes the manifest once every shard exists; this gathers after the last shard.
rule latent_manifest:
    input:
        spec=spec_of("latents/{latents}"),
        shards=latent_shards,
    output:
        manifest=C.path("latent_manifest"),
    log:
        log_path("encode", "{latents}/manifest"),
    conda:
        "../envs/ig.yaml"
    params:
        folder=parent_dir("manifest"),
        args=encode_args,
    shell:
        "ig encode {params.args} --out-dir {params.folder:q} > {log:q} 2>&1"
