"""Precision/recall and Inception Score: ours (``ig.evaluation.metrics``) vs the ADM evaluator's code.

Run by hand, not in CI. ADM's ``evaluations/evaluator.py`` (openai/guided-diffusion) runs unchanged
in its own TensorFlow interpreter, in a subprocess; the two sides exchange seeded synthetic
arrays through ``.npz`` files in a temporary folder. ADM's code is never copied into this
repository: write it to a scratch folder and make a TensorFlow venv there first::

    git -C /work/.mirror/openai+guided-diffusion/repo show HEAD:evaluations/evaluator.py \\
        > /tmp/adm/evaluator.py
    python3.11 -m venv /tmp/tfvenv && /tmp/tfvenv/bin/pip install tensorflow-cpu numpy scipy tqdm requests
    .venv/bin/python bench/adm_parity.py --adm-python /tmp/tfvenv/bin/python \\
        --adm-evaluator /tmp/adm/evaluator.py [--quick] [--out FILE]

What runs on the ADM side, with only two shims applied when the module is loaded
(``tf.disable_v2_behavior()`` so that its ``tensorflow.compat.v1`` placeholders and sessions
work, and ``np.bool = bool`` where numpy lacks it):

- precision/recall: ``ManifoldEstimator(session)`` with its defaults (10,000-row blocks, k = 3),
  ``manifold_radii`` of both sets and ``evaluate_pr``: the body of ``Evaluator.compute_prec_recall``;
- distances: ``DistanceBlock.pairwise_distances`` on one block, plus the float16 norms and product
  that its graph computes (read from the graph's own tensors);
- Inception Score: ``Evaluator.compute_inception_score`` (its batching and numpy loop, unchanged)
  on a stand-in whose softmax graph is ``tf.nn.softmax`` of fed logits: ADM applies the softmax to
  ``pool3 @ W`` of its Inception graph, which needs a download; here the logits are fed directly.

Features are pool3-like (2048-d, non-negative: ``|z A + noise|`` of a 32-d latent with 100 class
means; the generated set has shifted means, wider spread and 80 % of the classes, so that
precision and recall sit between 0 and 1). Besides ours with ``arithmetic="adm"`` and ``"exact"``,
two diagnostic variants replace only the float16 squared norms of our ``adm`` emulation (ours
rounds a float32 sum once): ``tf_cpu_norms`` reproduces the order of TensorFlow-CPU's Eigen
reduction (the arithmetic ADM's code has on this machine), ``tf_gpu_norms`` the order of
TensorFlow-GPU's CUB segmented reduction (float16 partial sums; from the TensorFlow and CUB
sources, not run on a GPU here). ADM's paper numbers come from GPUs, whose float16 matmul and
reductions round differently from TF-CPU; the JSON record says so.

Prints and writes one JSON object (default ``bench/results/adm-parity-cpu-2core.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

DIM, LATENT, CLASSES, LOGIT_CLASSES = 2048, 32, 100, 1008
CASES = {"large": (10_000, 20_000), "small": (2_000, 3_000)}  # reference × samples
QUICK_CASES = {"small": (2_000, 3_000)}
IS_ROWS = (50_000, 12_000)
BLOCK = (2_000, 10_000)  # rows of samples × columns of reference for the distance comparison
DEFAULT_OUT = Path(__file__).parent / "results" / "adm-parity-cpu-2core.json"
GPU_THREADS, GPU_WARP = 256, 32  # CUB's segmented-reduce block (SM ≥ 6.0 policy) and warp


# ----------------------------------------------------------------------------- data


def make_features(seed: int, n_ref: int, n_sample: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded pool3-like features: reference and generated sets (float32, non-negative, 2048-d)."""
    rng = np.random.default_rng(seed)
    lift = rng.standard_normal((LATENT, DIM)) / np.sqrt(LATENT)
    means = 2.0 * rng.standard_normal((CLASSES, LATENT))
    shifted = means + 0.5 * rng.standard_normal((CLASSES, LATENT))

    def draw(n: int, centres: np.ndarray, classes: int, spread: float) -> np.ndarray:
        z = centres[rng.integers(0, classes, n)] + spread * rng.standard_normal((n, LATENT))
        return (np.abs(z @ lift + 0.3 * rng.standard_normal((n, DIM))) * 0.25).astype(np.float32)

    return draw(n_ref, means, CLASSES, 1.0), draw(n_sample, shifted, int(0.8 * CLASSES), 1.1)


