# Weights and reference files, downloaded on the login node (a local rule) before any job.


rule fetch_assets:
    output:
        done=FETCHED,
    params:
        folder=ASSETS,
        only=" ".join(config["assets"]),
    log:
        log_path("fetch_assets", "assets"),
    shell:
        "ig fetch-assets --assets-dir {params.folder:q} --only {params.only} > {log:q} 2>&1 && touch {output.done:q}"
