# The 2D tree-mixture experiment: IG vs CFG vs autoguidance with exact densities.


rule toy2d:
    input:
        spec=spec_of("toy2d"),
    output:
        table=report(C.path("toy2d_table"), category="2D toy", caption="../report/toy2d.rst"),
        claims=C.path("toy2d_claims"),
        guidance=report(f"{C.path('toy2d')}/toy2d_guidance.png", category="2D toy", caption="../report/toy2d.rst"),
        training=report(f"{C.path('toy2d')}/toy2d_training.png", category="2D toy", caption="../report/toy2d.rst"),
    log:
        log_path("toy2d", "toy2d"),
    conda:
        "../envs/ig.yaml"
    threads: 2
    params:
        folder=parent_dir("table"),
        options=toy2d_args(),
    shell:
        "ig toy2d --out-dir {params.folder:q} {params.options} --workers {threads} > {log:q} 2>&1"
