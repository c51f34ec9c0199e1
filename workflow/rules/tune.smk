# Guidance tuning (ig tune): successive halving over a target's space for one checkpoint; the
# chosen setting is what guidance entries `{tuned: <target>}` are sampled with.


rule tune:
    input:
        checkpoint=lambda wc: C.checkpoint(*C.tuning_run(wc.tuning)),
        reference=C.path("reference"),
        extractor=extractor_input,
        space=spec_of("tuning/{tuning}"),
    output:
        chosen=C.path("tuned"),
        trace=C.path("tuning_trace"),
    log:
        log_path("tune", "{tuning}"),
    benchmark:
        benchmark_path("tune", "{tuning}")
    conda:
        "../envs/ig.yaml"
    threads: 1
    resources:
        runtime=planned_runtime("tune"),
    params:
        folder=parent_dir("chosen"),
        extractor=extractor_arg(),
        args=tune_args,
    shell:
        "ig tune --checkpoint {input.checkpoint:q} --space {input.space:q} --reference {input.reference:q} "
        "--extractor {params.extractor} --out-dir {params.folder:q} {params.args} > {log:q} 2>&1"
