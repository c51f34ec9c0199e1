# Training in segments: each milestone checkpoint is an output, continued by the next segment.
# The resume file inside a segment's workdir is deliberately NOT an output: Snakemake deletes
# the outputs of failed jobs, and the resume file is what a rerun continues from. The run's spec
# (what its weights depend on) is an input: a segment is redone exactly when it changes. GPUs, nodes
# and the launcher (torchrun on one node, srun with one task per GPU across nodes) come from
# common.smk.


rule train_segment:
    input:
        unpack(segment_inputs),
    output:
        checkpoint=C.path("checkpoint"),
    log:
        log_path("train", "{run}/{milestone}"),
    benchmark:
        benchmark_path("train", "{run}/{milestone}")
    wildcard_constraints:
        run=runs_regex(imported=False),
    conda:
        "../envs/ig.yaml"
    threads: 1
    resources:
        runtime=planned_runtime("train_segment"),
        gpu=train_gpus,
        nodes=train_nodes,
        mpi=srun_mpi,
        tasks=srun_tasks,
        tasks_per_gpu=srun_tasks_per_gpu,
    params:
        segment=segment_args,
        launcher=train_launcher,
        latents=lambda wc: C.path("latents", latents=C.latents_of(wc.run)),
        workdir=C.path("segment_workdir"),
        training_log=C.path("training_log"),
        grid=C.path("milestone_grid"),
        tensorboard=tensorboard_dir,
    shell:
        "{params.launcher} train --spec {input.spec:q} --latents {params.latents:q} "
        "--out {output.checkpoint:q} --workdir {params.workdir:q} {params.segment} "
        "--training-log {params.training_log:q} --grid {params.grid:q} --tensorboard {params.tensorboard:q} "
        "--no-progress > {log:q} 2>&1"


rule import_checkpoint:
    """A released checkpoint (official IG, upstream SiT/LightningDiT) in our checkpoint format."""
    input:
        spec=spec_of("import/{run}"),
        assets=FETCHED,
    output:
        checkpoint=C.path("checkpoint"),
    log:
        log_path("import", "{run}-{milestone}"),
    wildcard_constraints:
        run=runs_regex(imported=True),
    conda:
        "../envs/ig.yaml"
    params:
        args=import_args,
    shell:
        "ig import-checkpoint {params.args} --run {wildcards.run} --out {output.checkpoint:q} > {log:q} 2>&1"
