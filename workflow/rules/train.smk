# Training in segments: each milestone checkpoint is an output, continued by the next segment.
# The resume file inside a segment's workdir is deliberately NOT an output: Snakemake deletes
# the outputs of failed jobs, and the resume file is what a rerun continues from. The run.yaml
# input is written by common.smk when the run's `train:` config changes.


rule train_segment:
    input:
        unpack(segment_inputs),
    output:
        checkpoint=C.path("checkpoint"),
    params:
        segment=segment_args,
        launcher=lambda wc: ig_launcher(config["runs"][C.group_of(wc.run)]["gpus"]),
        latents=lambda wc: C.path("latents", latents=C.latents_of(wc.run)),
        workdir=C.path("segment_workdir"),
        training_log=C.path("training_log"),
        grid=C.path("milestone_grid"),
    wildcard_constraints:
        run=runs_regex(imported=False),
    log:
        log_path("train", "{run}/{milestone}"),
    threads: 1
    resources:
        gpu=lambda wc: config["runs"][C.group_of(wc.run)]["gpus"],
    shell:
        "{params.launcher} train --run-config {input.run_config:q} --latents {params.latents:q} "
        "--out {output.checkpoint:q} --workdir {params.workdir:q} {params.segment} "
        "--log {params.training_log:q} --grid {params.grid:q} --no-progress > {log:q} 2>&1"


rule import_checkpoint:
    """A released checkpoint (official IG, upstream SiT/LightningDiT) in our checkpoint format."""
    input:
        assets=FETCHED,
    output:
        checkpoint=C.path("checkpoint"),
    wildcard_constraints:
        run=runs_regex(imported=True),
    params:
        args=import_args,
    log:
        log_path("import", "{run}-{milestone}"),
    shell:
        "ig import-checkpoint {params.args} --run {wildcards.run} --out {output.checkpoint:q} > {log:q} 2>&1"
