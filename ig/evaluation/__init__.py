"""Evaluation as the ADM evaluator: metrics with their errors, feature extractors, reference statistics.

- ``metrics``: FID/sFID, IS, precision/recall on numpy feature arrays (a contract);
- ``uncertainty``: bootstrap standard errors, paired differences and the verdict on a comparison;
- ``features``: the extractor interface; ``extractors`` builds one from a spec: ``inception`` (the
  paper's feature space) or ``classifier`` (a small in-domain CNN for the embedded default, trained
  by ``train_classifier``);
- ``imagesets``: ADM-format ``.npz`` sample sets and datasets, read in batches;
- ``reference`` (``ig reference``) and ``evaluate`` (``ig evaluate``); ``benchmarks``;
- ``settings``: the choices of their options, importable without torch (the CLI's ``--help``).
"""
