# Sampling a checkpoint with one guidance setting. The shards live beside the declared output
# (not inside a directory() output, which Snakemake would delete on failure): a rerun keeps each
# shard whose provenance matches this checkpoint and these settings, and redoes the others.


rule sample:
    input:
        unpack(sample_inputs),
    output:
        manifest=C.path("sample_manifest"),
        grid=report(
            C.path("sample_grid"),
            category="Samples",
            subcategory="{run}",
            caption="../report/grid.rst",
        ),
    log:
        log_path("sample", "{run}/{milestone}/{guidance}-{labels}"),
    conda:
        "../envs/ig.yaml"
    threads: 1
    params:
        folder=parent_dir("manifest"),
        args=sample_args,
    shell:
        "ig sample --checkpoint {input.checkpoint:q} --out-dir {params.folder:q} {params.args} "
        "--manifest {output.manifest:q} --grid {output.grid:q} > {log:q} 2>&1"
