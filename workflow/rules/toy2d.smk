# The 2D tree-mixture experiment: IG vs CFG vs autoguidance with exact densities.


rule toy2d:
    output:
        table=report(f"{R}/toy2d/metrics.md", category="2D toy", caption="../report/toy2d.rst"),
        guidance=report(f"{R}/toy2d/toy2d_guidance.png", category="2D toy", caption="../report/toy2d.rst"),
        training=report(f"{R}/toy2d/toy2d_training.png", category="2D toy", caption="../report/toy2d.rst"),
    params:
        folder=f"{R}/toy2d",
        quick="--quick" if config["toy2d"].get("quick") else "",
    log:
        f"logs/{config['name']}/toy2d.log",
    threads: 2
    shell:
        "ig toy2d --out-dir {params.folder} {params.quick} --workers {threads} > {log} 2>&1"
