"""The training engine: config validation, data order, optimizers, EMA, and segments that survive
SIGKILL bit-exactly (on CPU).

Runs are tiny (SiT-T/2 on 4×8×8 latents, 10 classes, global batch 8) and single-threaded. The
helpers here are shared with test_train_distributed.py and test_train_submit.py.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from ig.checkpoints import load_for_sampling, load_milestone, load_state
from ig.data.latents import LatentDataset, map_npz
from ig.errors import IGError
from ig.train.batches import BatchPlan, epoch_permutation
from ig.train.benchmarks import write_random_latents
from ig.train.cli import add_arguments
from ig.train.config import RunConfig
from ig.train.ema import EMA
from ig.train.engine import Segment, run_segment
from ig.train.log import read_log
from ig.train.optim import build_optimizer, orthogonalize
from ig.utils.io import file_digest, save_npz
from tests.conftest import REPO_ROOT

LATENT_SHAPE = (4, 8, 8)
NUM_CLASSES = 10
RUN = {
    "model": {"name": "SiT-T/2", "input_size": 8, "num_classes": NUM_CLASSES},
    "global_batch": 8,
    "log_every": 1,
    "resume_every_steps": 2,
}
TIMING_KEYS = ("images_per_s", "peak_mem_gib")


# --- helpers -------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def one_thread():
    """Bit-exact comparisons with subprocesses (OMP_NUM_THREADS=1) need the same thread count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def write_latents(folder: Path, n: int = 40, fmt: str = "sit", shard_size: int = 16) -> Path:
    """A latent folder in the ``ig encode`` contract format, three shards by default."""
    return write_random_latents(folder, n, LATENT_SHAPE, NUM_CLASSES, fmt=fmt, shard_size=shard_size)


def write_run(path: Path, **overrides: Any) -> Path:
    path.write_text(yaml.safe_dump(RUN | overrides))
    return path


def segment(tmp: Path, name: str, latents: Path, **kw: Any) -> Segment:
    """A segment writing ``tmp/<name>.pt`` with workdir ``tmp/<name>.partial``."""
    return Segment(
        latents=latents, out=tmp / f"{name}.pt", workdir=tmp / f"{name}.partial", device="cpu", progress=False, **kw
    )


def train_argv(seg: Segment, run_config: Path) -> list[str]:
    """``ig train`` arguments for ``seg``."""
    argv = ["--run-config", str(run_config), "--latents", str(seg.latents), "--out", str(seg.out)]
    argv += ["--workdir", str(seg.workdir), "--device", "cpu", "--no-progress"]
    argv += ["--until-step", str(seg.until_step)] if seg.until_step else ["--until-epoch", str(seg.until_epoch)]
    for flag, value in (("--init", seg.init), ("--log", seg.log), ("--grid", seg.grid)):
        if value is not None:
            argv += [flag, str(value)]
    return argv


def subprocess_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "RANK", "WORLD_SIZE", "MASTER_"))}
    return env | {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)} | extra


def assert_same_state(a: Any, b: Any, where: str = "checkpoint", exact: bool = True) -> None:
    """Every tensor and value equal (``exact``) or close; ``segment`` (paths) is not compared."""
    if isinstance(a, dict):
        keys = set(a) - {"segment"}
        assert keys == set(b) - {"segment"}, where
        for k in keys:
            assert_same_state(a[k], b[k], f"{where}.{k}", exact)
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same_state(x, y, f"{where}[{i}]", exact)
    elif isinstance(a, torch.Tensor):
        if exact or not a.is_floating_point():
            assert torch.equal(a, b), f"{where} differs"
        else:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=2e-5, msg=f"{where} differs")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def log_without_timings(path: Path) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in read_log(path)]


# --- config --------------------------------------------------------------------------------


def test_config_defaults_follow_the_optimizer_kind():
    sit = RunConfig.from_dict({"model": {"name": "SiT-T/2"}})
    assert (sit.optimizer.lr, sit.optimizer.betas, sit.ema_decay, sit.grad_clip) == (1e-4, (0.9, 0.999), 0.9999, 1.0)
    muon = RunConfig.from_dict({"model": {"name": "SiT-T/2"}, "optimizer": {"kind": "muon"}})
    assert (muon.optimizer.lr, muon.optimizer.betas, muon.optimizer.muon_weight_decay) == (2e-4, (0.9, 0.95), 0.01)


