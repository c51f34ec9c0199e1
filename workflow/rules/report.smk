# Tables next to the paper's numbers, plots, and the compute plan. A failed job keeps these rules
# from running (their inputs are every metrics file), so the Snakefile's onerror handler then builds
# them from whatever is current, with the other cells marked pending (partial_report, common.smk).


rule tables:
    input:
        campaign=campaign_spec,
        metrics=[C.metrics(s) for s in SETS],
        paper=PAPER_NUMBERS,
    output:
        tables=[
            report(
                C.path("table", table=t["name"]),
                category="Tables",
                labels={"table": t["name"]},
                caption="../report/table.rst",
            )
            for t in config["tables"]
        ],
    log:
        log_path("tables", "tables"),
    conda:
        "../envs/ig.yaml"
    params:
        folder=parent_dir("tables"),
    shell:
        "ig table --config {input.campaign:q} --paper {input.paper:q} --out-dir {params.folder:q} > {log:q} 2>&1"


rule plots:
    input:
        campaign=campaign_spec,
        metrics=[C.metrics(s) for s in SETS],
    output:
        done=C.path("plots_done"),
        plots=[
            report(C.path("plot", plot=name), category="Plots", caption=f"../report/plot_{name}.rst")
            for name in config["plots"]
        ],
    log:
        log_path("plots", "plots"),
    conda:
        "../envs/ig.yaml"
    params:
        folder=parent_dir("done"),
    shell:
        "ig plot --config {input.campaign:q} --out-dir {params.folder:q} > {log:q} 2>&1"


rule plan:
    input:
        campaign=campaign_spec,
    output:
        plan=C.path("plan"),
    log:
        log_path("plan", "plan"),
    conda:
        "../envs/ig.yaml"
    shell:
        "ig plan --config {input.campaign:q} --out {output.plan:q} > {log:q} 2>&1"
