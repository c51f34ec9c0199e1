"""The run config: everything that defines a training run, in one strictly validated YAML/JSON file.

A run is trained in segments (milestone to milestone); every segment of a run reads the same run
config. Keys that change the trained weights (model, loss, optimizer, batch, seed, …) make up the
run's *fingerprint*: a resume file or ``--init`` checkpoint with another fingerprint is refused.
Execution details (cadences, ``max_device_batch``, ``compile``, ``grad_checkpointing``) may change
between segments, e.g. to fit a smaller GPU.

Example::

    name: sit-b2-ig
    model: {name: SiT-B/2, ig_layer: 4}     # create_model(**model)
    loss: {lam: 0.5}
    optimizer: {kind: adamw}                # release defaults of the kind fill the rest
    global_batch: 256
    precision: bf16
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ig.errors import IGError
from ig.models.sizes import model_options
from ig.utils.io import read_yaml_mapping

# The run config's vocabulary (the losses, optimizers and training loop import it from here).
OPTIMIZERS = ("adamw", "muon")
PRECISIONS = ("fp32", "bf16", "fp16")
TIME_SCHEDULES = ("uniform", "lognormal")
# Keys that do not change what is trained, so they may differ between segments of one run.
EXECUTION_KEYS = (
    "name",
    "max_device_batch",
    "compile",
    "grad_checkpointing",
    "resume_every_steps",
    "resume_every_minutes",
    "log_every",
)

# Release settings (CVL-UESTC/Internal-Guidance: SiT/train.py, LightningDiT/train.py): AdamW of the SiT release,
# MuonWithAuxAdam of the LightningDiT release (Muon for matrices, Adam for gains and biases).
OPTIMIZER_DEFAULTS: dict[str, dict[str, Any]] = {
    "adamw": {"lr": 1e-4, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0},
    "muon": {"lr": 2e-4, "betas": (0.9, 0.95), "eps": 1e-8, "weight_decay": 0.0},
}


@dataclass(frozen=True)
class LossConfig:
    """Arguments of :func:`ig.losses.ig_losses`."""

    lam: float = 0.5
    omega: float = 0.0
    cosine: bool = False
    time_schedule: str = "uniform"

    def __post_init__(self) -> None:
        _check_choice("loss.time_schedule", self.time_schedule, TIME_SCHEDULES)
        if self.lam < 0:
            raise IGError(f"run config key 'loss.lam' must be >= 0, got {self.lam}")


@dataclass(frozen=True)
class OptimizerConfig:
    """AdamW, or Muon with an auxiliary Adam; unset values take the release defaults of ``kind``.

    ``lr``, ``betas``, ``eps`` and ``weight_decay`` are AdamW's, or the auxiliary Adam's for Muon
    (which shares ``lr`` with it, as in the release). ``momentum``, ``ns_steps`` and
    ``muon_weight_decay`` are Muon's only. ``warmup_steps`` ramps the learning rate linearly.
    """

    kind: str = "adamw"
    lr: float | None = None
    betas: tuple[float, float] | None = None
    eps: float | None = None
    weight_decay: float | None = None
    momentum: float = 0.95
    ns_steps: int = 5
    muon_weight_decay: float = 0.01
    warmup_steps: int = 0

    def __post_init__(self) -> None:
        _check_choice("optimizer.kind", self.kind, OPTIMIZERS)
        for key, value in OPTIMIZER_DEFAULTS[self.kind].items():
            if getattr(self, key) is None:
                object.__setattr__(self, key, value)
        if self.lr <= 0 or self.warmup_steps < 0 or self.ns_steps < 1:
            raise IGError("run config: optimizer.lr must be > 0, warmup_steps >= 0 and ns_steps >= 1")


@dataclass(frozen=True)
class RunConfig:
    """One training run. ``model`` is ``{"name": ..., **overrides}`` for ``ig.models.create_model``."""

    model: dict[str, Any]
    name: str = "run"
    loss: LossConfig = field(default_factory=LossConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    global_batch: int = 256
    max_device_batch: int | None = None
    grad_clip: float | None = 1.0
    ema_decay: float = 0.9999
    precision: str = "fp32"
    compile: bool = False
    grad_checkpointing: bool = False
    seed: int = 0
    resume_every_steps: int = 1000
    resume_every_minutes: float = 10.0
    log_every: int = 100

    def __post_init__(self) -> None:
        if not isinstance(self.model.get("name"), str):
            raise IGError("run config key 'model.name' is missing (e.g. model: {name: SiT-B/2})")
        options = model_options(**self.model)  # an unknown size or option fails here, before any job runs
        if options["ig_layer"] == 0 and (self.loss.lam > 0 or self.loss.omega != 0):
            raise IGError(
                f"run config: loss.lam={self.loss.lam} / loss.omega={self.loss.omega} train an intermediate head, "
                "but model.ig_layer is 0; set model.ig_layer > 0 or loss.lam: 0"
            )
        _check_choice("precision", self.precision, PRECISIONS)
        positive = ("global_batch", "resume_every_steps", "resume_every_minutes", "log_every")
        for key in positive:
            if getattr(self, key) <= 0:
                raise IGError(f"run config key '{key}' must be > 0, got {getattr(self, key)}")
        if self.max_device_batch is not None and self.max_device_batch <= 0:
            raise IGError(f"run config key 'max_device_batch' must be > 0, got {self.max_device_batch}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise IGError(f"run config key 'ema_decay' must lie in [0, 1), got {self.ema_decay}")

    @classmethod
    def from_file(cls, path: str | Path) -> RunConfig:
        """Read a YAML or JSON run config; ``name`` defaults to the file's stem."""
        data = read_yaml_mapping(path, what="run config")
        data.setdefault("name", Path(path).stem)
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        return _build(cls, data, prefix="")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (tuples as lists), as stored in checkpoints."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def fingerprint(self) -> str:
        """Hash of the keys that change the trained weights (see the module docstring)."""
        d = {k: v for k, v in self.to_dict().items() if k not in EXECUTION_KEYS}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def _check_choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise IGError(f"run config key '{key}' must be one of {list(choices)}, got {value!r}")


