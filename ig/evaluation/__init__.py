"""Evaluation as the ADM evaluator: metrics, feature extractors, reference statistics, ``ig evaluate``.

- ``metrics``: FID/sFID, IS, precision/recall on numpy feature arrays (a contract);
- ``features``: the extractor interface; ``inception`` (the paper's feature space) and
  ``classifier`` (a small in-domain CNN for the embedded default, ``ig train-classifier``);
- ``imagesets``: ADM-format ``.npz`` sample sets and datasets, read in batches;
- ``reference`` (``ig reference``) and ``evaluate`` (``ig evaluate``); ``benchmarks``.
"""
