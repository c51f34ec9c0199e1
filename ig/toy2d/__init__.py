"""The 2D tree-mixture experiment of the paper (EDM2's toy with an intermediate head): ``ig toy2d``."""
