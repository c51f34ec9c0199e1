"""Evaluation settings that the command-line options offer, without torch, so that ``ig evaluate
--help`` and ``ig train-classifier --help`` need none; ``metrics`` and ``classifier`` import them
from here."""

PR_ARITHMETICS = ("adm", "exact")  # distances of precision/recall: ADM's float16, or float32 (metrics)
# SmallCNN's conv channels at full, 1/2 and 1/4-1/8 resolution (classifier): ~89-90% test accuracy
# on Fashion-MNIST after one epoch, ~20 s of CPU time
WIDTHS = (16, 32, 64)
