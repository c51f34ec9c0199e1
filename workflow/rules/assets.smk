# Weights and reference files, downloaded on the login node (a local rule) before any job.


rule fetch_assets:
    output:
        done=FETCHED,
    log:
        log_path("fetch_assets", "assets"),
    conda:
        "../envs/ig.yaml"
    params:
        folder=parent_dir("done"),
        only=" ".join(config["assets"]),
    shell:
        "ig fetch-assets --assets-dir {params.folder:q} --only {params.only} > {log:q} 2>&1 && touch {output.done:q}"
