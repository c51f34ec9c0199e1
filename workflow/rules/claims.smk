# The campaign's README: each claim of the paper with the paper's figure, ours ± error, a verdict.


rule claims:
    input:
        campaign=campaign_file,
        metrics=[C.metrics(s) for s in SETS],
        paper=PAPER_NUMBERS,
        toy=toy_claims_input,
        traces=[C.path("tuning_trace", tuning=t) for t in config["tuning"]],
    output:
        readme=report(C.path("readme"), category="Claims", caption="../report/claims.rst"),
    log:
        log_path("claims", "claims"),
    conda:
        "../envs/ig.yaml"
    params:
        toy=lambda wc, input: f"--toy-claims {q(input.toy[0])}" if input.toy else "",
    shell:
        "ig claims --config {input.campaign:q} --paper {input.paper:q} --out {output.readme:q} {params.toy} "
        "--tuning-traces {input.traces:q} > {log:q} 2>&1"