def make_logits(seed: int, n: int) -> np.ndarray:
    """Seeded Inception-like logits (1008 classes, skewed class frequencies, peaked rows)."""
    rng = np.random.default_rng(seed)
    frequencies = rng.dirichlet(np.full(1000, 0.5))
    logits = rng.normal(0.0, 2.0, (n, LOGIT_CLASSES))
    logits[np.arange(n), rng.choice(1000, n, p=frequencies)] += rng.uniform(4.0, 12.0, n)
    return logits.astype(np.float32)


# ----------------------------------------------------------------------------- ADM side


def adm_worker(workdir: Path, evaluator: Path, threads: int) -> None:
    """Runs in the TensorFlow interpreter: ADM's code on the arrays of ``workdir/inputs.npz``."""
    import importlib.util
    import types

    if not hasattr(np, "bool"):  # removed in numpy 1.24-1.26; ADM's evaluate_pr uses it
        np.bool = bool
    import tensorflow as tf2
    import tensorflow.compat.v1 as tf

    tf.disable_v2_behavior()  # ADM's module does `import tensorflow.compat.v1 as tf`: graphs, sessions
    spec = importlib.util.spec_from_file_location("adm_evaluator", evaluator)
    adm = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(adm)

    inputs = np.load(workdir / "inputs.npz")
    meta = json.loads((workdir / "meta.json").read_text())
    config = tf.ConfigProto(intra_op_parallelism_threads=threads, inter_op_parallelism_threads=1)
    session = tf.Session(config=config)
    estimator = adm.ManifoldEstimator(session)
    arrays, record = {}, {"cases": {}}

    for name in meta["cases"]:
        ref, sample = inputs[f"{name}_ref"], inputs[f"{name}_sample"]
        start = time.perf_counter()
        # Evaluator.compute_prec_recall, its three lines, keeping the radii
        radii_ref = estimator.manifold_radii(ref)
        radii_sample = estimator.manifold_radii(sample)
        pr = estimator.evaluate_pr(ref, radii_ref, sample, radii_sample)
        record["cases"][name] = {
            "precision": float(pr[0][0]),
            "recall": float(pr[1][0]),
            "seconds": time.perf_counter() - start,
        }
        arrays[f"{name}_radii_ref"], arrays[f"{name}_radii_sample"] = radii_ref[:, 0], radii_sample[:, 0]

    # one distance block, with the float16 intermediates of ADM's graph (first pairwise_dist_block scope)
    block = estimator.distance_block
    graph = session.graph
    scope = [op for op in graph.get_operations() if op.name.startswith("pairwise_dist_block/")]
    sums = [op.outputs[0] for op in scope if op.type == "Sum"]
    (matmul,) = [op.outputs[0] for op in scope if op.type in ("MatMul", "BatchMatMulV2")]
    assert len(sums) == 2 and all(t.dtype == tf.float16 for t in (*sums, matmul)), "unexpected ADM graph"
    u, v = inputs["block_u"], inputs["block_v"]
    start = time.perf_counter()
    distances = block.pairwise_distances(u, v)
    record["block_seconds"] = time.perf_counter() - start
    norm_u, norm_v, product = session.run(
        [sums[0], sums[1], matmul], {block._features_batch1: u, block._features_batch2: v}
    )
    arrays |= {"block_d": distances, "block_norm_u": norm_u, "block_norm_v": norm_v, "block_product": product}

    # Inception Score: ADM's method on a stand-in whose softmax input is the logits themselves
    logits_in = tf.placeholder(tf.float32, shape=[None, LOGIT_CLASSES])
    stand_in = types.SimpleNamespace(
        sess=session, softmax_batch_size=512, softmax_input=logits_in, softmax=tf.nn.softmax(logits_in)
    )
    record["inception_score"] = {}
    for rows in meta["is_rows"]:
        start = time.perf_counter()
        score = adm.Evaluator.compute_inception_score(stand_in, inputs["logits"][:rows])
        record["inception_score"][str(rows)] = {"value": score, "seconds": time.perf_counter() - start}

    record["versions"] = {"python": platform.python_version(), "tensorflow": tf2.__version__, "numpy": np.__version__}
    np.savez(workdir / "adm.npz", **arrays)
    (workdir / "adm.json").write_text(json.dumps(record))


