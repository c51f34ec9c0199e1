# Job specs (ig.campaign.specs; common.smk): a local rule writes a job's spec when the config gives
# it a new content (a new hash, so a new path), and removes that job's older specs. Every job that
# reads the spec is then redone, and only those: in a dry run exactly as in the real run.


rule spec:
    output:
        spec=C.path("spec"),
    log:
        log_path("spec", "{job}-{hash}"),
    wildcard_constraints:
        job=r"[A-Za-z0-9_.+/-]+?",
        hash=r"[0-9a-f]{16}",
    localrule: True
    run:
        write_spec(output.spec, C.specs(wildcards.job))
