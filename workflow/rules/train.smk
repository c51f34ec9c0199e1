# Training in segments: each milestone checkpoint is an output, continued by the next segment.
# The resume file inside a segment's workdir is deliberately NOT an output: Snakemake deletes
# the outputs of failed jobs, and the resume file is what a rerun continues from. The run.yaml
# input is written by common.smk when the run's `train:` config changes.


rule train_segment:
    input:
        unpack(segment_inputs),
    output:
        checkpoint=f"{R}/runs/{{run}}/{{milestone}}.pt",
    params:
        segment=segment_args,
        launcher=lambda wc: ig_launcher(config["runs"][wc.run]["gpus"]),
        latents=lambda wc: f"{R}/latents/{C.latents_of(wc.run)}",
        workdir=f"{R}/runs/{{run}}/work-{{milestone}}",
        log_jsonl=f"{R}/runs/{{run}}/metrics.jsonl",
        grid=f"{R}/runs/{{run}}/{{milestone}}.png",
    wildcard_constraints:
        run=runs_regex(imported=False),
    log:
        f"logs/{config['name']}/train/{{run}}/{{milestone}}.log",
    threads: 1
    resources:
        gpu=lambda wc: config["runs"][wc.run]["gpus"],
    shell:
        "{params.launcher} train --run-config {input.run_config} --latents {params.latents} --out {output.checkpoint} "
        "--workdir {params.workdir} {params.segment} --log {params.log_jsonl} --grid {params.grid} "
        "--no-progress > {log} 2>&1"


rule import_checkpoint:
    """A released checkpoint (official IG, upstream SiT/LightningDiT) in our checkpoint format."""
    input:
        assets=FETCHED,
    output:
        checkpoint=f"{R}/runs/{{run}}/{{milestone}}.pt",
    wildcard_constraints:
        run=runs_regex(imported=True),
    params:
        args=import_args,
    log:
        f"logs/{config['name']}/import/{{run}}-{{milestone}}.log",
    shell:
        "ig import-checkpoint {params.args} --run {wildcards.run} --out {output.checkpoint} > {log} 2>&1"
