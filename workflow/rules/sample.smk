# Sampling a checkpoint with one guidance setting, as its spec says. The shards live beside the
# declared output (not inside a directory() output, which Snakemake would delete on failure): a
# rerun keeps each shard whose provenance matches this checkpoint and these settings, and redoes
# the others. When the evaluation drops the shards (sampling.keep_shards: false) it drops this
# manifest too, so the set is sampled again only if its evaluation must be redone.


rule sample:
    input:
        unpack(sample_inputs),
    output:
        manifest=C.path("sample_manifest"),
    log:
        log_path("sample", "{run}/{milestone}/{guidance}-{labels}"),
    benchmark:
        benchmark_path("sample", "{run}/{milestone}/{guidance}-{labels}")
    conda:
        "../envs/ig.yaml"
    threads: 1
    resources:
        runtime=planned_runtime("sample"),
    params:
        folder=parent_dir("manifest"),
        args=sample_args,
    shell:
        "ig sample --spec {input.spec:q} --checkpoint {input.checkpoint:q} --out-dir {params.folder:q} "
        "{params.args} --manifest {output.manifest:q} > {log:q} 2>&1"
