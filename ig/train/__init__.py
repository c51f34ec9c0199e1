"""The training engine: ``ig train`` trains one segment of a run, milestone to milestone.

Read in this order: ``config`` (the run config), ``data`` (latent shards, data order, randomness),
``engine`` (a segment: start, loop, resume file, milestone), ``checkpoint`` (what checkpoints
hold, ``load_for_sampling``), ``optim`` (AdamW, Muon), ``ema``, ``distributed`` (torchrun / srun),
``metrics`` (JSONL log, TensorBoard, progress bar), ``grid`` (milestone sample grid), ``launch``
(``--submit`` through submitit), ``cli``, ``benchmarks``.
"""
