"""Results: tables next to the paper's numbers, plots, and the compute plan of a campaign."""
