# Tables next to the paper's numbers, plots, and the compute plan.


rule tables:
    input:
        campaign=CAMPAIGN,
        metrics=[C.metrics(s) for s in SETS],
        paper=PAPER_NUMBERS,
    output:
        tables=[
            report(
                f"{R}/tables/{t['name']}.md",
                category="Tables",
                labels={"table": t["name"]},
                caption="../report/table.rst",
            )
            for t in config["tables"]
        ],
    log:
        f"logs/{config['name']}/tables.log",
    shell:
        "ig table --config {input.campaign} --paper {input.paper} --out-dir {R}/tables > {log} 2>&1"


rule plots:
    input:
        campaign=CAMPAIGN,
        metrics=[C.metrics(s) for s in SETS],
    output:
        done=f"{R}/plots/done.json",
        plots=[
            report(f"{R}/plots/{name}.png", category="Plots", caption=f"../report/plot_{name}.rst")
            for name in config["plots"]
        ],
    log:
        f"logs/{config['name']}/plots.log",
    shell:
        "ig plot --config {input.campaign} --out-dir {R}/plots > {log} 2>&1"


rule plan:
    input:
        campaign=CAMPAIGN,
    output:
        plan=f"{R}/plan.md",
    shell:
        "ig plan --config {input.campaign} --out {output.plan}"
