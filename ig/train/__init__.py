"""The training engine: ``ig train`` trains one segment of a run, milestone to milestone.

Read in this order: ``config`` (the run config), ``batches`` (data order), ``engine`` (a segment:
start, loop, resume file, milestone; what checkpoints hold is ``ig.checkpoints``, shared with
sampling and the release import), ``optim`` (AdamW, Muon), ``ema``, ``log`` (JSONL log,
TensorBoard, progress), ``launch`` (``--submit`` through submitit), ``cli``, ``benchmarks``.
"""