@pytest.mark.parametrize(
    "data,message",
    [
        ({"global_batch": 8, "globl_batch": 8}, "'globl_batch' is unknown"),
        ({"optimizer": {"kind": "adamw", "lrr": 1.0}}, "'optimizer.lrr' is unknown"),
        ({"global_batch": "8"}, "'global_batch' must be int"),
        ({"global_batch": 8.0}, "'global_batch' must be int"),
        ({"compile": 1}, "'compile' must be bool"),
        ({"optimizer": {"betas": [0.9]}}, "'optimizer.betas' must be a list of 2"),
        ({"optimizer": {"kind": "sgd"}}, "'optimizer.kind' must be one of"),
        ({"precision": "fp8"}, "'precision' must be one of"),
        ({"loss": {"time_schedule": "cosine"}}, "'loss.time_schedule' must be one of"),
        ({"loss": 0.5}, "'loss' must be a mapping"),
        ({"model": {"ig_layer": 2}}, "'model.name' is missing"),
    ],
)
def test_config_errors_name_the_key(data, message):
    with pytest.raises(IGError, match=message):
        RunConfig.from_dict({"model": {"name": "SiT-T/2"}} | data)


def test_config_from_yaml_file(tmp_path):
    path = tmp_path / "sit-b2.yaml"
    path.write_text("model: {name: SiT-B/2, ig_layer: 4}\noptimizer: {lr: 1e-4}\nema_decay: 0.9995\n")
    cfg = RunConfig.from_file(path)
    assert cfg.name == "sit-b2" and cfg.optimizer.lr == 1e-4  # YAML 1.1 reads 1e-4 as a string
    assert cfg.model == {"name": "SiT-B/2", "ig_layer": 4}
    (tmp_path / "bad.yaml").write_text("model: [unclosed\n")
    with pytest.raises(IGError, match="not valid YAML"):
        RunConfig.from_file(tmp_path / "bad.yaml")


def test_fingerprint_ignores_execution_details_only():
    base = RunConfig.from_dict(RUN)
    same = RunConfig.from_dict(RUN | {"name": "x", "max_device_batch": 2, "log_every": 7, "compile": True})
    other = RunConfig.from_dict(RUN | {"seed": 1})
    assert base.fingerprint() == same.fingerprint() != other.fingerprint()


# --- data ----------------------------------------------------------------------------------


def test_batch_plan_splits_the_same_global_batches_over_any_world_size():
    n, seed, step = 40, 3, 7  # step 7 lies in epoch 1 (5 steps per epoch)
    single = BatchPlan.build(8, 1, 0, None)
    (offset, expected), *_ = single.micro_batches(seed, step, n)
    assert offset == 0 and len(expected) == 8
    for world, max_device in ((2, None), (4, None), (2, 2), (1, 3)):
        got = {}
        for rank in range(world):
            plan = BatchPlan.build(8, world, rank, max_device)
            assert plan.micro_batch * plan.accum_steps * world == 8
            assert max_device is None or plan.micro_batch <= max_device
            got |= {off: idx for off, idx in plan.micro_batches(seed, step, n)}
        assert np.array_equal(np.concatenate([got[k] for k in sorted(got)]), expected)
    assert BatchPlan.build(8, 1, 0, 3).micro_batch == 2  # 8 = 4 x 2: equal micro-batches
    with pytest.raises(IGError, match="not divisible"):
        BatchPlan.build(8, 3, 0, None)


def test_epochs_are_different_permutations_of_all_images():
    a, b = epoch_permutation(0, 0, 40), epoch_permutation(0, 1, 40)
    assert sorted(a) == sorted(b) == list(range(40)) and not np.array_equal(a, b)
    assert np.array_equal(a, epoch_permutation(0, 0, 40))


