# ig: reproduce "Guiding a Diffusion Transformer with the Internal Dynamics of Itself" end to end.
#
#   snakemake --profile profiles/local                                  # embedded default (CPU)
#   snakemake --profile profiles/slurm --configfile config/paper.yaml   # the paper, on SLURM
#
# Thin: each stage lives in workflow/rules/<stage>.smk and every rule runs one `ig` subcommand.
import os

from snakemake.utils import min_version

min_version("9.0")


# Software (profiles/README.md): each rule names the conda environment workflow/envs/ig.yaml, used
# with --software-deployment-method conda; with apptainer, every rule runs in the image built from
# workflow/containers/ig.def, found at $IG_CONTAINER (a path or a URI, default ./ig.sif).
container: os.environ.get("IG_CONTAINER", "ig.sif")


# The embedded default, unless --configfile names a campaign (which then replaces it rather
# than being merged into it: a campaign is one whole file).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/spec.smk"
include: "workflow/rules/assets.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/sample.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/toy2d.smk"
include: "workflow/rules/tune.smk"
include: "workflow/rules/claims.smk"


# On the submit host: the target and the download (compute nodes may have no internet). Tables,
# plots, the claims README and the plan are small CPU jobs on the cluster's CPU partition, which
# keeps the login node light.
localrules:
    all,
    fetch_assets,


rule all:
    input:
        final_outputs(),


onerror:
    partial_report()
