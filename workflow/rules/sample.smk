# Sampling a checkpoint with one guidance setting. The shards live beside the declared output
# (not inside a directory() output, which Snakemake would delete on failure), so a rerun
# redoes only the shards that are missing.


rule sample:
    input:
        unpack(sample_inputs),
    output:
        manifest=f"{R}/samples/{{run}}/{{milestone}}/{{guidance}}/{{labels}}/samples.json",
        grid=report(
            f"{R}/samples/{{run}}/{{milestone}}/{{guidance}}/{{labels}}/grid.png",
            category="Samples",
            subcategory="{run}",
            caption="../report/grid.rst",
        ),
    params:
        folder=f"{R}/samples/{{run}}/{{milestone}}/{{guidance}}/{{labels}}",
        seed_key="{run}/{milestone}/{guidance}/{labels}",
        args=sample_args,
    log:
        f"logs/{config['name']}/sample/{{run}}/{{milestone}}/{{guidance}}-{{labels}}.log",
    threads: 1
    shell:
        "ig sample --checkpoint {input.checkpoint} --out-dir {params.folder} --seed-key {params.seed_key} "
        "{params.args} --manifest {output.manifest} --grid {output.grid} > {log} 2>&1"