def test_shards_are_memory_mapped(tmp_path):
    folder = write_latents(tmp_path / "lat", n=20)
    arrays = map_npz(folder / "shard-00000.npz")
    assert isinstance(arrays["mean"], np.memmap) and arrays["mean"].shape == (16, *LATENT_SHAPE)
    np.savez_compressed(tmp_path / "c.npz", a=np.arange(3))  # not memory-mappable: loaded instead
    assert map_npz(tmp_path / "c.npz")["a"].tolist() == [0, 1, 2]


@pytest.mark.parametrize("fmt", ["sit", "lightningdit"])
def test_batches_sample_the_posterior_or_a_flip_then_normalize(tmp_path, fmt):
    data = LatentDataset(write_latents(tmp_path / "lat", fmt=fmt))
    indices = np.array([3, 17, 39, 0])  # across three shards
    x0, y = data.batch(indices, torch.Generator().manual_seed(0), torch.device("cpu"))
    shard, row = 17 // 16, 17 % 16
    raw = {k: torch.from_numpy(np.array(v[row])).float() for k, v in data.shards[shard].items() if k != "labels"}
    z = x0[1] / 0.5 + 0.1  # un-normalise
    assert y[1] == int(data.shards[shard]["labels"][row])
    if fmt == "sit":
        assert not torch.allclose(z, raw["mean"], atol=1e-3)
        assert ((z - raw["mean"]).abs() <= 6 * raw["std"] + 1e-3).all()
    else:
        assert torch.allclose(z, raw["latents"], atol=1e-5) or torch.allclose(z, raw["latents_flip"], atol=1e-5)
    flips = [data.batch(indices, torch.Generator().manual_seed(s), torch.device("cpu"))[0][1] for s in range(8)]
    if fmt == "lightningdit":  # both copies get picked
        assert len({round(float(f.sum()), 3) for f in flips}) == 2


# --- optimizers and EMA --------------------------------------------------------------------


def tiny_model() -> torch.nn.Module:
    from ig.models import create_model

    torch.manual_seed(0)
    return create_model("SiT-T/2", input_size=8, num_classes=NUM_CLASSES)


def one_step(model: torch.nn.Module, opt: torch.optim.Optimizer) -> None:
    x = torch.randn(4, *LATENT_SHAPE)
    v_final, v_inter = model(x, torch.rand(4), torch.randint(0, NUM_CLASSES, (4,)))
    ((v_final - x) ** 2 + (v_inter - x) ** 2).mean().backward()
    opt.step()
    opt.zero_grad()


def test_muon_leaves_the_frozen_positional_embedding_alone():
    """The release's Muon decays the fixed sin-cos pos_embed every step; ours never touches it."""
    model = tiny_model()
    cfg = RunConfig.from_dict({"model": {"name": "SiT-T/2"}, "optimizer": {"kind": "muon", "lr": 0.05}})
    opt = build_optimizer(cfg.optimizer, model)
    grouped = {id(p) for g in opt.param_groups for p in g["params"]}
    assert id(model.pos_embed) not in grouped
    pos_embed, weight = model.pos_embed.clone(), model.blocks[0].attn.qkv.weight.clone()
    for _ in range(2):
        one_step(model, opt)
    assert torch.equal(model.pos_embed, pos_embed)
    assert not torch.equal(model.blocks[0].attn.qkv.weight, weight)
    muon, adam = opt.param_groups
    assert all(p.ndim >= 2 for p in muon["params"]) and all(p.ndim < 2 for p in adam["params"])
    assert adam["step"] == 2 and "momentum_buffer" in opt.state[muon["params"][0]]


def test_newton_schulz_orthogonalizes():
    g = torch.randn(64, 192)
    singular = torch.linalg.svdvals(orthogonalize(g, steps=5).float())
    assert singular.min() > 0.5 and singular.max() < 1.5  # U S' Vᵀ with S' ≈ 1 (Muon's quintic)
    assert orthogonalize(g.T, steps=5).shape == (192, 64)