def _build(cls: type, data: Any, prefix: str) -> Any:
    """Instantiate dataclass ``cls`` from a mapping, naming the first unknown or mistyped key."""
    if not isinstance(data, dict):
        raise IGError(f"run config key '{prefix.rstrip('.')}' must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in names:
            raise IGError(f"run config key '{prefix}{key}' is unknown (allowed here: {', '.join(names)})")
    kwargs = {key: _convert(hints[key], value, f"{prefix}{key}") for key, value in data.items()}
    for f in dataclasses.fields(cls):
        if f.name not in kwargs and f.default is f.default_factory is dataclasses.MISSING:
            raise IGError(f"run config key '{prefix}{f.name}' is missing")
    return cls(**kwargs)


def _convert(hint: Any, value: Any, key: str) -> Any:
    """Check ``value`` against a type hint; ints are accepted for floats, and so are numeric
    strings, because YAML 1.1 reads ``1e-4`` (no dot) as a string."""
    if isinstance(hint, types.UnionType):  # X | None
        if value is None:
            return None
        (hint,) = [h for h in typing.get_args(hint) if h is not type(None)]
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, f"{key}.")
    if typing.get_origin(hint) is tuple:
        items = typing.get_args(hint)
        if not isinstance(value, list | tuple) or len(value) != len(items):
            raise IGError(f"run config key '{key}' must be a list of {len(items)} numbers, got {value!r}")
        return tuple(_convert(h, v, key) for h, v in zip(items, value, strict=True))
    if typing.get_origin(hint) is dict:
        if not isinstance(value, dict):
            raise IGError(f"run config key '{key}' must be a mapping, got {type(value).__name__}")
        return value
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if hint is float and (is_int or isinstance(value, str)):
        try:
            return float(value)
        except ValueError:
            pass
    if (hint is int and not is_int) or not isinstance(value, hint):
        raise IGError(f"run config key '{key}' must be {hint.__name__}, got {type(value).__name__} {value!r}")
    return value
