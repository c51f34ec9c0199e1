# ig: reproduce "Guiding a Diffusion Transformer with the Internal Dynamics of Itself" end to end.
#
#   snakemake --profile profiles/local                                  # embedded default (CPU)
#   snakemake --profile profiles/slurm --configfile config/paper.yaml   # the paper, on SLURM
#
# The workflow itself is workflow/Snakefile (the Snakemake workflow catalog's layout).


include: "workflow/Snakefile"


# An included file sets no default target: the campaign's outputs, as when workflow/Snakefile runs.
workflow.default_target = "all"
