"""``bench/gpu.sh --quick`` (``python -m ig.bench --quick`` inside): every benchmark runs, so CI keeps
the GPU script from rotting."""

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
