# The 2D tree-mixture experiment: IG vs CFG vs autoguidance with exact densities.


rule toy2d:
    output:
        table=report(f"{R}/toy2d/table.md", category="2D toy", caption="../report/toy2d.rst"),
    params:
        folder=f"{R}/toy2d",
        quick="--quick" if config["toy2d"].get("quick") else "",
    log:
        f"logs/{config['name']}/toy2d.log",
    threads: 2
    shell:
        "ig toy2d --out-dir {params.folder} {params.quick} > {log} 2>&1"
