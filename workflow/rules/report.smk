# Tables next to the paper's numbers, plots, and the compute plan.


rule tables:
    input:
        campaign=C.path("campaign"),
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
    params:
        folder=C.path("tables"),
    log:
        log_path("tables", "tables"),
    shell:
        "ig table --config {input.campaign:q} --paper {input.paper:q} --out-dir {params.folder:q} > {log:q} 2>&1"


rule plots:
    input:
        campaign=C.path("campaign"),
        metrics=[C.metrics(s) for s in SETS],
    output:
        done=C.path("plots_done"),
        plots=[
            report(C.path("plot", plot=name), category="Plots", caption=f"../report/plot_{name}.rst")
            for name in config["plots"]
        ],
    params:
        folder=C.path("plots"),
    log:
        log_path("plots", "plots"),
    shell:
        "ig plot --config {input.campaign:q} --out-dir {params.folder:q} > {log:q} 2>&1"


rule plan:
    input:
        campaign=C.path("campaign"),
    output:
        plan=C.path("plan"),
    log:
        log_path("plan", "plan"),
    shell:
        "ig plan --config {input.campaign:q} --out {output.plan:q} > {log:q} 2>&1"