def run_adm(python: Path, evaluator: Path, workdir: Path, threads: int) -> tuple[dict, dict]:
    command = [str(python), __file__, "--adm-worker", str(workdir), "--adm-evaluator", str(evaluator)]
    command += ["--threads", str(threads)]
    env = os.environ | {"TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"ADM side failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads((workdir / "adm.json").read_text()), dict(np.load(workdir / "adm.npz"))


# ----------------------------------------------------------------------------- our side

# Float16 squared norms (rows of x16², an (N, D) float16 tensor) in three summation orders.


def norms_float32_once(squares):
    """Ours (``metrics.squared_distances``): float32 sum of the float16 squares, rounded once."""
    return squares.float().sum(1).half()


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _add16(a, b):
    return (a.float() + b.float()).half()


def norms_tf_cpu(squares, packet: int = 8, accumulators: int = 4, leaf: int = 200):
    """TensorFlow-CPU's ``reduce_sum`` of float16 rows (Eigen ``InnerMostDimReducer``, vectorised and
    tree-split; checked bit for bit on 2048-d rows, TF 2.21 on x86-64): ranges longer than
    ``packet * leaf`` are halved at a packet boundary and the halves added in float16; a leaf is
    accumulated in ``accumulators`` float16 packets of ``packet`` lanes (every add rounded), those
    packets added in order, then the lanes summed in float32 and rounded."""
    length = squares.shape[1]
    if length > packet * leaf:
        split = packet * _ceil_div(_ceil_div(length, 2), packet)
        left = norms_tf_cpu(squares[:, :split], packet, accumulators, leaf)
        right = norms_tf_cpu(squares[:, split:], packet, accumulators, leaf)
        return _add16(left, right)
    stride = packet * accumulators
    unrolled, vectorised = length // stride * stride, length // packet * packet
    blocks = squares[:, :unrolled].reshape(len(squares), -1, accumulators, packet)
    lanes = squares.new_zeros(len(squares), accumulators, packet)
    for i in range(blocks.shape[1]):  # accumulator a takes packets a, a + accumulators, …
        lanes = _add16(lanes, blocks[:, i])
    for j in range(unrolled, vectorised, packet):
        lanes[:, 0] = _add16(lanes[:, 0], squares[:, j : j + packet])
    total = lanes[:, 0]
    for a in range(1, accumulators):
        total = _add16(total, lanes[:, a])
    scalar = squares.new_zeros(len(squares))
    for j in range(vectorised, length):
        scalar = _add16(scalar, squares[:, j])
    return _add16(scalar, total.float().sum(1).half())


def norms_tf_gpu(squares):
    """TensorFlow-GPU's ``reduce_sum`` of float16 rows of 1024 to 4096 entries: a CUB segmented
    reduction, one block of 256 threads per row, everything in float16 (``Sum<Eigen::half>``).
    Thread t adds entries t, t+256, … in order; each warp of 32 threads reduces by shuffle-down
    (adjacent pairs, then pairs of pairs, …); the 8 warp sums are added in order."""
    import torch

    rows, length = squares.shape
    if not 1024 <= length <= 4096:
        raise ValueError("the CUB segmented path (and this emulation) is for rows of 1024-4096 entries")
    padded = torch.nn.functional.pad(squares, (0, -length % GPU_THREADS))  # + 0 is exact in float16
    strided = padded.view(rows, -1, GPU_THREADS)
    thread = strided[:, 0]
    for i in range(1, strided.shape[1]):
        thread = _add16(thread, strided[:, i])
    warps = thread.view(rows, GPU_THREADS // GPU_WARP, GPU_WARP)
    while warps.shape[2] > 1:
        warps = _add16(warps[:, :, 0::2], warps[:, :, 1::2])
    total = warps[:, 0, 0]
    for w in range(1, warps.shape[1]):
        total = _add16(total, warps[:, w, 0])
    return total


NORMS = {"tf_cpu_norms": norms_tf_cpu, "tf_gpu_norms": norms_tf_gpu}


def adm_distances(u, v, norms, cache: dict | None = None):
    """Our ``adm`` distances with the squared norms summed by ``norms``: float16 inputs and
    squares, float32-accumulated product rounded to float16, ``(|u|² − 2uv) + |v|²`` in float16.
    ``cache`` keeps norms by (storage, shape, stride) of the float32 rows: for one metrics call."""
    import torch

    def norms_of(x):
        key = (x.data_ptr(), tuple(x.shape), x.stride())
        if cache is None or key not in cache:
            value = norms(x.half().square())
            if cache is None:
                return value
            cache[key] = value
        return cache[key]

    u16, v16 = u.half(), v.half()
    product = (u16.float() @ v16.float().T).half()
    d = ((norms_of(u)[:, None] - 2 * product) + norms_of(v)[None, :]).clamp_min(0.0)
    if torch.isfinite(d).all():
        return d.float()
    return None  # ADM's float32 fallback: left to the caller


@contextmanager
def instrumented(norms=None):
    """Within: ``metrics.squared_distances(..., "adm")`` uses ``norms`` (if given) and every k-NN
    radius computed by the metrics is recorded (yields the list)."""
    from ig.evaluation import metrics

    original_distances, original_radii, radii, cache = metrics.squared_distances, metrics._knn_radii, [], {}

    def distances(u, v, arithmetic="adm"):
        if norms is not None and arithmetic == "adm":
            d = adm_distances(u, v, norms, cache)
            if d is not None:
                return d
        return original_distances(u, v, arithmetic)

    def knn_radii(x, k, arithmetic):
        result = original_radii(x, k, arithmetic)
        radii.append(result.cpu().numpy())
        return result

    metrics.squared_distances, metrics._knn_radii = distances, knn_radii
    try:
        yield radii
    finally:
        metrics.squared_distances, metrics._knn_radii = original_distances, original_radii


def compare(ours: np.ndarray, theirs: np.ndarray) -> dict:
    """Agreement of two float32 arrays; ``within_1_fp16_ulp``: |ours − theirs| ≤ one float16 ulp of theirs."""
    ours, theirs = np.asarray(ours, np.float32), np.asarray(theirs, np.float32)
    diff = np.abs(ours.astype(np.float64) - theirs)
    ulp = np.spacing(np.abs(theirs).astype(np.float16)).astype(np.float64)
    return {
        "bit_identical": float((ours.view(np.uint32) == theirs.view(np.uint32)).mean()),
        "within_1_fp16_ulp": float((diff <= ulp).mean()),
        "max_abs_diff": float(diff.max()),
        "max_rel_diff": float((diff / np.maximum(np.abs(theirs), 1e-30)).max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--adm-python", type=Path, help="python of a venv with tensorflow, scipy, tqdm, requests")
    parser.add_argument("--adm-evaluator", type=Path, help="ADM's evaluations/evaluator.py, outside this repo")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="the small case only (about a minute)")
    parser.add_argument("--adm-worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.adm_worker is not None:
        adm_worker(args.adm_worker, args.adm_evaluator, args.threads)
        return
    for flag, path in (("--adm-python", args.adm_python), ("--adm-evaluator", args.adm_evaluator)):
        if path is None or not path.is_file():
            print(f"adm_parity: {flag} {path or '(not given)'} is missing; see the module docstring", file=sys.stderr)
            sys.exit(2)

    import torch

    from ig.evaluation import metrics

    torch.set_num_threads(args.threads)
    cases = QUICK_CASES if args.quick else CASES
    data = {name: make_features(args.seed + list(CASES).index(name), *sizes) for name, sizes in cases.items()}
    logits = make_logits(args.seed + 100, max(IS_ROWS))
    first = next(iter(cases))
    block_u, block_v = data[first][1][: BLOCK[0]], data[first][0][: BLOCK[1]]  # samples × reference

    started, load_before = time.perf_counter(), os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="adm-parity-") as tmp:
        workdir = Path(tmp)
        inputs = {f"{n}_{side}": x for n, (r, s) in data.items() for side, x in (("ref", r), ("sample", s))}
        np.savez(workdir / "inputs.npz", logits=logits, block_u=block_u, block_v=block_v, **inputs)
        (workdir / "meta.json").write_text(json.dumps({"cases": list(cases), "is_rows": list(IS_ROWS)}))
        adm_start = time.perf_counter()
        adm, adm_arrays = run_adm(args.adm_python, args.adm_evaluator, workdir, args.threads)
        adm_wall = time.perf_counter() - adm_start

    record: dict = {"cases": {}}
    for name, (ref, sample) in data.items():
        theirs = adm["cases"][name]
        case = {
            "reference": len(ref),
            "samples": len(sample),
            "adm": {key: theirs[key] for key in ("precision", "recall")} | {"seconds": round(theirs["seconds"], 2)},
        }
        variants = [("ours_adm", "adm", None), ("ours_exact", "exact", None)]
        variants += [(f"ours_adm_{key}", "adm", fn) for key, fn in NORMS.items()]
        for label, arithmetic, norms in variants:
            start = time.perf_counter()
            with instrumented(norms) as radii:
                precision, recall = metrics.precision_recall(ref, sample, k=3, arithmetic=arithmetic)
            entry = {
                "precision": precision,
                "recall": recall,
                "abs_diff_precision": abs(precision - theirs["precision"]),
                "abs_diff_recall": abs(recall - theirs["recall"]),
                "seconds": round(time.perf_counter() - start, 2),
                "radii_vs_adm": {
                    "reference": compare(radii[0], adm_arrays[f"{name}_radii_ref"]),
                    "samples": compare(radii[1], adm_arrays[f"{name}_radii_sample"]),
                },
            }
            case[label] = entry
        record["cases"][name] = case

    # one distance block: ADM's DistanceBlock vs ours, and the float16 intermediates
    u, v = torch.from_numpy(block_u), torch.from_numpy(block_v)
    u16, v16 = u.half(), v.half()
    product = (u16.float() @ v16.float().T).half().numpy()
    ours_block = metrics.squared_distances(u, v, "adm").numpy()
    own_copy = adm_distances(u, v, norms_float32_once).numpy()
    assert np.array_equal(own_copy, ours_block), "adm_distances(norms_float32_once) must equal ours"
    block_record = {
        "shape": [len(block_u), len(block_v)],
        "adm_seconds": round(adm["block_seconds"], 2),
        "adm_distance_median": float(np.median(adm_arrays["block_d"])),
        "product_fp16_bit_identical": float((product == adm_arrays["block_product"]).mean()),
        "ours_adm": compare(ours_block, adm_arrays["block_d"]),
        "ours_exact": compare(metrics.squared_distances(u, v, "exact").numpy(), adm_arrays["block_d"]),
    }
    for key, fn in (("float32_once (ours)", norms_float32_once), *NORMS.items()):
        bits = [fn(x.square()).numpy() == adm_arrays[f"block_norm_{side}"] for x, side in ((u16, "u"), (v16, "v"))]
        block_record[f"norms_bit_identical {key}"] = float(np.concatenate(bits).mean())
    for key, fn in NORMS.items():
        block_record[f"ours_adm_{key}"] = compare(adm_distances(u, v, fn).numpy(), adm_arrays["block_d"])
    record["distance_block"] = block_record

    record["inception_score"] = {}
    for rows in IS_ROWS:
        start = time.perf_counter()
        ours = metrics.inception_score(logits[:rows], split_size=5000)
        theirs = adm["inception_score"][str(rows)]
        record["inception_score"][str(rows)] = {
            "adm": theirs["value"],
            "ours": ours,
            "abs_diff": abs(ours - theirs["value"]),
            "rel_diff": abs(ours - theirs["value"]) / theirs["value"],
            "adm_seconds": round(theirs["seconds"], 2),
            "ours_seconds": round(time.perf_counter() - start, 2),
        }

    record["adm_subprocess_seconds"] = round(adm_wall, 1)
    record["total_seconds"] = round(time.perf_counter() - started, 1)
    record["load_average_1_5_15min"] = {"start": load_before, "end": os.getloadavg()}  # shared machine
    record["threads"] = args.threads
    record["seed"] = args.seed
    record["versions"] = {
        "ours": {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__},
        "adm": adm["versions"],
    }
    record["command"] = shlex.join([sys.executable, *sys.argv])
    record["notes"] = (
        "ADM's evaluator.py (openai/guided-diffusion) ran unchanged under TensorFlow-CPU with "
        "tf.disable_v2_behavior() (and np.bool = bool if missing); IS fed logits to tf.nn.softmax in place of "
        "pool3 @ W. The paper's numbers come from ADM on GPUs: cuBLAS float16 matmul and CUB float16 reductions "
        "round differently from TF-CPU's oneDNN/Eigen, so bit-identity here says nothing about GPU runs; "
        "tf_gpu_norms emulates the GPU reduction order from source, not from a GPU run."
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record))


if __name__ == "__main__":
    main()
