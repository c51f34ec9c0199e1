"""Experiment tracking of ig.train.log: TensorBoard event files (read back with TensorBoard's own
reader) and the optional Weights & Biases run that IG_WANDB switches on (a stand-in module records
the calls, so the test needs no wandb install)."""

import sys
import types

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ig.errors import IGError
from ig.train.log import LOSS_KEYS, TrainingLog


def write_steps(log: TrainingLog, steps: range) -> None:
    for step in steps:
        log.add(step, torch.full((len(LOSS_KEYS),), float(step)), lr=1e-3)
    log.close()


def training_log(tmp_path, start_step: int = 0, **kw) -> TrainingLog:
    run = tmp_path / "runs" / "sit-b"
    options = dict(every=2, start_step=start_step, target_step=10, global_batch=8, steps_per_epoch=5, progress=False)
    return TrainingLog(run / "training.jsonl", **options | kw)


def scalars(folder, tag: str) -> dict[int, float]:
    events = EventAccumulator(str(folder))
    events.Reload()
    return {e.step: e.value for e in events.Scalars(tag)}


def test_tensorboard_gets_every_record_and_a_resumed_segment_replaces_what_followed_its_start(tmp_path):
    board = tmp_path / "runs" / "sit-b" / "tensorboard"
    write_steps(training_log(tmp_path, tensorboard=board), range(1, 9))
    assert scalars(board, "train/loss") == {2: 1.5, 4: 3.5, 6: 5.5, 8: 7.5}  # means over each window
    assert scalars(board, "train/lr")[8] == pytest.approx(1e-3)  # float32 in the event file
    # a segment resumed at step 4 (its resume file) logs steps 5.. again: the old ones after 4 go
    write_steps(training_log(tmp_path, start_step=4, tensorboard=board), range(5, 7))
    assert scalars(board, "train/loss") == {2: 1.5, 4: 3.5, 6: 5.5}


@pytest.fixture
def fake_wandb(monkeypatch):
    """A stand-in ``wandb`` module recording init, log and finish."""
    calls = []

    class Run:
        def log(self, values, step):
            calls.append(("log", step, values))

        def finish(self):
            calls.append(("finish",))

    def init(**kwargs):
        calls.append(("init", kwargs))
        return Run()

    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(init=init))
    return calls


def test_wandb_is_off_unless_ig_wandb_asks(tmp_path, fake_wandb, monkeypatch):
    monkeypatch.delenv("IG_WANDB", raising=False)
    write_steps(training_log(tmp_path), range(1, 3))
    assert fake_wandb == []


def test_wandb_offline_run_named_after_the_run_folder_and_start_step(tmp_path, fake_wandb, monkeypatch):
    monkeypatch.setenv("IG_WANDB", "offline")
    write_steps(training_log(tmp_path, start_step=4), range(5, 9))
    (kind, init), *logged, finish = fake_wandb
    assert kind == "init" and finish == ("finish",)
    assert init["mode"] == "offline" and init["group"] == "sit-b" and init["name"] == "sit-b@4"
    assert init["dir"] == str(tmp_path / "runs" / "sit-b")
    assert [(step, values["train/loss"]) for _, step, values in logged] == [(6, 5.5), (8, 7.5)]


def test_wandb_misconfigured_or_missing(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("IG_WANDB", "yes")
    with pytest.raises(IGError, match="IG_WANDB='yes': use offline or online"):
        training_log(tmp_path)
    monkeypatch.setenv("IG_WANDB", "offline")
    monkeypatch.setitem(sys.modules, "wandb", None)  # not installed: import fails
    with caplog.at_level("WARNING", logger="ig.train.log"):
        write_steps(training_log(tmp_path), range(1, 3))
    assert "wandb is not installed" in caplog.text
    assert (tmp_path / "runs" / "sit-b" / "training.jsonl").read_text().count("\n") == 1


def test_a_job_without_a_progress_bar_logs_a_progress_line_with_its_eta(tmp_path, monkeypatch, caplog):
    """A cluster job's log (no bar) says where training is, how fast and when it ends."""
    monkeypatch.setattr("ig.train.log.PROGRESS_SECONDS", 0)
    clock = iter(float(t) for t in range(100))  # one second per call of the clock
    monkeypatch.setattr("ig.train.log.time.perf_counter", lambda: next(clock))
    with caplog.at_level("INFO", logger="ig.train.log"):
        write_steps(training_log(tmp_path), range(1, 5))
    lines = [r.getMessage() for r in caplog.records]
    # step 4 of 10: loss mean(3, 4) = 3.5; 8 images a step, 2 steps in 1 s; 1 s per step so far → 6 s left
    assert lines[-1] == "step 4/10 (40.0 %), 16.0 img/s, loss 3.5000, ETA 0h00m", lines
