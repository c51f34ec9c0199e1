"""The metrics file of one sample set, ``ig evaluate``'s output, as one typed, versioned record.

``ig evaluate`` writes it (:func:`write_record`); tables, plots, claims and the error rules read it
through :class:`MetricsRecord`, whose properties name what the file holds, so that no module reads
it by key paths of its own. The file is JSON:

- each metric (``fid``, ``sfid``, ``is``, ``precision``, ``recall``, ``kid``) with ``<metric>_se``,
  its bootstrap standard error, and under ``bootstrap`` the resampling (seed, resamples, blocks) and
  the per-resample values that make paired differences possible;
- ``spec``: the hash of the evaluation's job spec (``ig.campaign.specs``); ``extractor``: the
  feature network's identity; ``reference``: the reference statistics;
- ``samples``: where the samples came from: the sample set's spec hash, the digests of its manifest
  and checkpoint, its guidance, sampler, seed and label mode.

``format`` names the version: a file of another version is refused with the command that redoes it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ig.errors import IGError
from ig.utils.io import read_json, write_json

RECORD_FORMAT = "ig-metrics/2"  # /2: with the specs' hashes and the format named (files before had none)


class MetricsRecord(Mapping[str, Any]):
    """A metrics file's content (read-only; also a mapping, as the JSON it is)."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = data

    @classmethod
    def read(cls, path: str | Path) -> MetricsRecord:
        data = read_json(path, what="metrics file")
        if data.get("format") != RECORD_FORMAT:
            raise IGError(
                f"{path} is a metrics file of another version of ig evaluate ({data.get('format', 'unnamed')}, "
                f"this one writes {RECORD_FORMAT}); delete it and rerun the workflow to evaluate its samples again"
            )
        return cls(data)

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    # --- the metrics ---------------------------------------------------------------------------
    def value(self, metric: str) -> float | None:
        return self._data.get(metric)

    def se(self, metric: str) -> float | None:
        """The metric's sampling (bootstrap) standard error."""
        return self._data.get(f"{metric}_se")

    def replicates(self, metric: str) -> np.ndarray:
        """The metric on each bootstrap resample (the same resamples for every set of its size)."""
        return np.asarray(self._data["bootstrap"]["replicates"][metric], dtype=np.float64)

    @property
    def resampling(self) -> tuple[Any, Any, Any]:
        """What decides the bootstrap's resamples besides the sample count: seed, resamples, blocks."""
        boot = self._data.get("bootstrap", {})
        return boot.get("seed"), boot.get("resamples"), boot.get("blocks")

    @property
    def num_samples(self) -> int | None:
        return self._data.get("num_samples")

    @property
    def extractor(self) -> str | None:
        return self._data.get("extractor")

    @property
    def spec(self) -> str | None:
        """The hash of the evaluation's job spec (None outside the workflow)."""
        return self._data.get("spec")

    # --- where the samples came from -----------------------------------------------------------
    @property
    def samples(self) -> Mapping[str, Any]:
        return self._data.get("samples", {})

    @property
    def sample_spec(self) -> str | None:
        """The hash of the sample set's job spec (None outside the workflow)."""
        return self.samples.get("spec")

    @property
    def manifest_sha256(self) -> str | None:
        return self.samples.get("manifest_sha256")

    @property
    def checkpoint_sha256(self) -> str | None:
        return self.samples.get("checkpoint_sha256")

    @property
    def seed(self) -> int | None:
        """The sampling seed: two sets of one seed and label mode have the same noise and labels."""
        return self.samples.get("seed")

    @property
    def labels(self) -> str | None:
        return self.samples.get("labels")

    @property
    def guidance(self) -> Mapping[str, Any]:
        """The guidance the samples were drawn with (a tuned setting: what the tuner chose)."""
        return self.samples.get("guidance", {})


def as_record(metrics: Mapping[str, Any]) -> MetricsRecord:
    return metrics if isinstance(metrics, MetricsRecord) else MetricsRecord(metrics)


def write_record(path: str | Path, metrics: Mapping[str, Any], spec: str | None, samples: Mapping[str, Any]) -> None:
    """Write a metrics file (atomically): ``metrics`` (values, errors, bootstrap, extractor, reference),
    the evaluation's spec hash and where the samples came from."""
    write_json(path, {"format": RECORD_FORMAT, **metrics, "spec": spec, "samples": dict(samples)})
