# Weights and reference files, downloaded on the login node (a local rule) before any job.
#
# Every job inherits this process's environment: IG_ASSETS makes the campaign's assets_dir the
# default of every command (also where no --assets-dir is given: the milestone grids of `ig train`).
# A rehearsal (config/rehearsal.yaml, `rehearsal: true`) runs on the random-weight stand-ins that
# `ig rehearsal-assets` wrote there: IG_REHEARSAL=1 lets its jobs, and only its jobs, load them
# (ig.assets refuses them elsewhere), and fetch_assets then checks that each is there instead of
# downloading it.
from ig.assets import ASSETS_ENV, REHEARSAL_ENV

os.environ[ASSETS_ENV] = ASSETS
if config["rehearsal"]:
    os.environ[REHEARSAL_ENV] = "1"
else:
    os.environ.pop(REHEARSAL_ENV, None)


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
