"""Metrics files that pass the provenance checks of ``ig.report.results``, with chosen values: for
tests of tables, plots and claims without training anything."""

from pathlib import Path

import numpy as np

from ig.campaign import Campaign
from ig.campaign.specs import sample_job
from ig.evaluation.record import write_record
from ig.utils.io import file_digest, write_json


def fake_results(c: Campaign, values: dict) -> None:
    """Checkpoints, sample manifests and metrics files that check out, for every sample set of the
    campaign, with FID (and its replicates) ``values[(run, guidance)](seed index, milestone)``
    (run as the config names it; 3.0 where not given), or with the metrics of the dict it returns
    (IS 5.0 unless given)."""
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(20) * 0.05  # shared by every set: the sampling noise they pair on
    for s in c.sample_sets():
        ckpt = Path(c.checkpoint(s.run, s.milestone))
        if not ckpt.exists():
            ckpt.parent.mkdir(parents=True, exist_ok=True)
            ckpt.write_bytes(f"{s.run}/{s.milestone}".encode())
        manifest = Path(c.path("sample_manifest", **s.wildcards))
        write_json(manifest, {"checkpoint_sha256": file_digest(ckpt), "seed": 0, "labels": s.labels})
        seed_index = c.groups[c.group_of(s.run)].index(s.run)
        given = values.get((c.group_of(s.run), s.guidance), lambda i, m: 3.0)(seed_index, s.milestone)
        metrics = given if isinstance(given, dict) else {"fid": given}
        record = {**metrics, **{f"{m}_se": 0.05 for m in metrics}}
        replicates = {m: (v + noise + rng.standard_normal(20) * 0.005).tolist() for m, v in metrics.items()}
        if "is" not in metrics:  # the same in every set, exactly
            record, replicates = record | {"is": 5.0, "is_se": 0.1}, replicates | {"is": [5.0] * 20}
        write_record(
            c.metrics(s),
            {
                **record,
                "num_samples": 600,
                "extractor": "test-features",
                "bootstrap": {"seed": 0, "resamples": 20, "blocks": {"fid": 600}, "replicates": replicates},
            },
            c.specs.hash("evaluation"),
            {
                "spec": c.specs.hash(sample_job(s)),
                "manifest_sha256": file_digest(manifest),
                "checkpoint_sha256": file_digest(ckpt),
                "seed": c.sampling(s.run).seed,
                "labels": s.labels,
            },
        )
