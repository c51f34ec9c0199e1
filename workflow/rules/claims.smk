# The campaign's README: each claim of the paper with the paper's figure, ours ± error, a verdict.


rule claims:
    input:
        campaign=campaign_spec,
        metrics=[C.metrics(s) for s in SETS],
        paper=PAPER_NUMBERS,
        toy=toy_claims_input,  # ig claims reads these from the campaign's folder
        traces=[C.path("tuning_trace", tuning=t) for t in config["tuning"]],
    output:
        readme=report(C.path("readme"), category="Claims", caption="../report/claims.rst"),
    log:
        log_path("claims", "claims"),
    conda:
        "../envs/ig.yaml"
    shell:
        "ig claims --config {input.campaign:q} --paper {input.paper:q} --out {output.readme:q} > {log:q} 2>&1"
