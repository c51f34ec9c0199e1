# Weights and reference files, downloaded on the login node (a local rule) before any job.
rule fetch_assets:
    output:
        done=FETCHED,
    params:
        only=" ".join(config["assets"]),
    log:
        f"logs/{config['name']}/fetch_assets.log",
    shell:
        "ig fetch-assets --assets-dir {ASSETS} --only {params.only} > {log} 2>&1 && touch {output.done}"
