"""Every GPU job on its GPU, or failing fast: the device choice of ``ig.distributed``.

A job the launcher gave a GPU (SLURM's variables, ``CUDA_VISIBLE_DEVICES``) or ``--device cuda``
must run on it; when torch cannot use CUDA (PyPI's torch is built for CUDA 13, older drivers lack
it) the command stops in one line naming torch's CUDA build, the driver's CUDA and the fix, instead
of computing on the CPU for hours. ``IG_ALLOW_CPU=1`` lets a rehearsal run on the CPU.
"""

from __future__ import annotations

import ctypes
import logging
import os
import subprocess
import sys

import pytest
import torch

from ig import distributed
from ig.distributed import select_device
from ig.errors import IGError

GPU_ENVS = [
    {"SLURM_GPUS_ON_NODE": "1"},
    {"SLURM_JOB_GPUS": "0"},
    {"SLURM_STEP_GPUS": "2,3"},
    {"CUDA_VISIBLE_DEVICES": "0"},
]
NO_GPU_ENVS = [
    {},
    {"SLURM_GPUS_ON_NODE": "0"},
    {"CUDA_VISIBLE_DEVICES": ""},
    {"CUDA_VISIBLE_DEVICES": "-1"},
    {"CUDA_VISIBLE_DEVICES": "NoDevFiles"},
    {"SLURM_JOB_ID": "7", "SLURM_NTASKS": "1"},  # a SLURM job without GPUs
]


@pytest.fixture
def no_cuda(monkeypatch):
    """torch as PyPI's CUDA 13 build on a node whose driver tops out at CUDA 12.2: no CUDA device."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(distributed, "driver_cuda_version", lambda: "12.2")


@pytest.mark.parametrize("env", NO_GPU_ENVS, ids=str)
def test_no_gpu_requested_runs_on_the_cpu_and_says_so(no_cuda, env, caplog):
    with caplog.at_level(logging.INFO, logger="ig.distributed"):
        assert select_device(None, env=env) == torch.device("cpu")
    assert "running on cpu: no GPU requested" in caplog.text


@pytest.mark.parametrize("env", GPU_ENVS, ids=str)
def test_a_gpu_job_whose_torch_cannot_use_cuda_fails_in_one_line(no_cuda, env):
    with pytest.raises(IGError) as error:
        select_device(None, env=env)
    message = str(error.value)
    (name, value), *_ = env.items()
    assert "\n" not in message
    assert f"the job was given a GPU ({name}={value}), but no CUDA device is visible to torch" in message
    assert "is built for CUDA 13.0, the NVIDIA driver supports CUDA up to 12.2" in message
    assert (
        "install torch built for CUDA 12 (IG_TORCH_INDEX=https://download.pytorch.org/whl/cu126 scripts/setup.sh"
        in message
    )


def test_device_cuda_without_cuda_fails_with_the_same_diagnosis(no_cuda):
    with pytest.raises(IGError, match=r"^--device cuda, but no CUDA device is visible to torch: .* up to 12\.2; "):
        select_device("cuda", env={})


@pytest.mark.parametrize("env", [*GPU_ENVS, {}], ids=str)
def test_device_cpu_is_always_the_cpu(no_cuda, env):
    assert select_device("cpu", env=env) == torch.device("cpu")


def test_allow_cpu_runs_a_gpu_job_on_the_cpu_and_says_so(no_cuda, caplog):
    env = {"CUDA_VISIBLE_DEVICES": "0", "IG_ALLOW_CPU": "1"}
    with caplog.at_level(logging.INFO, logger="ig.distributed"):
        assert select_device(None, env=env) == torch.device("cpu")
        assert select_device("cuda", env=env) == torch.device("cpu")
    assert "running on the CPU: the job was given a GPU (CUDA_VISIBLE_DEVICES=0), but torch sees no CUDA" in caplog.text
    assert [r.levelname for r in caplog.records] == ["WARNING", "WARNING"]


@pytest.mark.parametrize(
    "driver,built,says",
    [
        (None, "13.0", "no NVIDIA driver found; run it where the NVIDIA driver is loaded"),
        ("13.0", "13.0", "supports CUDA up to 13.0; check CUDA_VISIBLE_DEVICES and nvidia-smi"),
        ("11.8", "13.0", "supports CUDA up to 11.8; install torch built for CUDA 11 (profiles/README.md"),
        (
            "12.4",
            None,
            "built without CUDA, the NVIDIA driver supports CUDA up to 12.4; install torch built for CUDA 12",
        ),
    ],
)
def test_the_fix_follows_the_driver(monkeypatch, driver, built, says):
    monkeypatch.setattr(torch.version, "cuda", built)
    monkeypatch.setattr(distributed, "driver_cuda_version", lambda: driver)
    message = distributed.cuda_unusable("--device cuda")
    assert says in message and message.endswith("or run on the CPU: --device cpu or IG_ALLOW_CPU=1")


@pytest.fixture
def tf32_off():
    """TF32 off, and the process's settings back afterwards (monkeypatch cannot restore them)."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def test_a_gpu_job_gets_its_local_ranks_gpu_with_tf32(monkeypatch, tf32_off):
    current = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", current.append)
    assert select_device(None, local_rank=1, env={"SLURM_JOB_GPUS": "4,5"}) == torch.device("cuda:1")
    assert current == [torch.device("cuda:1")]
    assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    assert select_device(None, env={}) == torch.device("cuda:0")  # no launcher, a GPU torch sees


def test_driver_version_from_libcuda_or_nvidia_smi(monkeypatch, tmp_path):
    class LibCuda:
        def cuDriverGetVersion(self, version) -> int:  # noqa: N802 - the driver API's name
            version._obj.value = 12020
            return 0

    monkeypatch.setattr(ctypes, "CDLL", lambda name: LibCuda())
    assert distributed.driver_cuda_version() == "12.2"

    def no_library(name):
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(ctypes, "CDLL", no_library)
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho '| NVIDIA-SMI 570.86.15   Driver Version: 570.86.15   CUDA Version: 12.8 |'\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert distributed.driver_cuda_version() == "12.8"
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert distributed.driver_cuda_version() is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine where torch sees no GPU")
def test_a_gpu_job_on_this_cpu_machine_exits_2_with_one_line_before_reading_its_inputs(tmp_path):
    """The evaluation job of a SLURM GPU node where torch sees no GPU: the samples, reference and
    weights do not exist, so the command must stop at the device, before touching them."""
    env = {k: v for k, v in os.environ.items() if k != "IG_ALLOW_CPU"}
    env |= {"CUDA_VISIBLE_DEVICES": "0", "SLURM_JOB_GPUS": "0", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    missing = tmp_path / "missing"
    argv = [
        sys.executable,
        "-m",
        "ig",
        "evaluate",
        str(missing / "samples.json"),
        "--reference",
        str(missing / "r.npz"),
    ]
    argv += ["--extractor", f"inception:{missing / 'w.pth'}", "--out", str(tmp_path / "metrics.json")]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("ig evaluate: error: the job was given a GPU (SLURM_JOB_GPUS=0), but no CUDA device")
    assert f"is built for CUDA {torch.version.cuda}" in line or "built without CUDA" in line
    assert "no NVIDIA driver found" in line or "the NVIDIA driver supports CUDA up to" in line
    assert not (tmp_path / "metrics.json").exists()
