"""``bench/gpu.sh --quick`` (``python -m ig.bench --quick`` inside): every benchmark runs, so CI keeps
the GPU script from rotting; and the whole-run timeline reader on a log whose sums are known."""

import json
import os
import subprocess
import sys

import torch

from ig import bench
from tests.conftest import REPO_ROOT


def test_quick_bench_measures_every_section_without_errors(tmp_path):
    out = tmp_path / "bench.json"
    env = os.environ | {"IG_PYTHON": sys.executable}
    cmd = ["bash", "bench/gpu.sh", "--quick", "", str(out)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=REPO_ROOT, env=env, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads(out.read_text())
    assert record["command"].startswith("bench/gpu.sh --quick") and "vs_official" not in record
    report = record["ig"]
    assert "error" not in report, report
    errors = {f"{s}.{k}": v["error"] for s, part in report.items() if isinstance(part, dict)
              for k, v in part.items() if isinstance(v, dict) and "error" in v}  # fmt: skip
    assert not errors, errors
    for key in ("ig_sampling_overhead", "cfg_sampling_overhead", "aux_train_overhead"):
        assert report["ratios"][key] > 0
    assert {"SiT-T/2 head", "SiT-T/2 no_head"} <= set(report["train"])
    assert {f"{g} {p}" for g in bench.GUIDANCE for p in ("fp32", "bf16")} <= set(report["sampling"])
    assert report["evaluation"]["fid_bootstrap"]["seconds"] > 0
    assert report["data"]["encode_sd_vae_256"]["images_per_s"] > 0


def test_a_failing_measurement_is_recorded_and_the_others_go_on():
    report = {}
    with bench._measured(report, "broken"):
        raise RuntimeError("out of memory\nsecond line")
    assert report == {"broken": {"error": "RuntimeError: out of memory"}}


def test_gpu_sizes_are_the_papers_and_mfu_uses_the_devices_bf16_peak(monkeypatch):
    plan = bench.plan(torch.device("cuda"), quick=False)
    assert plan["models"] == ("SiT-XL/2", "LightningDiT-XL/1") and plan["train_batch"] == 32
    assert plan["sample_batch"] == 250 and plan["precision"] == "bf16"
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H200")
    assert bench.peak_bf16_flops(torch.device("cuda")) == 989e12
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Some GPU")
    assert bench.peak_bf16_flops(torch.device("cuda")) is None
    assert bench.peak_bf16_flops(torch.device("cpu")) is None


SNAKEMAKE_LOG = """\
[Mon Nov 30 17:00:00 2026]
localrule toy2d:
    output: results/embedded/toy2d/claims.json
    jobid: 1
    threads: 2
Shell command: ig toy2d
[Mon Nov 30 17:01:40 2026]
Finished jobid: 1 (Rule: toy2d)
[Mon Nov 30 17:01:40 2026]
localrule train_segment:
    jobid: 2
Shell command: ig train
[Mon Nov 30 17:01:40 2026]
rule train_segment:
    jobid: 3
[Mon Nov 30 17:03:20 2026]
Finished jobid: 2 (Rule: train_segment)
[Mon Nov 30 17:03:40 2026]
Finished jobid: 3 (Rule: train_segment)
\tUser time (seconds): 512.5
"""


def test_pipeline_timeline_sums_jobs_per_rule_and_projects_a_slower_cpu(tmp_path):
    log = tmp_path / "run.log"
    log.write_text(SNAKEMAKE_LOG)
    cmd = [sys.executable, "bench/pipeline_timeline.py", str(log), "--cores", "2", "--scale", "train_segment=2"]
    record = json.loads(subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT, check=True).stdout)
    assert record["wall_s"] == 220 and record["user_s"] == 512.5
    assert record["rules"]["toy2d"] == {"jobs": 1, "threads": 2, "job_s": 100, "longest_s": 100, "thread_s": 200}
    train = record["rules"]["train_segment"]
    assert train == {"jobs": 2, "threads": 1, "job_s": 220, "longest_s": 120, "thread_s": 220}
    assert record["thread_s"] == 420 and record["cores_busy"] == 420 / 440
    # training doubles: 220 more thread-seconds; the run's packing kept: 220 s × 640 / 420
    assert abs(record["projection"]["wall_s"] - 220 * 640 / 420) < 1e-9
