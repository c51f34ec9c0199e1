# The config files that rules depend on (see config_file in common.smk). A real run writes them
# while its DAG is built, so these local rules only run where that did not happen: they are what a
# dry run in a fresh directory plans in their place.


rule campaign_config:
    output:
        campaign=C.path("campaign"),
    log:
        log_path("config", "campaign"),
    localrule: True
    run:
        write_config_file(output.campaign, "campaign")


rule run_config:
    output:
        run_config=C.path("run_config"),
    log:
        log_path("config", "{run}"),
    wildcard_constraints:
        run=runs_regex(imported=False),
    localrule: True
    run:
        write_config_file(output.run_config, "run_config", run=wildcards.run)


rule tuning_space:
    output:
        space=C.path("tuning_space"),
    log:
        log_path("config", "tuning-{tuning}"),
    localrule: True
    run:
        write_config_file(output.space, "tuning_space", tuning=wildcards.tuning)