def test_auxiliary_adam_is_adam():
    model_a, model_b = tiny_model(), tiny_model()
    for model in (model_a, model_b):  # matrices frozen: Muon has nothing to do
        for p in model.parameters():
            p.requires_grad_(p.requires_grad and p.ndim < 2)
    cfg = RunConfig.from_dict({"model": {"name": "SiT-T/2"}, "optimizer": {"kind": "muon"}})
    ours = build_optimizer(cfg.optimizer, model_a)
    gains = [p for p in model_b.parameters() if p.requires_grad]
    reference = torch.optim.Adam(gains, lr=cfg.optimizer.lr, betas=cfg.optimizer.betas, eps=cfg.optimizer.eps)
    for _ in range(3):
        torch.manual_seed(1)
        one_step(model_a, ours)
        torch.manual_seed(1)
        one_step(model_b, reference)
    (group,) = ours.param_groups
    for a, b in zip(group["params"], gains, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_ema_averages_trainable_parameters_and_copies_the_rest():
    model = tiny_model()
    ema = EMA(model, decay=0.9)
    before = {k: v.clone() for k, v in ema.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    ema.update(model)
    after = ema.state_dict()
    w = "blocks.0.attn.qkv.weight"
    torch.testing.assert_close(after[w], before[w] + 0.1)
    assert torch.equal(after["pos_embed"], before["pos_embed"])
    assert not ema.model.training and not any(p.requires_grad for p in ema.model.parameters())


# --- segments ------------------------------------------------------------------------------


def train_with_kills(cfg: RunConfig, run_config: Path, seg: Segment, kill_after_steps: list[int]) -> int:
    """Run the segment as ``ig train`` subprocesses, SIGKILLed as soon as the log reaches each of
    ``kill_after_steps`` (a fresh process after each kill), then finish it in this process.
    Returns how many kills landed before the milestone was written."""
    log = seg.log or seg.workdir / "training.jsonl"
    landed = 0
    for k in kill_after_steps:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ig", "train", *train_argv(seg, run_config)], env=subprocess_env()
        )
        deadline = time.monotonic() + 120
        while proc.poll() is None:
            records = read_log(log) if log.is_file() else []
            if records and records[-1]["step"] >= k:
                proc.send_signal(signal.SIGKILL)
                landed += proc.wait() == -signal.SIGKILL and not seg.out.exists()
                break
            assert time.monotonic() < deadline, "the training subprocess made no progress"
            time.sleep(0.02)
        if seg.out.exists():
            return landed
    assert seg.resume_path.is_file()
    run_segment(cfg, seg)
    assert seg.out.is_file() and not seg.resume_path.exists()
    return landed


def check_two_milestones_survive_kills(tmp_path: Path, kills: tuple[int, int], steps_per_segment: int) -> None:
    """Milestones 1 and 2 of a run killed ``kills`` times in its two segments are bit-identical
    to those of an uninterrupted run, and so is its metrics log (timings aside)."""
    latents = write_latents(tmp_path / "lat")  # 40 images: 5 steps per epoch
    epochs = steps_per_segment // 5
    run = write_run(tmp_path / "run.yaml")
    cfg = RunConfig.from_file(run)
    chains = {}
    for chain in ("ref", "killed"):
        log = tmp_path / chain / "log.jsonl"
        first = segment(tmp_path / chain, "e1", latents, until_epoch=epochs, log=log)
        second = segment(tmp_path / chain, "e2", latents, until_epoch=2 * epochs, init=first.out, log=log)
        chains[chain] = (first, second)
    for seg in chains["ref"]:
        run_segment(cfg, seg)

    rng = random.Random(sum(kills))
    landed = 0
    for index, (n, seg) in enumerate(zip(kills, chains["killed"], strict=True)):
        first = index * steps_per_segment
        kill_at = sorted(rng.sample(range(first + 1, first + steps_per_segment - 2), n))
        if n:
            landed += train_with_kills(cfg, run, seg, kill_at)
        else:
            run_segment(cfg, seg)
    assert landed >= (1 + sum(kills)) // 2  # on a slow machine a kill may come after the milestone

    for ref, killed in zip(*chains.values(), strict=True):
        assert_same_state(load_milestone(ref.out), load_milestone(killed.out), ref.out.name)
    ref, killed = chains["ref"][1], chains["killed"][1]  # the latest milestone keeps its full state
    assert_same_state(load_state(ref.state_path), load_state(killed.state_path), ref.state_path.name)
    ref_log, killed_log = (log_without_timings(seg.log) for seg in (chains["ref"][0], chains["killed"][0]))
    assert [r["step"] for r in killed_log] == list(range(1, 2 * steps_per_segment + 1))  # no step twice
    assert killed_log == ref_log


def test_two_milestones_with_a_kill_in_between_resume_exactly(tmp_path):
    check_two_milestones_survive_kills(tmp_path, kills=(0, 1), steps_per_segment=15)


@pytest.mark.slow
def test_many_kills_resume_exactly(tmp_path):
    check_two_milestones_survive_kills(tmp_path, kills=(4, 4), steps_per_segment=40)


def test_segments_equal_one_long_run_and_feed_sampling(tmp_path):
    latents = write_latents(tmp_path / "lat")
    cfg = RunConfig.from_dict(RUN)
    run_segment(cfg, first := segment(tmp_path, "a", latents, until_step=3))
    run_segment(cfg, segment(tmp_path, "b", latents, until_epoch=2, init=first.out))
    run_segment(cfg, segment(tmp_path, "long", latents, until_step=10))
    b, long = segment(tmp_path, "b", latents), segment(tmp_path, "long", latents)
    assert_same_state(load_state(b.state_path), load_state(long.state_path))
    assert not first.state_path.exists()  # only the latest milestone keeps its full training state

    model, meta = load_for_sampling(tmp_path / "b.pt")
    state = load_milestone(tmp_path / "b.pt")
    assert not model.training and (meta["step"], meta["epoch"]) == (10, 2) and meta["run"]["name"] == "run"
    assert meta["latent"]["normalization"] == {"kind": "scalar", "scale": 0.5, "shift": 0.1}
    assert meta["latent"]["latent_shape"] == list(LATENT_SHAPE) and meta["latent"]["num_classes"] == NUM_CLASSES
    assert all(torch.equal(v, state["ema"][k]) for k, v in model.state_dict().items())
    v, _ = model(torch.randn(2, *LATENT_SHAPE), torch.rand(2), torch.tensor([0, 1]))
    assert v.shape == (2, *LATENT_SHAPE)
    with pytest.raises(IGError, match="nothing to train"):
        run_segment(cfg, segment(tmp_path, "c", latents, until_step=10, init=tmp_path / "b.pt"))


@pytest.mark.parametrize(
    "options",
    [
        {"optimizer": {"kind": "muon"}, "loss": {"cosine": True, "time_schedule": "lognormal"}},
        {"precision": "bf16", "max_device_batch": 4, "ema_decay": 0.9995, "optimizer": {"warmup_steps": 2}},
        {"precision": "fp16", "grad_clip": None},
    ],
    ids=["lightningdit-muon", "bf16-accumulation", "fp16-grad-scaler"],
)
def test_release_variants_train(tmp_path, options):
    latents = write_latents(tmp_path / "lat", fmt="lightningdit" if "loss" in options else "sit")
    seg = segment(tmp_path, "m", latents, until_step=3, tensorboard=tmp_path / "tb")  # a warning if not installed
    run_segment(RunConfig.from_dict(RUN | options), seg)
    records = read_log(seg.workdir / "training.jsonl")
    assert [r["step"] for r in records] == [1, 2, 3]
    assert all(np.isfinite(r["loss"]) and r["loss_inter"] > 0 for r in records)
    assert ("loss" in options) == all(r["loss_cos"] > 0 for r in records)
    if "optimizer" in options and "warmup_steps" in options["optimizer"]:
        assert [r["lr"] for r in records] == [0.5e-4, 1e-4, 1e-4]


def test_activation_checkpointing_changes_nothing(tmp_path):
    latents = write_latents(tmp_path / "lat")
    for name, flag in (("plain", False), ("ckpt", True)):
        run_segment(
            RunConfig.from_dict(RUN | {"grad_checkpointing": flag}), segment(tmp_path, name, latents, until_step=2)
        )
    plain, ckpt = (load_state(tmp_path / f"{name}.partial/state.pt")["model"] for name in ("plain", "ckpt"))
    assert_same_state(plain, ckpt)


def test_non_finite_loss_stops_and_keeps_the_last_good_resume_file(tmp_path, monkeypatch):
    from ig.train import engine

    latents = write_latents(tmp_path / "lat")
    cfg = RunConfig.from_dict(RUN | {"resume_every_steps": 1})
    calls, real = [], engine.ig_losses

    def diverging(*args, **kwargs):  # the loss of the 4th step blows up
        calls.append(1)
        terms = real(*args, **kwargs)
        return dataclasses.replace(terms, total=terms.total * float("nan")) if len(calls) == 4 else terms

    monkeypatch.setattr(engine, "ig_losses", diverging)
    seg = segment(tmp_path, "nan", latents, until_step=5)
    with pytest.raises(IGError, match="non-finite loss nan .* in step 4 .*stopped at step 4.*resume.pt"):
        run_segment(cfg, seg)
    assert load_state(seg.resume_path)["step"] == 3 and not seg.out.exists()


@pytest.mark.parametrize(
    "corrupt,message",
    [
        (lambda a: a["mean"].__setitem__(3, np.nan), "holds non-finite mean values"),
        (lambda a: a["labels"].__setitem__(2, NUM_CLASSES), f"has label {NUM_CLASSES}, outside 0..{NUM_CLASSES - 1}"),
    ],
    ids=["nan-latents", "label-out-of-range"],
)
def test_bad_latents_are_refused_when_first_read(tmp_path, corrupt, message):
    """A label equal to num_classes would train as the null class, NaN latents as a NaN loss later:
    both are named at load, once per shard (the manifest's checksum is rewritten to let them in)."""
    latents = write_latents(tmp_path / "lat")
    shard = latents / "shard-00001.npz"
    arrays = dict(np.load(shard))
    corrupt(arrays)
    save_npz(shard, **arrays)
    manifest = json.loads((latents / "manifest.json").read_text())
    manifest["shards"][1]["sha256"] = file_digest(shard)
    (latents / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IGError, match=message):
        LatentDataset(latents)


def test_latent_shards_are_checked_against_the_manifest_once(tmp_path):
    latents = write_latents(tmp_path / "lat")
    LatentDataset(latents)
    verified = json.loads((latents / "verified.json").read_text())
    assert sorted(verified) == ["shard-00000.npz", "shard-00001.npz", "shard-00002.npz"]
    shard = latents / "shard-00002.npz"
    shard.write_bytes(shard.read_bytes()[:-10] + b"0123456789")  # same size, other bytes, new mtime
    with pytest.raises(IGError, match="does not match its checksum in manifest.json"):
        LatentDataset(latents)


def test_a_resume_file_of_another_run_is_refused(tmp_path):
    latents = write_latents(tmp_path / "lat")
    other = segment(tmp_path, "x", latents, until_step=2)
    run_segment(RunConfig.from_dict(RUN), other)
    seg = segment(tmp_path, "y", latents, until_step=4)
    seg.workdir.mkdir()
    other.state_path.rename(seg.resume_path)  # a state from "another segment"
    with pytest.raises(IGError, match="belongs to another run config or segment"):
        run_segment(RunConfig.from_dict(RUN), seg)


def test_milestones_are_lean_and_the_full_state_lives_in_the_workdir(tmp_path):
    latents = write_latents(tmp_path / "lat")
    run_segment(RunConfig.from_dict(RUN), seg := segment(tmp_path, "m", latents, until_step=2))
    milestone, state = load_milestone(seg.out), load_state(seg.state_path)
    assert "optimizer" not in milestone and "model" not in milestone and "optimizer" in state
    assert milestone["training_state"] == "m.partial/state.pt"
    assert seg.out.stat().st_size < 0.4 * seg.state_path.stat().st_size  # EMA only vs model, EMA, 2 moments


def test_a_finished_segment_is_not_trained_again(tmp_path, caplog):
    """Killed after its milestone was written, the workflow deletes the milestone and reruns the job:
    it is rewritten from the segment's full state, with no step trained again."""
    latents = write_latents(tmp_path / "lat")
    cfg = RunConfig.from_dict(RUN)
    run_segment(cfg, seg := segment(tmp_path, "f", latents, until_step=3, log=tmp_path / "log.jsonl"))
    before = load_milestone(seg.out)
    log_before = (tmp_path / "log.jsonl").read_text()
    seg.out.unlink()
    (seg.workdir / ".resume.pt.x1y2.tmp").write_bytes(b"half a save")  # a kill during a save
    with caplog.at_level("INFO", logger="ig.train.engine"):
        run_segment(cfg, seg)
    assert "the segment had finished" in caplog.text
    assert_same_state(load_milestone(seg.out), before)
    assert (tmp_path / "log.jsonl").read_text() == log_before
    assert not list(seg.workdir.glob(".*.tmp"))


def test_continuing_from_a_milestone_whose_state_was_removed_is_one_line(tmp_path):
    latents = write_latents(tmp_path / "lat")
    cfg = RunConfig.from_dict(RUN)
    run_segment(cfg, a := segment(tmp_path, "a", latents, until_step=2))
    run_segment(cfg, segment(tmp_path, "b", latents, until_step=4, init=a.out))
    with pytest.raises(IGError, match="was removed once a later milestone was written"):
        run_segment(cfg, segment(tmp_path, "c", latents, until_step=6, init=a.out))


def test_a_second_job_of_the_same_segment_waits_for_the_first(tmp_path):
    """A rerun while an orphaned job still trains the segment: it waits on the workdir lock, then
    finds the segment finished instead of training it twice."""
    import fcntl
    import threading

    latents = write_latents(tmp_path / "lat")
    cfg = RunConfig.from_dict(RUN)
    seg = segment(tmp_path, "w", latents, until_step=2)
    seg.workdir.mkdir()
    holder = open(seg.workdir / ".lock", "w")  # noqa: SIM115 - held across the thread below
    fcntl.flock(holder, fcntl.LOCK_EX)
    second = threading.Thread(target=run_segment, args=(cfg, seg))
    second.start()
    time.sleep(1.0)
    assert second.is_alive() and not seg.out.exists()  # waiting, not training
    fcntl.flock(holder, fcntl.LOCK_UN)
    holder.close()
    second.join(timeout=120)
    assert seg.out.is_file()


def test_model_must_fit_the_latents(tmp_path):
    latents = write_latents(tmp_path / "lat")
    cfg = RunConfig.from_dict(RUN | {"model": {"name": "SiT-T/2", "num_classes": 1000, "input_size": 8}})
    with pytest.raises(IGError, match="1000 classes, the latent folder has 4x8x8 and 10"):
        run_segment(cfg, segment(tmp_path, "x", latents, until_step=1))


def test_cli_documents_the_flags():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    text = parser.format_help()
    for flag in ("--run-config", "--latents", "--out", "--workdir", "--until-epoch", "--until-step", "--init"):
        assert flag in text
    assert "--submit {slurm,local}" in text


def test_milestone_preview_decodes_through_the_autoencoder_or_shows_latents(tmp_path, caplog):
    from diffusers import AutoencoderKL

    from ig.data.autoencoders import tiny_config
    from ig.images import latent_preview

    torch.manual_seed(0)
    AutoencoderKL(**tiny_config()).save_pretrained(tmp_path / "ae")
    z = torch.randn(2, *LATENT_SHAPE)
    latent = {"normalization": {"kind": "scalar", "scale": 1.0, "shift": 0.0}}
    images = latent_preview(z, latent | {"autoencoder": {"kind": "tiny", "path": str(tmp_path / "ae")}})
    assert images.shape == (2, 32, 32, 3) and images.dtype == np.uint8 and images.std() > 0
    latents = latent_preview(z, latent | {"autoencoder": {"kind": "tiny", "path": str(tmp_path / "missing")}})
    assert latents.shape == (2, *LATENT_SHAPE[1:], 3) and "cannot load the autoencoder" in caplog.text
